// ppnet prune: the reference's prototype pruning, and duplicate removal.
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/stages/prune.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

int run(Options& o) {
  pipeline::PruneConfig c;
  o.add()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder (projected)")
      ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder (its push/ images are searched)")
      ("k", po::value(&c.k)->default_value(c.k)->value_name("K"), "nearest push patches examined per prototype")
      ("threshold", po::value(&c.threshold)->default_value(c.threshold)->value_name("N"),
       "remove a prototype with fewer than N of its K nearest patches from its class (0: never)")
      ("duplicates", po::bool_switch(&c.duplicates),
       "also remove prototypes projected onto the same image and cell as another of their class "
       "(weights merged: logits unchanged)")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "batch size")
      ("dry-run", po::bool_switch(&c.dry_run), "say what would be removed and change nothing");
  o.add_json(c.json);
  o.add_runtime(c.runtime);
  if (!o.parse()) return 0;
  o.require({"run", "data"});
  o.within("k", c.k, 1, 1000);
  if (c.threshold < 0 || c.threshold > c.k) throw o.error("--threshold must be in 0…K (--k)");
  if (c.threshold == 0 && !c.duplicates) throw o.error("nothing to do: --threshold 0 without --duplicates");
  o.at_least("batch-size", c.batch_size);
  print_result(std::cout, pipeline::run_prune(c), c.json);
  return 0;
}

}  // namespace

extern const Command kPruneCommand = {
    "prune", "remove prototypes whose nearest patches are of other classes, or duplicates",
    "ppnet prune --run RUN --data DATA [--k 6] [--threshold 3] [--duplicates] [--dry-run] [options]",
    "ppnet prune --run runs/cub --data data/cub --dry-run\nppnet prune --run runs/cub --data data/cub --k 6 --threshold 3", false, &run};

}  // namespace ppnet::cli
