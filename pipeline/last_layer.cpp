#include <torch/torch.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "model/last_layer_solver.h"
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

// Training-set metrics of the current last layer on the whole cached matrix at once: what an
// epoch row records for a solver that works full batch.
db::EpochRow full_batch_row(model::ProtoPNetImpl& net, const torch::Tensor& d, const torch::Tensor& y,
                            const model::LossCoefficients& coef) {
  torch::NoGradGuard no_grad;
  const auto& weight = net.last_layer()->weight;
  const auto logits = net.last_layer()(model::similarity_from_distance(d));
  const auto t = model::compute_loss_terms(logits, d, y, net.prototype_class_identity(), weight, net.max_distance());
  db::EpochRow row;
  row.train_loss = model::total_loss(t, coef).item<double>();
  row.train_cross_entropy = t.cross_entropy.item<double>();
  row.train_cluster = t.cluster.item<double>();
  row.train_separation = t.separation.item<double>();
  row.train_avg_separation = t.avg_separation.item<double>();
  row.train_accuracy = y.size(0) ? logits.argmax(1).eq(y).sum().item<double>() / static_cast<double>(y.size(0)) : 0.0;
  return row;
}

// Fills the evaluation fields of `row` from the cached evaluation split.
void add_evaluation(db::EpochRow& row, model::ProtoPNetImpl& net, const torch::Tensor& d, const torch::Tensor& y,
                    const std::string& split) {
  torch::NoGradGuard no_grad;
  row.eval_split = split;
  if (y.size(0) == 0) return;
  const auto& weight = net.last_layer()->weight;
  const auto logits = net.last_layer()(model::similarity_from_distance(d));
  const auto t = model::compute_loss_terms(logits, d, y, net.prototype_class_identity(), weight, net.max_distance());
  row.eval_cross_entropy = t.cross_entropy.item<double>();
  row.eval_cluster = t.cluster.item<double>();
  row.eval_separation = t.separation.item<double>();
  row.eval_avg_separation = t.avg_separation.item<double>();
  row.eval_accuracy = logits.argmax(1).eq(y).sum().item<double>() / static_cast<double>(y.size(0));
}

// One progress line every half second on a terminal, every 10 s otherwise.
class SolverProgress {
 public:
  bool due() {
    const auto now = Clock::now();
    if (now - last_ < (tty_ ? std::chrono::milliseconds(500) : std::chrono::milliseconds(10000))) return false;
    last_ = now;
    return true;
  }
  void line(const std::string& text) {
    std::fprintf(stderr, "%s%s%s", tty_ ? "\r" : "", text.c_str(), tty_ ? "   " : "\n");
    std::fflush(stderr);
  }
  ~SolverProgress() {
    if (tty_) std::fputc('\n', stderr);
  }

 private:
  bool tty_ = ::isatty(2) == 1;
  Clock::time_point last_ = Clock::now() - std::chrono::hours(1);
};

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

  const nlohmann::json requested = {{"solver", c.solver}, {"epochs", c.epochs}, {"batch_size", c.batch_size},
                                    {"eval_batch_size", c.eval_batch_size}, {"lr", c.lr}, {"l1", c.l1},
                                    {"max_iterations", c.max_iterations}, {"tolerance", c.tolerance},
                                    {"recompute", c.recompute}, {"seed", c.runtime.seed}};
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
  report.solver = s.value("solver", std::string("adam"));  // stages recorded before --solver were Adam's
  const bool prox = report.solver == "prox";
  const int epochs = prox ? 1 : s.at("epochs").get<int>(), batch_size = s.at("batch_size").get<int>();
  const bool recompute = !prox && s.at("recompute").get<bool>();
  const double l1 = s.at("l1").get<double>();
  const uint64_t seed = s.at("seed").get<uint64_t>();
  const model::LossCoefficients coef{1.0, 0.0, 0.0, l1};

  model::ProtoPNet net(to_model_options(m));
  net->to(rt.device);
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  auto& weight = net->last_layer()->weight;
  weight.set_requires_grad(true);
  // The proximal solver keeps no state between runs: its optimizer here stays empty.
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
  const auto solve_start = Clock::now();
  if (!recompute) {
    report.initial_objective =
        model::last_layer_objective(model::similarity_from_distance(train_d), train_y, identity, weight, l1).objective;
  }

  if (prox) {
    model::ProxOptions options;
    options.max_iterations = s.at("max_iterations").get<int64_t>();
    options.tolerance = s.at("tolerance").get<double>();
    SolverProgress progress;
    double last_residual = -1;
    const auto result = model::solve_last_layer_prox(
        model::similarity_from_distance(train_d), train_y, identity, weight, l1, options,
        [&](const model::ProxProgress& p) {
          if (p.residual >= 0) last_residual = p.residual;
          if (progress.due()) {
            char text[160];
            std::snprintf(text, sizeof text, "last-layer prox: iteration %lld objective %.8f residual %.2e",
                          static_cast<long long>(p.iteration), p.objective, last_residual);
            progress.line(text);
          }
          return !InterruptScope::stop_requested();
        });
    if (result.stopped) {
      store.set_stage_status(stage.stage_id, "interrupted");
      throw Interrupted(InterruptScope::signal_number(), "interrupted; run 'ppnet last-layer --resume' to solve again");
    }
    {
      torch::NoGradGuard no_grad;
      weight.copy_(result.weight);
    }
    report.iterations = result.iterations;
    report.converged = result.converged;
    db::EpochRow row = full_batch_row(*net, train_d, train_y, coef);
    add_evaluation(row, *net, eval_d, eval_y, eval_split);
    row.stage_id = stage.stage_id;
    row.epoch = 0;
    row.l1 = model::off_class_l1(weight, identity).item<double>();
    row.prototype_distance = model::mean_pairwise_prototype_distance(net->prototype_vectors()).item<double>();
    row.seconds = std::chrono::duration<double>(Clock::now() - solve_start).count();
    row.images_per_second = static_cast<double>(n) * static_cast<double>(result.iterations) / std::max(row.seconds, 1e-9);
    pos.epoch = 1;
    save_stage_checkpoint(run, *net, optimizer, pos, true, row);
    std::fprintf(stderr, "last-layer prox: %lld iterations, objective %.8f → %.8f, residual %.2e%s | %s acc %.4f | %.2f s\n",
                 static_cast<long long>(result.iterations), result.initial.objective, result.final.objective,
                 result.final.residual, result.converged ? "" : " (not converged: raise --max-iterations)",
                 eval_split.c_str(), row.eval_accuracy, row.seconds);
    report.epochs.push_back({0, row.train_loss, row.train_accuracy, row.eval_accuracy, row.images_per_second,
                             row.seconds, eval_split});
  }

  while (!prox && pos.epoch < epochs) {
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
    add_evaluation(row, *net, eval_d, eval_y, eval_split);
    row.stage_id = stage.stage_id;
    row.epoch = e;
    row.train_loss = sums[0] / sums[6];
    row.train_cross_entropy = sums[1] / sums[6];
    row.train_cluster = sums[2] / sums[6];
    row.train_separation = sums[3] / sums[6];
    row.train_avg_separation = sums[4] / sums[6];
    row.train_accuracy = sums[5] / sums[6];
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
  report.solve_seconds = std::chrono::duration<double>(Clock::now() - solve_start).count();
  if (!recompute) {
    const auto final = model::last_layer_objective(model::similarity_from_distance(train_d), train_y, identity, weight, l1);
    report.objective = final.objective;
    report.residual = final.residual;
  }
  report.off_class_sparsity = model::off_class_sparsity(weight.detach(), identity).item<double>();
  report.off_class_zero = model::off_class_sparsity(weight.detach(), identity, std::numeric_limits<float>::min()).item<double>();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

}  // namespace ppnet::pipeline
