#include "pipeline/runtime.h"

#include <torch/torch.h>

#include <stdexcept>
#include <thread>

#include "pipeline/commands.h"

namespace ppnet::pipeline {

Runtime start_runtime(const RuntimeConfig& config) {
  Runtime rt;
  if (config.threads < 0) throw std::runtime_error("--threads must be 0 (all cores) or more");
  rt.threads = config.threads > 0 ? config.threads
                                  : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(rt.threads);
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
  return rt;
}

std::string build_info() {
  return std::string("ppnet ") + PPNET_VERSION + " (LibTorch " + TORCH_VERSION + ", " +
         (torch::cuda::is_available() ? "CUDA available" : "CPU") + ")";
}

}  // namespace ppnet::pipeline
