#pragma once
// `ppnet last-layer`: the convex last-layer problem with the features frozen.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/epoch_summary.h"
#include "pipeline/stages/stage_names.h"

namespace ppnet::pipeline {

struct LastLayerConfig {
  std::string data, run;
  Solver solver = Solver::kProx;   // prox/newton/fista: to the optimum; adam: the reference's epochs
  int64_t max_iterations = 10000;  // prox: iteration limit
  double tolerance = 1e-5;         // prox: stop at this optimality residual
  int epochs = 20;                 // adam (and its --lr, --batch-size, --recompute)
  int batch_size = 80;
  int eval_batch_size = 100;
  double lr = 1e-4;
  double l1 = 1e-4;
  bool recompute = false;  // recompute similarities through the network every epoch (no cache)
  bool resume = false;
  RuntimeConfig runtime;
};

struct LastLayerResult {
  std::string run;
  int rank = 0;  // data-parallel: ranks other than 0 only computed features, and report nothing
  int64_t stage_id = 0;
  bool resumed = false, already_done = false;
  std::string solver;             // "prox", "newton", "fista" or "adam"
  std::vector<EpochSummary> epochs;
  // The convex objective F = mean CE + l1 · Σ|off-class w| on the cached training similarities,
  // before and after, and its first-order optimality residual (0 at the optimum); -1 with
  // --recompute, where there is no cache.
  double initial_objective = -1, objective = -1, residual = -1;
  int64_t iterations = 0;         // prox
  bool converged = false;         // prox: residual ≤ tolerance
  double off_class_sparsity = 0;  // share of off-class weights with |w| < 1e-3
  double off_class_zero = 0;      // share of off-class weights exactly 0
  double cache_seconds = 0;       // computing the similarity vectors once
  int feature_batch = 0;          // images per batch of that pass (--eval-batch-size, or fewer within --memory-budget)
  std::string cache_dtype;        // "float32", or "float16" when float32's cache would not fit the budget
  double solve_seconds = 0;       // the optimisation itself
  double seconds = 0;
};

/// Optimises the last layer alone (CE + l1 · off-class L1) with the features frozen, on
/// similarity vectors computed once: to the optimum by the proximal solver
/// (model/last_layer_solver.h), or by the reference's Adam epochs (which can also recompute the
/// similarities every epoch). Resumable.
LastLayerResult run_last_layer(const LastLayerConfig& config);

}  // namespace ppnet::pipeline
