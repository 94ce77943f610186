#include "pipeline/runtime/runtime.h"

#include <dlfcn.h>
#include <torch/torch.h>

#include <stdexcept>
#include <thread>

#include "base/log.h"
#include "base/memory_size.h"
#include "base/version.h"
#include "model/protopnet.h"
#include "pipeline/runtime/build_info.h"
#include "pipeline/runtime/float_mode.h"
#include "pipeline/runtime/memory.h"
#include "pipeline/runtime/runtime_config.h"

namespace ppnet::pipeline {
namespace {

// OpenBLAS (libopenblas0-pthread, which Debian's LibTorch calls for GEMM) has a thread pool of
// its own, started when the library loads: its threads compete for the same cores with
// LibTorch's OpenMP team, whose threads spin after every parallel region, and they carry the
// default floating-point mode (they exist before main()). On one thread, GEMM runs on the
// calling thread instead: the last-layer solver ran 1.6× faster (2 cores). No-op with another
// BLAS.
void blas_on_calling_thread() {
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(1);
}

}  // namespace

Runtime start_runtime(const RuntimeConfig& config) {
  Runtime rt;
  if (config.threads < 0) throw std::runtime_error("--threads must be 0 (all cores) or more");
  rt.threads = config.threads > 0 ? config.threads
                                  : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(rt.threads);
  blas_on_calling_thread();
  set_denormal_flush_everywhere(!config.keep_denormals);
  torch::manual_seed(config.seed);
  try {
    rt.device = torch::Device(config.device);
  } catch (const c10::Error&) {
    throw std::runtime_error("--device '" + config.device + "': expected cpu, cuda or cuda:N");
  }
  if (rt.device.is_cuda() && !torch::cuda::is_available()) {
    throw std::runtime_error("--device " + config.device +
                             ": this ppnet was built against a LibTorch without CUDA, or no GPU "
                             "is visible; use --device cpu");
  }
  if (config.amp == Amp::kBf16) {
    rt.amp = torch::kBFloat16;
  } else if (config.amp == Amp::kFp16) {
    if (!rt.device.is_cuda()) throw std::runtime_error("--amp fp16 needs --device cuda (on the CPU use --amp bf16)");
    rt.amp = torch::kHalf;
  }
  model::set_precision(rt.amp);
  model::set_channels_last(config.channels_last);
  if (config.memory_budget < 0) throw std::runtime_error("--memory-budget must be a positive size");
  rt.memory_budget = config.memory_budget > 0 ? config.memory_budget : default_memory_budget();
  if (config.memory_budget > 0) map_large_blocks();  // a budget asked for: freed blocks leave at once
  log::detail(log::format("runtime: %s, %d thread(s), device %s, seed %llu, memory budget %s, precision %s%s%s",
                          build_info().c_str(), rt.threads, config.device.c_str(),
                          static_cast<unsigned long long>(config.seed), memory_size_text(rt.memory_budget).c_str(),
                          config.amp == Amp::kBf16 ? "bf16" : config.amp == Amp::kFp16 ? "fp16" : "float32",
                          config.channels_last ? ", channels-last" : "", config.keep_denormals ? ", denormals kept" : ""));
  return rt;
}

std::string build_info() {
  return std::string("ppnet ") + kVersion + " (LibTorch " + TORCH_VERSION + ", " +
         (torch::cuda::is_available() ? "CUDA available" : "CPU") + ")";
}

}  // namespace ppnet::pipeline
