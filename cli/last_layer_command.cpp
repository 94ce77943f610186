// ppnet last-layer: the last layer optimised with the features frozen.
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/stages/last_layer.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

void add_options(Options& o, pipeline::LastLayerConfig& c, std::string& solver, bool& json) {
  o.add()
      ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder")
      ("run", po::value(&c.run)->value_name("RUN"), "run folder")
      ("solver", po::value(&solver)->default_value(solver)->value_name("prox|newton|fista|adam"),
       "to the convex optimum by proximal Newton or FISTA (prox: the faster for the problem's size), "
       "or adam: the reference's epochs")
      ("l1", po::value(&c.l1)->default_value(c.l1)->value_name("C"), "coefficient of the off-class L1")
      ("max-iterations", po::value(&c.max_iterations)->default_value(c.max_iterations)->value_name("N"),
       "prox: iteration limit")
      ("tolerance", po::value(&c.tolerance)->default_value(c.tolerance)->value_name("T"),
       "prox: stop once the optimality residual is at most T")
      ("epochs", po::value(&c.epochs)->default_value(c.epochs)->value_name("N"), "adam: epochs")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "adam: batch size")
      ("lr", po::value(&c.lr)->default_value(c.lr)->value_name("LR"), "adam: learning rate")
      ("recompute", po::bool_switch(&c.recompute),
       "adam: recompute the similarities through the network every epoch instead of caching them")
      ("eval-batch-size", po::value(&c.eval_batch_size)->default_value(c.eval_batch_size)->value_name("N"),
       "batch size of the feature passes")
      ("resume", po::bool_switch(&c.resume), "continue an interrupted last-layer stage");
  o.add_json(json);
  o.add_runtime(c.runtime);
}

void validate(const Options& o, pipeline::LastLayerConfig& c, const std::string& solver) {
  o.require({"data", "run"});
  c.solver = o.choice("solver", solver, pipeline::parse_solver, "prox, newton, fista or adam");
  if (c.epochs < 1 || c.batch_size < 1 || c.eval_batch_size < 1 || c.max_iterations < 1) {
    throw o.error("--epochs, --batch-size, --eval-batch-size and --max-iterations must be at least 1");
  }
  if (!(c.l1 >= 0 && c.l1 <= 1000)) throw o.error("--l1 must be a number in [0, 1000]");
  if (!(c.lr > 0 && c.lr <= 100)) throw o.error("--lr must be a number in (0, 100]");
  if (!(c.tolerance > 0 && c.tolerance <= 1)) throw o.error("--tolerance must be a number in (0, 1]");
  if (c.solver != pipeline::Solver::kAdam) {
    for (const char* opt : {"epochs", "batch-size", "lr", "recompute"}) {
      if (o.given(opt)) {
        throw o.error(std::string("--") + opt + " applies to --solver adam (the solver is " +
                      pipeline::solver_name(c.solver) + ")");
      }
    }
  }
}

int run(Options& o) {
  pipeline::LastLayerConfig c;
  std::string solver = "prox";
  bool json = false;
  add_options(o, c, solver, json);
  if (!o.parse()) return 0;
  validate(o, c, solver);
  print_result(std::cout, pipeline::run_last_layer(c), json);
  return 0;
}

}  // namespace

extern const Command kLastLayerCommand = {
    "last-layer", "optimise the last layer with the features frozen",
    "ppnet last-layer --data DATA --run RUN [--solver prox|newton|fista|adam] [options]",
    "ppnet last-layer --data data/cub --run runs/cub\nppnet last-layer --data data/cub --run runs/cub --solver adam --epochs 20", true, &run};

}  // namespace ppnet::cli
