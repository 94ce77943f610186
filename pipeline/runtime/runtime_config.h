#pragma once
// The runtime options every model-running command takes (--threads, --device, --seed,
// --keep-denormals, --amp, --channels-last, --memory-budget). No LibTorch here: cli/ fills it.

#include <cstdint>
#include <string>

#include "base/names.h"

namespace ppnet::pipeline {

/// Mixed precision of the backbone and add-on layers (autocast): off (float32), bfloat16, or
/// float16 (CUDA only, with a dynamic loss scale when training).
enum class Amp { kOff, kBf16, kFp16 };

inline constexpr const char* kAmpNames[] = {"off", "bf16", "fp16"};
/// "off", "bf16" or "fp16".
inline const char* amp_name(Amp a) { return name_of(kAmpNames, a); }
/// Throws std::invalid_argument "'NAME': expected off, bf16 or fp16".
inline Amp parse_amp(const std::string& name) { return value_of<Amp>(kAmpNames, name); }

struct RuntimeConfig {
  int threads = 0;             // LibTorch intra-op threads; 0 = all cores
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:N"
  uint64_t seed = 1;
  bool keep_denormals = false;  // compute denormal floats exactly (slow); only to measure what flushing saves
  Amp amp = Amp::kOff;          // mixed precision of the backbone and add-on layers
  bool channels_last = false;   // NHWC convolutions
  int64_t memory_budget = 0;    // bytes the process may hold while it computes features; 0 = a quarter of physical memory
};

}  // namespace ppnet::pipeline
