#pragma once
// Process-wide LibTorch set-up that every command does first.

#include <torch/types.h>

#include "pipeline/runtime/runtime_config.h"

namespace ppnet::pipeline {

struct Runtime {
  torch::Device device{torch::kCPU};
  int threads = 1;
  torch::ScalarType amp = torch::kFloat;  // --amp: kBFloat16 or kHalf (model::set_precision)
  int64_t memory_budget = 0;              // bytes; resolved from --memory-budget (never 0)
};

/// Sets the intra-op thread count (0 = all cores), flushes denormal floats to zero on every
/// computing thread unless config.keep_denormals (pipeline/runtime/float_mode.h), seeds LibTorch's
/// generators, parses the device, sets the model's precision and layout (--amp,
/// --channels-last) and the memory budget (given: large blocks mapped directly, see
/// pipeline/runtime/memory.h). Throws std::runtime_error when the device or precision is
/// malformed, or CUDA is asked for but unavailable in this build.
Runtime start_runtime(const RuntimeConfig& config);

}  // namespace ppnet::pipeline
