// ppnet analyze: each prototype's nearest patches over a split (the reference's global analysis).
#include <iostream>

#include "cli/options.h"
#include "cli/report_output.h"
#include "pipeline/commands.h"

namespace ppnet::cli {

namespace po = boost::program_options;

int run_analyze_command(const CommandInfo& info, const std::vector<std::string>& args) {
  const std::string name = info.name;
  pipeline::AnalyzeConfig c;
  bool no_images = false;
  po::options_description o("Options");
  o.add_options()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder")
      ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder")
      ("split", po::value(&c.split)->default_value(c.split)->value_name("SPLIT"), "push, test, val or train")
      ("k", po::value(&c.k)->default_value(c.k)->value_name("K"), "nearest patches per prototype (one per image)")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "batch size")
      ("no-images", po::bool_switch(&no_images), "record the patches without writing their PNGs")
      ("json", po::bool_switch(&c.json), "machine-readable output on stdout");
  add_runtime(o, c.runtime);
  po::variables_map vm;
  if (!parse(info, o, args, vm)) return 0;
  check_runtime(name, c.runtime);
  require(name, vm, {"run", "data"});
  if (c.split != "push" && c.split != "test" && c.split != "val" && c.split != "train") {
    throw UsageError("--split '" + c.split + "': expected push, test, val or train", name);
  }
  if (c.k < 1 || c.k > 1000) throw UsageError("--k must be in 1…1000", name);
  if (c.batch_size < 1) throw UsageError("--batch-size must be at least 1", name);
  c.save_images = !no_images;
  print_report(std::cout, pipeline::run_analyze(c), c.json);
  return 0;
}

}  // namespace ppnet::cli
