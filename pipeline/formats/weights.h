#pragma once
// `ppnet weights`: checks a pretrained backbone file against an architecture.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/runtime/runtime_config.h"

namespace ppnet::pipeline {

/// `ppnet weights`: check a pretrained weights file against a backbone before training.
struct WeightsConfig {
  std::string arch;
  std::string weights;
  int img_size = 224;
  bool json = false;
  RuntimeConfig runtime;
};

struct WeightsResult {
  std::string arch;
  std::string file;
  std::string format;  // weights_format_name(): "safetensors", "torch.save (zip)" or "(legacy)"
  int64_t tensors_loaded = 0;
  int64_t parameters = 0;
  std::vector<std::string> ignored;    // classification-head tensors left out
  std::vector<std::string> defaulted;  // optional buffers the file lacks
  int64_t out_channels = 0;            // backbone features at img_size: channels × grid × grid
  int64_t grid = 0;
  int64_t receptive_field = 0;  // pixels covered by one latent cell
  int img_size = 0;
  int threads = 0;
};

/// Loads `config.weights` into a fresh `config.arch` backbone; throws if it does not fit.
WeightsResult run_weights(const WeightsConfig& config);

}  // namespace ppnet::pipeline
