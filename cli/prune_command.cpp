// ppnet prune: the reference's prototype pruning, and duplicate removal.
#include <iostream>

#include "cli/options.h"
#include "cli/report_output.h"
#include "pipeline/commands.h"

namespace ppnet::cli {

namespace po = boost::program_options;

int run_prune_command(const CommandInfo& info, const std::vector<std::string>& args) {
  const std::string name = info.name;
  pipeline::PruneConfig c;
  po::options_description o("Options");
  o.add_options()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder (projected)")
      ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder (its push/ images are searched)")
      ("k", po::value(&c.k)->default_value(c.k)->value_name("K"), "nearest push patches examined per prototype")
      ("threshold", po::value(&c.threshold)->default_value(c.threshold)->value_name("N"),
       "remove a prototype with fewer than N of its K nearest patches from its class (0: never)")
      ("duplicates", po::bool_switch(&c.duplicates),
       "also remove prototypes projected onto the same image and cell as another of their class "
       "(weights merged: logits unchanged)")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "batch size")
      ("dry-run", po::bool_switch(&c.dry_run), "say what would be removed and change nothing")
      ("json", po::bool_switch(&c.json), "machine-readable output on stdout");
  add_runtime(o, c.runtime);
  po::variables_map vm;
  if (!parse(info, o, args, vm)) return 0;
  check_runtime(name, c.runtime);
  require(name, vm, {"run", "data"});
  if (c.k < 1 || c.k > 1000) throw UsageError("--k must be in 1…1000", name);
  if (c.threshold < 0 || c.threshold > c.k) throw UsageError("--threshold must be in 0…K (--k)", name);
  if (c.threshold == 0 && !c.duplicates) throw UsageError("nothing to do: --threshold 0 without --duplicates", name);
  if (c.batch_size < 1) throw UsageError("--batch-size must be at least 1", name);
  print_report(std::cout, pipeline::run_prune(c), c.json);
  return 0;
}

}  // namespace ppnet::cli
