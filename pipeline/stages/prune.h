#pragma once
// `ppnet prune`: the reference's prototype pruning, and duplicate removal.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/runtime/runtime_config.h"

namespace ppnet::pipeline {

/// `ppnet prune`: the reference's prototype pruning (prune.py), and duplicate removal.
struct PruneConfig {
  std::string run, data;
  int k = 6;          // nearest push patches examined per prototype
  int threshold = 3;  // remove a prototype with fewer than this many of them from its class (0: never)
  bool duplicates = false;  // also remove prototypes projected onto the same image and cell as
                            // an earlier prototype of their class (its last-layer weights merged)
  int batch_size = 75;
  bool dry_run = false;  // report what would be removed, change nothing
  bool json = false;
  RuntimeConfig runtime;
};

struct PrunedPrototype {
  int64_t prototype = 0, class_index = 0;  // index before the prune
  std::string reason, detail;              // "nearest" or "duplicate"; in words
};

struct PruneResult {
  std::string run;
  int64_t stage_id = 0;  // the prune stage recorded; 0 with --dry-run or when nothing was removed
  int64_t prototypes_before = 0, prototypes_after = 0;
  std::vector<PrunedPrototype> removed;
  std::vector<std::string> classes_left_without_prototypes;
  bool dry_run = false;
  double images_per_second = 0, seconds = 0;
};

/// Removes the prototypes whose k nearest push patches include fewer than `threshold` of their
/// own class (the reference's rule) and, with `duplicates`, prototypes projected onto the same
/// patch as another of their class: vectors, class identity and last-layer columns (a
/// duplicate's weights are added to the prototype it duplicates, so logits do not change). The
/// pruned model, its kept prototypes' records (renumbered) and the removed ones commit together
/// as a stage of kind "prune"; killed at any moment, the run stays as it was. Needs a projection.
PruneResult run_prune(const PruneConfig& config);

}  // namespace ppnet::pipeline
