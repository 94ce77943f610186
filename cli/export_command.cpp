// ppnet export: a run's latest model as a state dict Python reads, and a JSON saying what it is.
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/stages/export_model.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

int run(Options& o) {
  pipeline::ExportConfig c;
  o.add()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder")
      ("out", po::value(&c.out)->value_name("FILE"), "the state dict to write; the JSON beside it takes its name with .json")
      ("format", po::value(&c.format)->default_value(c.format)->value_name("safetensors|pth"),
       "safetensors, or pth (a zip-format torch.save of an OrderedDict, which torch.load reads)")
      ("names", po::value(&c.names)->default_value(c.names)->value_name("reference|ppnet"),
       "reference (the reference implementation's state_dict names) or ppnet");
  o.add_json(c.json);
  o.add_runtime(c.runtime, false);
  if (!o.parse()) return 0;
  o.require({"run", "out"});
  if (c.format != "safetensors" && c.format != "pth") throw o.error("--format '" + c.format + "': expected safetensors or pth");
  if (c.names != "reference" && c.names != "ppnet") throw o.error("--names '" + c.names + "': expected reference or ppnet");
  print_result(std::cout, pipeline::run_export(c), c.json);
  return 0;
}

}  // namespace

extern const Command kExportCommand = {
    "export", "write a run's model as a state dict for Python (safetensors or torch.save) with a JSON describing it",
    "ppnet export --run RUN --out FILE [--format safetensors|pth] [--names reference|ppnet] [options]",
    "ppnet export --run runs/cub --out cub.safetensors\nppnet export --run runs/cub --out cub.pth --format pth", false, &run};

}  // namespace ppnet::cli
