#include "pipeline/stages/handover.h"

#include <torch/torch.h>

#include <memory>

#include "base/progress.h"
#include "pipeline/runtime/memory.h"

namespace ppnet::pipeline {

void hand_over(Distributed& dist, const std::string& key, nlohmann::json plan, const ModelConfig& model,
               model::ProtoPNetImpl& net) {
  plan["model"] = model_config_json(model);
  dist.share(key, plan.dump());
  dist.broadcast_weights(net);
}

void hand_over_nothing(Distributed& dist, const std::string& key) { dist.share(key, "{}"); }

std::optional<TakenOver> take_over(Distributed& dist, const std::string& key, torch::Device device) {
  auto plan = nlohmann::json::parse(dist.share(key, ""));
  if (!plan.contains("model")) return std::nullopt;
  TakenOver t{plan, model_config_from_json(plan.at("model").get<std::string>())};
  t.net = model::ProtoPNet(to_model_options(t.model));
  t.net->to(device);
  dist.broadcast_weights(*t.net);
  t.net->eval();
  return t;
}

torch::Tensor rows_across_ranks(Distributed* dist, const std::filesystem::path& data, const std::vector<ListEntry>& list,
                                const ModelInput& input, int batch_size, int64_t width,
                                const std::function<torch::Tensor(const torch::Tensor&)>& rows_of,
                                const std::string& label, const std::string& what, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  const Shard shard{dist ? dist->rank() : 0, dist ? dist->size() : 1};
  const auto mine = round_robin_batches(list.size(), batch_size, shard);
  auto progress = !label.empty() && shard.rank == 0 ? std::make_unique<Progress>(label, mine.size()) : nullptr;
  auto rows = torch::zeros({static_cast<int64_t>(list.size()), width}, torch::TensorOptions().dtype(dtype));
  const auto index_of = torch::tensor(mine, torch::kInt64);
  BatchLoader loader(data, list, mine, input, batch_size, 0);
  Batch b;
  int64_t at = 0;
  while (loader.next(&b)) {
    const int64_t B = b.images.size(0);
    rows.index_copy_(0, index_of.slice(0, at, at + B), rows_of(b.images).to(torch::kCPU, dtype));
    at += B;
    if (progress) progress->advance(static_cast<uint64_t>(B));
  }
  release_free_memory();  // the pass's activations: what comes next needs the room
  if (dist) {
    std::vector<torch::Tensor> all = {rows};
    dist->all_reduce_sum(all, what);
  }
  return rows;
}

}  // namespace ppnet::pipeline
