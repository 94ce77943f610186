#include "pipeline/stages/handover.h"

#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "base/progress.h"
#include "base/sha256.h"
#include "pipeline/data/manifest.h"
#include "pipeline/runtime/memory.h"

namespace ppnet::pipeline {

namespace {
std::string manifest_digest(const std::filesystem::path& data) {
  const auto manifest = manifest_path(data);
  return std::filesystem::exists(manifest) ? sha256_of_file(manifest) : "none (no " + manifest.string() + ")";
}
}  // namespace

std::unique_ptr<Distributed> join_ranks(const std::filesystem::path& data) {
  auto dist = Distributed::from_environment(kDistributedTimeout);
  if (!dist) return dist;
  const std::string mine = manifest_digest(data);
  const std::string leader = dist->share("data manifest", mine);
  if (mine != leader) {
    throw std::runtime_error("rank " + std::to_string(dist->rank()) + ": " + data.string() + " is not rank 0's data (" +
                             manifest_path(data).string() + ": sha256 " + mine + "; rank 0's: " + leader +
                             "): every node needs the same prepared data, one shared folder or copies of it");
  }
  return dist;
}

std::filesystem::path share_file(Distributed& dist, const std::filesystem::path& path, const std::filesystem::path& copy,
                                 const std::string& what) {
  const std::string key = "size of " + what;
  std::string bytes;
  if (dist.rank() == 0) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream read;
    read << in.rdbuf();
    if (!in) {
      const std::string message = path.string() + ": cannot read " + what;
      dist.publish_error(key, message);  // the others stop with it instead of waiting
      throw std::runtime_error(message);
    }
    bytes = read.str();
  }
  const int64_t size = std::stoll(dist.share(key, std::to_string(bytes.size())));
  std::vector<torch::Tensor> sent = {torch::zeros({size}, torch::kUInt8)};
  if (dist.rank() == 0) std::memcpy(sent[0].data_ptr(), bytes.data(), bytes.size());
  if (size > 0) dist.all_reduce_sum(sent, what);  // rank 0's bytes plus zeros: a broadcast
  if (dist.rank() == 0) return path;
  std::ofstream out(copy, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(sent[0].data_ptr()), static_cast<std::streamsize>(size));
  if (!out.flush()) throw std::runtime_error(copy.string() + ": cannot write rank 0's " + what);
  return copy;
}

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
