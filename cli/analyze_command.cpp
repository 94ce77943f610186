// ppnet analyze: each prototype's nearest patches over a split (the reference's global analysis).
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/stages/analyze.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

int run(Options& o) {
  pipeline::AnalyzeConfig c;
  bool no_images = false;
  o.add()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder")
      ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder")
      ("split", po::value(&c.split)->default_value(c.split)->value_name("push|test|val|train"), "push, test, val or train")
      ("k", po::value(&c.k)->default_value(c.k)->value_name("K"), "nearest patches per prototype (one per image)")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "batch size")
      ("no-images", po::bool_switch(&no_images), "record the patches without writing their PNGs");
  o.add_json(c.json);
  o.add_runtime(c.runtime);
  o.add_attribution(c.attribution);
  if (!o.parse()) return 0;
  o.require({"run", "data"});
  if (c.split != "push" && c.split != "test" && c.split != "val" && c.split != "train") {
    throw o.error("--split '" + c.split + "': expected push, test, val or train");
  }
  o.within("k", c.k, 1, 1000);
  o.at_least("batch-size", c.batch_size);
  c.save_images = !no_images;
  print_result(std::cout, pipeline::run_analyze(c), c.json);
  return 0;
}

}  // namespace

extern const Command kAnalyzeCommand = {
    "analyze", "each prototype's nearest patches over a split, recorded with pictures",
    "ppnet analyze --run RUN --data DATA [--k 5] [--split push|test|val|train] [--json] [options]",
    "ppnet analyze --run runs/cub --data data/cub --k 5\nppnet analyze --run runs/cub --data data/cub --split test --json > nearest.json", false, &run};

}  // namespace ppnet::cli
