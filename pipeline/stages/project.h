#pragma once
// `ppnet project`: every prototype pushed onto its nearest training patch of its class.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <optional>
#include <string>

#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/stage_names.h"

namespace ppnet::pipeline {

struct ProjectConfig {
  std::string data, run;
  int batch_size = 75;
  bool save_images = true;  // the patch, box and heatmap PNGs of every prototype
  bool resume = false;       // nothing to do when the latest stage is a finished projection
  PushRegion push_region = PushRegion::kAll;  // kObject: only cells centred on the object mask
  // No prototype goes onto a patch whose similarity (the model's activation) to a cell of one of
  // the run's forbidden concepts of its class exceeds this; empty: the similarity at squared
  // distance 1 (0.693 with the log activation).
  std::optional<double> forbid_threshold;
  RuntimeConfig runtime;
};

struct ProjectResult {
  std::string run;
  int rank = 0;  // data-parallel: ranks other than 0 only searched, and report nothing
  int64_t projection = 0;  // the projection's stage id: its images are in RUN/prototypes/<id>/
  int64_t prototypes = 0, projected = 0;  // projected: prototypes whose class has push images
                                          // (with --push-region object: a cell on an object)
  double mean_distance_before = 0;  // from a prototype to its nearest own-class patch
  double max_distance_after = 0;    // re-encoded source patch to the projected prototype (≈ 0)
  int64_t forbidden_concepts = 0;   // the run's forbidden concepts that kept patches off limits
  double forbid_threshold = 0;      // the similarity it applied (with forbidden concepts)
  double images_per_second = 0;     // push images searched per second
  double seconds = 0;
  bool already_done = false;  // --resume found the latest stage a finished projection
};

/// Replaces every prototype by its nearest latent patch among the push images of its own class
/// and records where it came from (docs/design.md §4). The new prototypes and their records
/// commit together; an interrupted projection leaves the run as it was, and a re-run redoes it.
ProjectResult run_project(const ProjectConfig& config);

}  // namespace ppnet::pipeline
