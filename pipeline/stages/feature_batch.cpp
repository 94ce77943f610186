#include "pipeline/stages/feature_batch.h"

#include <torch/torch.h>

#include <algorithm>

#include "base/log.h"
#include "base/memory_size.h"
#include "pipeline/runtime/memory.h"

namespace ppnet::pipeline {
namespace {

constexpr int kLoaderBatches = 5;  // BatchLoader: 3 prefetched, 1 being decoded, 1 in use

int64_t loader_bytes_per_image(const ModelInput& input) {
  return kLoaderBatches * 3 * int64_t{input.size} * input.size * int64_t{sizeof(float)};
}

int64_t forward_peak(model::ProtoPNetImpl& net, const ModelInput& input, torch::Device device, int64_t images) {
  return peak_allocation([&] {
    torch::NoGradGuard no_grad;
    const auto x = torch::zeros({images, 3, input.size, input.size}, torch::TensorOptions().device(device));
    net.forward(x);
  });
}

}  // namespace

FeatureCost measure_feature_cost(model::ProtoPNetImpl& net, const ModelInput& input, torch::Device device) {
  const bool was_training = net.is_training();
  net.eval();
  forward_peak(net, input, device, 1);  // the kernels' one-off set-up (weight reorders, caches) is not per batch
  const int64_t one = forward_peak(net, input, device, 1), three = forward_peak(net, input, device, 3);
  net.train(was_training);
  FeatureCost cost;
  const int64_t activations = std::max<int64_t>(0, (three - one) / 2);
  cost.fixed = std::max<int64_t>(0, one - activations);
  cost.per_image = activations + loader_bytes_per_image(input);
  return cost;
}

FeatureCost bound_feature_cost(model::ProtoPNetImpl& net, const ModelInput& input, torch::Device device) {
  const bool was_training = net.is_training();
  net.eval();
  const int64_t whole = forward_peak(net, input, device, 2);
  net.train(was_training);
  return {whole + loader_bytes_per_image(input), 0};
}

int batch_within_budget(const FeatureCost& cost, int requested, int64_t budget, int64_t held) {
  const double room = 0.9 * static_cast<double>(budget - held - cost.fixed);
  if (cost.per_image <= 0 || room >= static_cast<double>(cost.per_image) * requested) return std::max(1, requested);
  return static_cast<int>(std::clamp(room / static_cast<double>(cost.per_image), 1.0, static_cast<double>(requested)));
}

int feature_batch_size(model::ProtoPNetImpl& net, const ModelInput& input, int requested, const Runtime& rt,
                       int64_t reserved, const std::string& what) {
  FeatureCost cost = bound_feature_cost(net, input, rt.device);
  const bool bound = batch_within_budget(cost, requested, rt.memory_budget, resident_memory() + reserved) == requested;
  if (!bound) cost = measure_feature_cost(net, input, rt.device);
  release_free_memory();
  const int64_t held = resident_memory() + reserved;
  const int batch = bound ? requested : batch_within_budget(cost, requested, rt.memory_budget, held);
  const std::string figures = "memory budget " + memory_size_text(rt.memory_budget) + ", " +
                              (bound ? "at most " : "") + memory_size_text(cost.per_image) + " per image, " +
                              memory_size_text(cost.fixed) + " per batch, " + memory_size_text(held) + " held";
  if (batch < requested) {
    map_large_blocks();  // the allocator's slack would otherwise add 20–130 MiB (vgg16, 224 px)
    const char* floor = held >= rt.memory_budget                                ? "; the process holds more already"
                        : cost.fixed + held + cost.per_image > rt.memory_budget ? "; one image needs more"
                                                                                 : "";
    log::info(what + ": batches of " + std::to_string(batch) + " images instead of " + std::to_string(requested) + " (" +
              figures + floor + ")");
  } else {
    log::detail(what + ": batches of " + std::to_string(batch) + " images (" + figures + ")");
  }
  return batch;
}

}  // namespace ppnet::pipeline
