// Forward throughput (images/s, no gradient) of a ProtoPNet, for the closing notes.
// Usage: ppnet_bench_forward [arch=vgg16] [img_size=224] [batch=8] [threads=2] [iterations=5]
#include <torch/torch.h>

#include <chrono>
#include <iostream>

#include "benchmarks/denormal_weights.h"
#include "model/protopnet.h"
#include "pipeline/runtime/runtime.h"

int main(int argc, char** argv) {
  const std::string arch = argc > 1 ? argv[1] : "vgg16";
  const int img = argc > 2 ? std::stoi(argv[2]) : 224;
  const int batch = argc > 3 ? std::stoi(argv[3]) : 8;
  const int threads = argc > 4 ? std::stoi(argv[4]) : 2;
  const int iterations = argc > 5 ? std::stoi(argv[5]) : 5;

  // Fresh weights, then the same model with denormal weights (as a model trained without
  // flushing has them), with and without flushing: what a user's trained model costs.
  for (const char* variant : {"fresh", "trained", "trained, --keep-denormals"}) {
    ppnet::pipeline::RuntimeConfig rc;
    rc.threads = threads;
    rc.keep_denormals = std::string(variant) == "trained, --keep-denormals";
    ppnet::pipeline::start_runtime(rc);
    ppnet::model::ProtoPNetOptions o;
    o.arch = arch;
    ppnet::model::ProtoPNet net(o);
    int64_t denormal = 0;
    if (std::string(variant) != "fresh") denormal = ppnet::bench::make_denormal_weights(*net);
    net->eval();
    torch::NoGradGuard no_grad;
    const auto x = torch::randn({batch, 3, img, img});
    net->forward(x);  // warm-up: oneDNN picks its kernels here
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) net->forward(x);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "ppnet C++  " << arch << " " << img << "px batch " << batch << " threads " << threads << " "
              << variant << (denormal ? " (" + std::to_string(denormal) + " denormal parameters)" : std::string())
              << ": " << (batch * iterations) / s << " images/s (forward, no grad, " << iterations << " batches)\n";
  }
}
