// ppnet's side of `make bench-parity` (tests/benchmarks/parity.py runs the same work in Python
// torch): seconds per batch of the bare backbone's forward and forward+backward, one joint step
// (the whole ProtoPNet forward, the loss terms, backward, Adam), an evaluation batch (forward
// without gradients) and a push batch (latent patches, distance maps, each prototype's nearest
// patch among the batch's images of its class). Each figure is the minimum over `iterations`
// runs after one warm-up run. Random images; the model as `ppnet train` builds it.
// Usage: ppnet_bench_parity [arch=vgg16] [img_size=224] [batch=8] [threads=2] [iterations=3]
// Prints one line per measure: NAME SECONDS_PER_BATCH.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>

#include "model/protopnet.h"
#include "benchmarks/workload.h"

namespace {
using Clock = std::chrono::steady_clock;

// The fastest of `iterations` runs of `step`, after one untimed run.
double fastest(int iterations, const std::function<void()>& step) {
  step();
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    step();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace ppnet;
  const auto [arch, img, batch, threads, iterations] = bench::start_model_workload(argc, argv, 8);
  torch::manual_seed(1);
  const auto x = torch::randn({batch, 3, img, img});
  const auto y = torch::randint(0, 200, {batch}, torch::kInt64);

  auto backbone = model::make_backbone(arch);
  backbone->eval();
  const double bare_forward = fastest(iterations, [&] {
    torch::NoGradGuard no_grad;
    backbone->forward(x);
  });
  backbone->train();
  const double bare_backward = fastest(iterations, [&] {
    backbone->zero_grad();
    backbone->forward(x).sum().backward();
  });

  bench::JointModel joint_model(arch);
  auto& net = joint_model.net;
  const double joint = fastest(iterations, [&] { joint_model.step(x, y); });

  net->eval();
  const double evaluation = fastest(iterations, [&] {
    torch::NoGradGuard no_grad;
    net->forward(x).logits.argmax(1);
  });
  // Push: per prototype, the nearest patch among this batch's images of its class.
  const auto own = net->prototype_class_identity().index_select(1, y).t() > 0;  // B×P
  const double push = fastest(iterations, [&] {
    torch::NoGradGuard no_grad;
    const auto d = net->activations(x).distances.flatten(2).min(2);  // B×P: value, patch
    const auto masked = std::get<0>(d).masked_fill(own.logical_not(), std::numeric_limits<float>::infinity());
    std::get<0>(masked.min(0));
  });

  std::printf("bare_forward %.6f\nbare_forward_backward %.6f\njoint_step %.6f\nevaluation %.6f\npush %.6f\n",
              bare_forward, bare_backward, joint, evaluation, push);
}
