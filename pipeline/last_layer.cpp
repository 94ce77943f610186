#include <torch/torch.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "model/loss.h"
#include "pipeline/commands.h"
#include "pipeline/image_data.h"
#include "pipeline/interrupt.h"
#include "pipeline/progress.h"
#include "pipeline/run_folder.h"
#include "pipeline/runtime.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Minimum distances (N×P) and labels (N) of a list, through the frozen network.
std::pair<torch::Tensor, torch::Tensor> min_distances_of(model::ProtoPNetImpl& net, const fs::path& data,
                                                         const std::vector<ListEntry>& list, std::vector<int64_t> order,
                                                         int img_size, int batch_size, torch::Device device,
                                                         const std::string& label) {
  torch::NoGradGuard no_grad;
  BatchLoader loader(data, list, std::move(order), img_size, batch_size, 0);
  std::unique_ptr<Progress> progress = label.empty() ? nullptr : std::make_unique<Progress>(label, list.size());
  std::vector<torch::Tensor> d, y;
  Batch b;
  while (loader.next(&b)) {
    d.push_back(net.forward(b.images.to(device)).min_distances);
    y.push_back(b.labels.to(device));
    if (progress) progress->advance(static_cast<uint64_t>(b.images.size(0)));
    if (InterruptScope::stop_requested()) {
      throw Interrupted(InterruptScope::signal_number(), "interrupted; run 'ppnet last-layer --resume' to continue");
    }
  }
  if (d.empty()) {  // an empty split (a data set without test images, say)
    return {torch::zeros({0, net.num_prototypes()}, torch::TensorOptions().device(device)),
            torch::zeros({0}, torch::TensorOptions().dtype(torch::kInt64).device(device))};
  }
  return {torch::cat(d), torch::cat(y)};
}

}  // namespace

LastLayerReport run_last_layer(const LastLayerConfig& c) {
  const auto start = Clock::now();
  const Runtime rt = start_runtime(c.runtime);
  const fs::path data(c.data);
  RunWithData opened = open_run_with_data(c.run, data);
  RunFolder& run = opened.run;
  const Manifest& manifest = opened.manifest;
  const ModelConfig& m = opened.model;
  db::RunStore& store = run.store();

  const nlohmann::json requested = {{"epochs", c.epochs}, {"batch_size", c.batch_size},
                                    {"eval_batch_size", c.eval_batch_size}, {"lr", c.lr},
                                    {"l1", c.l1}, {"recompute", c.recompute}, {"seed", c.runtime.seed}};
  const StageStart stage = resolve_stage(run, "last_layer", c.resume, requested.dump(), "'ppnet last-layer --resume'");
  LastLayerReport report;
  report.run = c.run;
  report.stage_id = stage.stage_id;
  report.resumed = stage.resumed;
  if (stage.already_done) {
    report.already_done = true;
    return report;
  }
  const auto s = nlohmann::json::parse(stage.settings_json);
  const int epochs = s.at("epochs").get<int>(), batch_size = s.at("batch_size").get<int>();
  const bool recompute = s.at("recompute").get<bool>();
  const double l1 = s.at("l1").get<double>();
  const uint64_t seed = s.at("seed").get<uint64_t>();
  const model::LossCoefficients coef{1.0, 0.0, 0.0, l1};

  model::ProtoPNet net(to_model_options(m));
  net->to(rt.device);
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  auto& weight = net->last_layer()->weight;
  weight.set_requires_grad(true);
  torch::optim::Adam optimizer(std::vector<torch::Tensor>{weight}, torch::optim::AdamOptions(s.at("lr").get<double>()));
  TrainingPosition pos;
  pos.stage_id = stage.stage_id;
  pos.sums.assign(7, 0.0);
  const auto existing = store.checkpoints(stage.stage_id);
  if (!existing.empty()) {
    load_checkpoint(run.absolute(existing.back().path), *net, rt.device, &optimizer, &pos);
  } else {
    load_checkpoint(run.absolute(stage.start_checkpoint), *net, rt.device, nullptr, nullptr);
  }
  net->eval();  // features frozen: BatchNorm uses its statistics, nothing else changes
  store.set_stage_status(stage.stage_id, "running");
  InterruptScope interrupt_scope;

  // The features are frozen and no random transform is applied, so every image's minimum
  // distances (hence similarities) are the same each epoch: compute them once.
  const auto train_list = read_list(data, "train");
  const std::string eval_split = manifest.counts.count("val") ? "val" : "test";
  const auto eval_list = read_list(data, eval_split);
  const auto cache_start = Clock::now();
  const auto [eval_d, eval_y] = min_distances_of(*net, data, eval_list, sequential_order(eval_list.size()), m.img_size,
                                                 s.at("eval_batch_size").get<int>(), rt.device, "");
  torch::Tensor train_d, train_y;
  if (!recompute) {
    std::tie(train_d, train_y) = min_distances_of(*net, data, train_list, sequential_order(train_list.size()), m.img_size,
                                                  s.at("eval_batch_size").get<int>(), rt.device, "last-layer: features");
  }
  report.cache_seconds = std::chrono::duration<double>(Clock::now() - cache_start).count();
  const auto& identity = net->prototype_class_identity();
  const int64_t n = static_cast<int64_t>(train_list.size());

  while (pos.epoch < epochs) {
    const auto epoch_start = Clock::now();
    const int64_t e = pos.epoch;
    const auto order = epoch_order(n, seed * 1000003 + static_cast<uint64_t>(stage.stage_id), e);
    torch::Tensor epoch_d, epoch_y;  // in this epoch's order
    if (recompute) {
      std::tie(epoch_d, epoch_y) = min_distances_of(*net, data, train_list, order, m.img_size, batch_size, rt.device, "");
    } else {
      const auto idx = torch::tensor(order, torch::kInt64).to(rt.device);
      epoch_d = train_d.index_select(0, idx);
      epoch_y = train_y.index_select(0, idx);
    }
    std::vector<double> sums(7, 0.0);
    for (int64_t begin = 0; begin < n; begin += batch_size) {
      const int64_t end = std::min(n, begin + batch_size);
      const auto d = epoch_d.slice(0, begin, end), y = epoch_y.slice(0, begin, end);
      optimizer.zero_grad();
      const auto logits = net->last_layer()(model::similarity_from_distance(d));
      const auto t = model::compute_loss_terms(logits, d, y, identity, weight, net->max_distance());
      const auto loss = model::total_loss(t, coef);
      loss.backward();
      optimizer.step();
      const double bsz = static_cast<double>(end - begin);
      sums[0] += loss.item<double>() * bsz;
      sums[1] += t.cross_entropy.item<double>() * bsz;
      sums[2] += t.cluster.item<double>() * bsz;
      sums[3] += t.separation.item<double>() * bsz;
      sums[4] += t.avg_separation.item<double>() * bsz;
      sums[5] += static_cast<double>(logits.argmax(1).eq(y).sum().item<int64_t>());
      sums[6] += bsz;
    }
    torch::NoGradGuard no_grad;
    db::EpochRow row;
    if (eval_y.size(0) > 0) {
      const auto eval_logits = net->last_layer()(model::similarity_from_distance(eval_d));
      const auto et = model::compute_loss_terms(eval_logits, eval_d, eval_y, identity, weight, net->max_distance());
      row.eval_cross_entropy = et.cross_entropy.item<double>();
      row.eval_cluster = et.cluster.item<double>();
      row.eval_separation = et.separation.item<double>();
      row.eval_avg_separation = et.avg_separation.item<double>();
      row.eval_accuracy = static_cast<double>(eval_logits.argmax(1).eq(eval_y).sum().item<int64_t>()) /
                          static_cast<double>(eval_y.size(0));
    }
    row.stage_id = stage.stage_id;
    row.epoch = e;
    row.train_loss = sums[0] / sums[6];
    row.train_cross_entropy = sums[1] / sums[6];
    row.train_cluster = sums[2] / sums[6];
    row.train_separation = sums[3] / sums[6];
    row.train_avg_separation = sums[4] / sums[6];
    row.train_accuracy = sums[5] / sums[6];
    row.eval_split = eval_split;
    row.l1 = model::off_class_l1(weight, identity).item<double>();
    row.prototype_distance = model::mean_pairwise_prototype_distance(net->prototype_vectors()).item<double>();
    row.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    row.images_per_second = static_cast<double>(n) / std::max(row.seconds, 1e-9);
    pos.epoch = e + 1;
    save_stage_checkpoint(run, *net, optimizer, pos, pos.epoch == epochs, row);
    std::fprintf(stderr, "last-layer epoch %lld/%d: train loss %.4f acc %.4f | %s acc %.4f | %.2f s\n",
                 static_cast<long long>(e + 1), epochs, row.train_loss, row.train_accuracy, eval_split.c_str(),
                 row.eval_accuracy, row.seconds);
    report.epochs.push_back({e, row.train_loss, row.train_accuracy, row.eval_accuracy, row.images_per_second,
                             row.seconds, eval_split});
    if (InterruptScope::stop_requested()) {
      throw Interrupted(InterruptScope::signal_number(), "interrupted; run 'ppnet last-layer --resume' to continue");
    }
  }
  store.set_stage_status(stage.stage_id, "done");
  report.off_class_sparsity = model::off_class_sparsity(weight.detach(), identity).item<double>();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

}  // namespace ppnet::pipeline
