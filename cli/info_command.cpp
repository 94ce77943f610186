// ppnet info: the stages, epochs and metrics recorded in a run, or its prototypes.
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/run/info.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

int run(Options& o) {
  pipeline::InfoConfig c;
  o.add()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder")
      ("prototypes", po::bool_switch(&c.prototypes), "the latest projection's prototypes instead")
      ("concepts", po::bool_switch(&c.concepts), "the concepts marked with 'ppnet forbid' and 'ppnet remember' instead");
  o.add_json(c.json);
  if (!o.parse()) return 0;
  o.require({"run"});
  if (c.prototypes && c.concepts) throw o.error("give --prototypes or --concepts, not both");
  print_result(std::cout, pipeline::run_info(c), c.json);
  return 0;
}

}  // namespace

extern const Command kInfoCommand = {"info", "stages, epochs and metrics recorded in a run",
                              "ppnet info --run RUN [--prototypes | --concepts] [--json]",
    "ppnet info --run runs/cub\nppnet info --run runs/cub --prototypes --json", false, &run};

}  // namespace ppnet::cli
