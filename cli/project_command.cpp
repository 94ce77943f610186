// ppnet project: push each prototype onto its nearest training patch of its own class.
#include <cmath>
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/stages/project.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

int run(Options& o) {
  pipeline::ProjectConfig c;
  bool json = false, no_images = false;
  std::string region = "all";
  double forbid_threshold = 0;
  o.add()
      ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder (its push/ images are searched)")
      ("run", po::value(&c.run)->value_name("RUN"), "run folder")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "push batch size")
      ("no-images", po::bool_switch(&no_images), "record the prototypes without writing their PNGs")
      ("push-region", po::value(&region)->default_value(region)->value_name("all|object"),
       "all (the reference's: any cell of the class's push images) or object (only cells whose receptive-field "
       "centre lies on the image's object mask, where it has one)")
      ("forbid-threshold", po::value(&forbid_threshold)->value_name("S"),
       "keep each prototype off patches whose similarity to a cell of a forbidden concept of its class "
       "('ppnet forbid') exceeds S (default: the similarity at squared distance 1, 0.693 with the log activation)")
      ("resume", po::bool_switch(&c.resume),
       "after an interruption: do nothing when the latest stage is a finished projection");
  o.add_json(json);
  o.add_runtime(c.runtime);
  if (!o.parse()) return 0;
  o.require({"data", "run"});
  o.at_least("batch-size", c.batch_size);
  c.save_images = !no_images;
  c.push_region = o.choice("push-region", region, pipeline::parse_push_region, "all or object");
  if (o.given("forbid-threshold")) {
    if (!std::isfinite(forbid_threshold)) throw o.error("--forbid-threshold must be a finite number");
    c.forbid_threshold = forbid_threshold;
  }
  print_result(std::cout, pipeline::run_project(c), json);
  return 0;
}

}  // namespace

extern const Command kProjectCommand = {
    "project", "push each prototype onto its nearest training patch of its own class",
    "ppnet project --data DATA --run RUN [options]",
    "ppnet project --data data/cub --run runs/cub", true, &run};

}  // namespace ppnet::cli
