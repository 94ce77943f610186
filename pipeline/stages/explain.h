#pragma once
// `ppnet explain`: heatmaps, patches, JSON and an HTML gallery for a folder of images.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/attribution.h"

namespace ppnet::pipeline {

struct ExplainConfig {
  std::string run, dir, out;
  int top_k = 10;
  int top_classes = 3;
  int batch_size = 16;
  int shard_index = 0, shard_count = 1;  // --shard I/N
  bool force = false;
  bool json = false;
  AttributionSettings attribution;  // the heatmaps and boxes: upsample (the reference's) by default
  RuntimeConfig runtime;
};

struct ExplainResult {
  std::string out;
  int64_t images = 0, explained = 0, kept = 0;  // kept: finished by an earlier run
  std::vector<std::string> failed;              // "path: reason"
  double images_per_second = 0, seconds = 0;
};

/// Explains every image under config.dir into config.out (docs/design.md §5).
ExplainResult run_explain(const ExplainConfig& config);

}  // namespace ppnet::pipeline
