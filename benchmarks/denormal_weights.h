#pragma once
// Weights as a model trained without flushing denormals leaves them, for benchmarks.

#include <torch/torch.h>

#include <cstdint>
#include <limits>

namespace ppnet::bench {

/// Turns the smallest `fraction` of the entries of every weight tensor (dim ≥ 2) of `module`
/// into denormal floats of the same sign (float32 weights). The demo model
/// trained on a machine that did not flush had 4.2 % of its parameters denormal. Returns how
/// many parameters are denormal afterwards.
inline int64_t make_denormal_weights(torch::nn::Module& module, double fraction = 0.042) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    const int64_t k = static_cast<int64_t>(fraction * static_cast<double>(p.numel()));
    if (k < 1 || p.dim() < 2) continue;
    const auto flat = p.view({-1});
    const auto idx = std::get<1>(flat.abs().topk(k, 0, /*largest=*/false));
    // Made as bit patterns: float arithmetic would flush them to 0 where flushing is on.
    auto bits = torch::randint(1, 0x00800000, {k}, torch::kInt32);
    bits = torch::where(flat.index({idx}) < 0, bits.bitwise_or(std::numeric_limits<int32_t>::min()), bits);
    flat.index_put_({idx}, bits.view(torch::kFloat32));
  }
  int64_t denormal = 0;
  // Counted bitwise: with denormals-are-zero on, comparisons would read them as 0.
  for (const auto& p : module.parameters()) {
    const auto bits = p.detach().contiguous().view(torch::kInt32).bitwise_and(0x7fffffff);
    denormal += bits.gt(0).logical_and(bits.lt(0x00800000)).sum().item<int64_t>();
  }
  return denormal;
}

}  // namespace ppnet::bench
