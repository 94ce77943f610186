#include <torch/torch.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "base/interrupt.h"
#include "base/log.h"
#include "base/memory_size.h"
#include "base/progress.h"
#include "model/last_layer_solver.h"
#include "model/loss.h"
#include "pipeline/runtime/memory.h"
#include "pipeline/runtime/runtime.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/stages/feature_batch.h"
#include "pipeline/stages/handover.h"
#include "pipeline/stages/image_data.h"
#include "pipeline/stages/last_layer.h"
#include "pipeline/stages/stage_settings.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const char* const kStopped = "interrupted; run 'ppnet last-layer --resume' to continue";

// Minimum distances (N×P) and labels (N) of a list in `order` (Adam's --recompute epochs), through
// the frozen network.
std::pair<torch::Tensor, torch::Tensor> min_distances_of(model::ProtoPNetImpl& net, const fs::path& data,
                                                         const std::vector<ListEntry>& list, std::vector<int64_t> order,
                                                         const ModelInput& input, int batch_size, torch::Device device) {
  torch::NoGradGuard no_grad;
  BatchLoader loader(data, list, std::move(order), input, batch_size, 0);
  std::vector<torch::Tensor> d, y;
  Batch b;
  while (loader.next(&b)) {
    d.push_back(net.forward(b.images.to(device)).min_distances);
    y.push_back(b.labels.to(device));
    stop_if_requested(kStopped);
  }
  if (d.empty()) {  // an empty split (a data set without test images, say)
    return {torch::zeros({0, net.num_prototypes()}, torch::TensorOptions().device(device)),
            torch::zeros({0}, torch::TensorOptions().dtype(torch::kInt64).device(device))};
  }
  return {torch::cat(d), torch::cat(y)};
}

// Work on a cached matrix (N×P, float32 or float16) takes blocks of about this many bytes of
// float32 rows, so that no whole-matrix temporary joins the cache.
constexpr int64_t kBlockBytes = int64_t{8} << 20;

// `fn(begin, end)` for consecutive blocks of the rows of `m`.
void for_row_blocks(const torch::Tensor& m, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t rows = std::max<int64_t>(1, kBlockBytes / (4 * std::max<int64_t>(1, m.size(1))));
  for (int64_t b = 0; b < m.size(0); b += rows) fn(b, std::min(m.size(0), b + rows));
}

// The similarities of cached minimum distances, in the cache's dtype.
torch::Tensor similarities_of(model::ProtoPNetImpl& net, const torch::Tensor& d) {
  torch::NoGradGuard no_grad;
  auto s = torch::empty_like(d);
  for_row_blocks(d, [&](int64_t b, int64_t e) { s.slice(0, b, e).copy_(net.similarity(d.slice(0, b, e).to(torch::kFloat))); });
  return s;
}

// The loss terms and accuracy of the current last layer over a whole cached matrix, a block of
// rows at a time (every term but the L1 is a mean over the rows).
struct FullBatch {
  model::LossTerms terms;
  double loss = 0, accuracy = 0;
};
FullBatch full_batch(model::ProtoPNetImpl& net, const torch::Tensor& d, const torch::Tensor& y,
                     const model::LossCoefficients& coef) {
  torch::NoGradGuard no_grad;
  const auto& weight = net.last_layer()->weight;
  FullBatch b;
  double cross_entropy = 0, cluster = 0, separation = 0, avg_separation = 0;  // sums over rows
  int64_t correct = 0;
  for_row_blocks(d, [&](int64_t begin, int64_t end) {
    const auto block = d.slice(0, begin, end).to(torch::kFloat), labels = y.slice(0, begin, end);
    const auto logits = net.last_layer()(net.similarity(block));
    const auto part = model::compute_loss_terms(logits, block, labels, net.prototype_class_identity(), weight,
                                                net.max_distance());
    const double rows = static_cast<double>(end - begin);
    cross_entropy += part.cross_entropy.item<double>() * rows;
    cluster += part.cluster.item<double>() * rows;
    separation += part.separation.item<double>() * rows;
    avg_separation += part.avg_separation.item<double>() * rows;
    correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
  });
  const double n = static_cast<double>(std::max<int64_t>(1, y.size(0)));
  auto& t = b.terms;
  const auto options = torch::TensorOptions().dtype(torch::kFloat).device(d.device());
  const auto mean = [&](double sum) { return torch::tensor(sum / n, options); };
  t.cross_entropy = mean(cross_entropy);
  t.cluster = mean(cluster);
  t.separation = mean(separation);
  t.avg_separation = mean(avg_separation);
  t.l1 = model::off_class_l1(weight, net.prototype_class_identity());
  b.loss = model::total_loss(t, coef).item<double>();
  b.accuracy = static_cast<double>(correct) / n;
  return b;
}

// Fills the evaluation fields of `row` from the cached evaluation split.
void add_evaluation(db::EpochRow& row, model::ProtoPNetImpl& net, const torch::Tensor& d, const torch::Tensor& y,
                    const std::string& split) {
  row.eval_split = split;
  if (y.size(0) == 0) return;
  const FullBatch b = full_batch(net, d, y, {});
  row.eval_cross_entropy = b.terms.cross_entropy.item<double>();
  row.eval_cluster = b.terms.cluster.item<double>();
  row.eval_separation = b.terms.separation.item<double>();
  row.eval_avg_separation = b.terms.avg_separation.item<double>();
  row.eval_accuracy = b.accuracy;
}

// One progress line every half second on a terminal, every 10 s otherwise.
class SolverProgress {
 public:
  bool due() {
    if (!log::progress_shown()) return false;
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
    if (tty_ && log::progress_shown()) std::fputc('\n', stderr);
  }

 private:
  bool tty_ = ::isatty(2) == 1;
  Clock::time_point last_ = Clock::now() - std::chrono::hours(1);
};

// What the solvers of one last-layer stage work on: the model with its last layer trainable,
// the stage's position and settings, and the cached minimum distances.
struct Fit {
  RunFolder& run;
  model::ProtoPNetImpl& net;
  torch::optim::Adam& optimizer;  // Adam's state; the proximal solver keeps none
  TrainingPosition& pos;
  const LastLayerSettings& settings;
  model::LossCoefficients coef;
  torch::Device device;
  int64_t memory_budget;  // --memory-budget, bytes
  fs::path data;
  std::vector<ListEntry> train_list;
  ModelInput input;
  torch::Tensor train_d, train_y;  // undefined with --recompute
  torch::Tensor eval_d, eval_y;
  std::string eval_split;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The convex problem to its optimum, recorded as the stage's one row and final checkpoint.
void solve_prox(Fit& f, LastLayerResult& report) {
  const auto start = Clock::now();
  auto& weight = f.net.last_layer()->weight;
  model::ProxOptions options;
  options.max_iterations = f.settings.max_iterations;
  options.tolerance = f.settings.tolerance;
  options.copy_bytes = std::max<int64_t>(0, (f.memory_budget - resident_memory()) / 2);  // the other half: the rest
  options.method = f.settings.solver == Solver::kNewton  ? model::ProxMethod::kNewton
                   : f.settings.solver == Solver::kFista ? model::ProxMethod::kFista
                                                         : model::ProxMethod::kAuto;
  SolverProgress progress;
  double last_residual = -1;
  const auto result = model::solve_last_layer_prox(
      similarities_of(f.net, f.train_d), f.train_y, f.net.prototype_class_identity(), weight, f.coef.l1,
      options, [&](const model::ProxProgress& p) {
        if (p.residual >= 0) last_residual = p.residual;
        if (progress.due()) {
          char text[160];
          std::snprintf(text, sizeof text, "last-layer %s: iteration %lld objective %.8f residual %.2e",
                        solver_name(f.settings.solver), static_cast<long long>(p.iteration), p.objective,
                        last_residual);
          progress.line(text);
        }
        return !InterruptScope::stop_requested();
      });
  if (result.stopped) {
    f.run.store().set_stage_status(f.pos.stage_id, db::StageStatus::kInterrupted);
    throw Interrupted(InterruptScope::signal_number(), "interrupted; run 'ppnet last-layer --resume' to solve again");
  }
  {
    torch::NoGradGuard no_grad;
    weight.copy_(result.weight);
  }
  report.iterations = result.iterations;
  report.converged = result.converged;
  report.initial_objective = result.initial.objective;
  report.objective = result.final.objective;
  report.residual = result.final.residual;
  db::EpochRow row;
  const FullBatch train = full_batch(f.net, f.train_d, f.train_y, f.coef);
  row.train_loss = train.loss;
  row.train_cross_entropy = train.terms.cross_entropy.item<double>();
  row.train_cluster = train.terms.cluster.item<double>();
  row.train_separation = train.terms.separation.item<double>();
  row.train_avg_separation = train.terms.avg_separation.item<double>();
  row.train_accuracy = train.accuracy;
  add_evaluation(row, f.net, f.eval_d, f.eval_y, f.eval_split);
  row.stage_id = f.pos.stage_id;
  row.epoch = 0;
  row.l1 = model::off_class_l1(weight, f.net.prototype_class_identity()).item<double>();
  row.prototype_distance = model::mean_pairwise_prototype_distance(f.net.prototype_vectors()).item<double>();
  row.seconds = seconds_since(start);
  row.images_per_second =  // images read from the cache, every pass over it counted
      static_cast<double>(f.train_list.size()) * static_cast<double>(result.passes) / std::max(row.seconds, 1e-9);
  f.pos.epoch = 1;
  save_stage_checkpoint(f.run, f.net, f.optimizer, f.pos, true, row);
  log::info(log::format("last-layer %s (%s): %lld iterations, %lld passes, objective %.8f → %.8f, residual %.2e%s | "
                        "%s acc %.4f | %.2f s",
               solver_name(f.settings.solver), model::prox_method_name(result.method),
               static_cast<long long>(result.iterations), static_cast<long long>(result.passes),
               result.initial.objective, result.final.objective,
               result.final.residual, result.converged ? "" : " (not converged: raise --max-iterations)",
               f.eval_split.c_str(), row.eval_accuracy, row.seconds));
  report.epochs.push_back({0, row.train_loss, row.train_accuracy, row.eval_accuracy, row.images_per_second,
                           row.seconds, f.eval_split});
}

// The reference's epochs of Adam, per batch, in a seeded order; a row and a checkpoint per epoch.
void adam_epochs(Fit& f, LastLayerResult& report) {
  const int epochs = f.settings.epochs, batch_size = f.settings.batch_size;
  const uint64_t seed = f.settings.seed;
  const bool recompute = f.settings.recompute;
  const int64_t n = static_cast<int64_t>(f.train_list.size());
  const auto& identity = f.net.prototype_class_identity();
  auto& weight = f.net.last_layer()->weight;
  while (f.pos.epoch < epochs) {
    const auto epoch_start = Clock::now();
    const int64_t e = f.pos.epoch;
    const auto order = epoch_order(n, seed * 1000003 + static_cast<uint64_t>(f.pos.stage_id), e);
    torch::Tensor epoch_d, epoch_y;  // in this epoch's order
    if (recompute) {
      std::tie(epoch_d, epoch_y) = min_distances_of(f.net, f.data, f.train_list, order, f.input, batch_size, f.device);
    } else {
      const auto idx = torch::tensor(order, torch::kInt64).to(f.device);
      epoch_d = f.train_d.index_select(0, idx);
      epoch_y = f.train_y.index_select(0, idx);
    }
    EpochMetrics sums;
    for (int64_t begin = 0; begin < n; begin += batch_size) {
      const int64_t end = std::min(n, begin + batch_size);
      const auto d = epoch_d.slice(0, begin, end).to(torch::kFloat), y = epoch_y.slice(0, begin, end);
      f.optimizer.zero_grad();
      const auto logits = f.net.last_layer()(f.net.similarity(d));
      const auto t = model::compute_loss_terms(logits, d, y, identity, weight, f.net.max_distance());
      const auto loss = model::total_loss(t, f.coef);
      loss.backward();
      f.optimizer.step();
      sums.add(t, loss, logits, y);
    }
    torch::NoGradGuard no_grad;
    db::EpochRow row;
    add_evaluation(row, f.net, f.eval_d, f.eval_y, f.eval_split);
    row.stage_id = f.pos.stage_id;
    row.epoch = e;
    write_train_metrics(sums, row);
    row.l1 = model::off_class_l1(weight, identity).item<double>();
    row.prototype_distance = model::mean_pairwise_prototype_distance(f.net.prototype_vectors()).item<double>();
    row.seconds = seconds_since(epoch_start);
    row.images_per_second = static_cast<double>(n) / std::max(row.seconds, 1e-9);
    f.pos.epoch = e + 1;
    save_stage_checkpoint(f.run, f.net, f.optimizer, f.pos, f.pos.epoch == epochs, row);
    log::info(log::format("last-layer epoch %lld/%d: train loss %.4f acc %.4f | %s acc %.4f | %.2f s",
                 static_cast<long long>(e + 1), epochs, row.train_loss, row.train_accuracy, f.eval_split.c_str(),
                 row.eval_accuracy, row.seconds));
    report.epochs.push_back({e, row.train_loss, row.train_accuracy, row.eval_accuracy, row.images_per_second,
                             row.seconds, f.eval_split});
    stop_if_requested(kStopped);
  }
}

// The minimum distances of `list` (N×P) and its labels, the images split across the ranks of
// `dist` when given.
std::pair<torch::Tensor, torch::Tensor> shared_min_distances(Distributed* dist, model::ProtoPNetImpl& net,
                                                             const fs::path& data, const std::vector<ListEntry>& list,
                                                             const ModelInput& input, int batch_size, torch::Device device,
                                                             const std::string& label, torch::ScalarType dtype) {
  const auto d = rows_across_ranks(
      dist, data, list, input, batch_size, net.num_prototypes(),
      [&](const torch::Tensor& images) {
        stop_if_requested(kStopped);
        return net.forward(images.to(device)).min_distances;
      },
      label, "the last layer's features", dtype);
  std::vector<int64_t> labels;
  for (const auto& e : list) labels.push_back(e.class_index);
  return {d.to(device), torch::tensor(labels, torch::kInt64).to(device)};
}

// A rank other than 0 in a data-parallel last-layer stage: it receives the model from rank 0,
// computes its share of the features, and is done; rank 0 solves and records.
LastLayerResult feature_worker(const LastLayerConfig& c, const Runtime& rt, Distributed& dist) {
  LastLayerResult report;
  report.run = c.run;
  report.rank = dist.rank();
  auto given = take_over(dist, "last-layer plan", rt.device);
  if (!given) return report;
  const fs::path data(c.data);
  const auto& plan = given->plan;
  const int batch = plan.at("eval_batch_size").get<int>();
  const auto dtype = plan.at("compact").get<bool>() ? torch::kHalf : torch::kFloat;
  const ModelInput input = model_input(given->model);
  shared_min_distances(&dist, *given->net, data, read_list(data, plan.at("eval_split").get<std::string>()), input,
                       batch, rt.device, "", dtype);
  if (plan.at("train").get<bool>()) {
    shared_min_distances(&dist, *given->net, data, read_list(data, "train"), input, batch, rt.device, "", dtype);
  }
  return report;
}

// F and its optimality residual on the cached training similarities; -1 without a cache.
model::LastLayerObjective objective_of(const Fit& f) {
  if (!f.train_d.defined()) return {-1, -1, -1, -1};
  return model::last_layer_objective(similarities_of(f.net, f.train_d), f.train_y,
                                     f.net.prototype_class_identity(), f.net.last_layer()->weight, f.coef.l1);
}

// The model with only its last layer trainable and Adam over it, at the stage's start or, resumed,
// at its last checkpoint (weights, Adam's state and position).
struct LastLayerModel {
  model::ProtoPNet net{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer;
  TrainingPosition pos;
};

LastLayerModel load_last_layer_model(RunFolder& run, const ModelConfig& m, const StageStart& stage,
                                     const LastLayerSettings& s, const std::optional<db::CheckpointRow>& latest,
                                     torch::Device device) {
  LastLayerModel l;
  l.net = model::ProtoPNet(to_model_options(m));
  l.net->to(device);
  for (auto& p : l.net->parameters()) p.set_requires_grad(false);
  l.net->last_layer()->weight.set_requires_grad(true);
  l.optimizer = std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{l.net->last_layer()->weight},
                                                     torch::optim::AdamOptions(s.lr));
  l.pos.stage_id = stage.stage_id;
  if (latest) {
    load_checkpoint(run, latest->path, *l.net, device, l.optimizer.get(), &l.pos);
  } else {
    load_checkpoint(run, stage.start_checkpoint, *l.net, device, nullptr, nullptr);
  }
  l.net->eval();  // features frozen: BatchNorm uses its statistics, nothing else changes
  return l;
}

// The features are frozen and no random transform is applied, so every image's minimum distances
// (hence similarities) are the same each epoch: computed once, shared out across the ranks.
void cache_features(Fit& f, Distributed* dist, int eval_batch, bool cache_train, torch::ScalarType dtype,
                    LastLayerResult& report) {
  const auto cache_start = Clock::now();
  const auto eval_list = read_list(f.data, f.eval_split);
  std::tie(f.eval_d, f.eval_y) =
      shared_min_distances(dist, f.net, f.data, eval_list, f.input, eval_batch, f.device, "", dtype);
  if (cache_train) {
    std::tie(f.train_d, f.train_y) = shared_min_distances(dist, f.net, f.data, f.train_list, f.input, eval_batch,
                                                          f.device, "last-layer: features", dtype);
  }
  report.cache_seconds = seconds_since(cache_start);
}

// What the stage will cache: the minimum distances of the evaluation split and, when
// `cache_train`, of the training list, with the training similarities beside them while an exact
// solver runs. Kept in float16 when float32 would not fit in the memory budget beside what the
// process holds; the solvers and the loss take blocks of rows in float32 or float64 from it.
struct CachePlan {
  torch::ScalarType dtype = torch::kFloat;
  int64_t bytes = 0;
};
CachePlan plan_cache(const Fit& f, const Manifest& manifest, bool cache_train, bool prox) {
  const int64_t train = cache_train ? static_cast<int64_t>(f.train_list.size()) : 0;
  int64_t rows = train + (prox ? train : 0);
  if (const auto split = manifest.counts.find(f.eval_split); split != manifest.counts.end()) {
    for (const int64_t n : split->second) rows += n;
  }
  const int64_t float32 = rows * f.net.num_prototypes() * static_cast<int64_t>(sizeof(float));
  const int64_t held = resident_memory(), room = f.memory_budget - held;
  if (float32 <= room / 2) return {torch::kFloat, float32};  // the other half for the feature pass and the solver
  log::info("last-layer: the features' cache takes " + memory_size_text(float32) + " in float32, more than the memory " +
            "budget (" + memory_size_text(f.memory_budget) + ", " + memory_size_text(held) +
            " held) leaves for it: kept in float16 (" + memory_size_text(float32 / 2) + ")" +
            (float32 / 2 > room ? "; that too exceeds the budget: raise --memory-budget or take fewer images" : ""));
  return {torch::kHalf, float32 / 2};
}

// Solves (or, killed after the final checkpoint was recorded and before the stage was marked
// done, takes that checkpoint as the solution: solving again would go on from it and end
// elsewhere), reporting the objective before and after and the optimality residual.
void solve(Fit& f, bool prox, bool already_solved, LastLayerResult& report) {
  const auto solve_start = Clock::now();
  if (already_solved) {
    const auto final = objective_of(f);
    report.initial_objective = report.objective = final.objective;
    report.residual = final.residual;
  } else if (prox) {
    solve_prox(f, report);  // reports the objectives it computed anyway
  } else {
    report.initial_objective = objective_of(f).objective;
    adam_epochs(f, report);
    const auto final = objective_of(f);
    report.objective = final.objective;
    report.residual = final.residual;
  }
  report.solve_seconds = seconds_since(solve_start);
}

// Last-layer stage `stage` of the opened run, begun: the features, the solve, the stage's "done".
LastLayerResult fit_stage(const LastLayerConfig& c, const Runtime& rt, Distributed* dist, RunWithData& opened,
                          const StageStart& stage, LastLayerResult report, Clock::time_point start) {
  const fs::path data(c.data);
  RunFolder& run = opened.run;
  db::RunStore& store = run.store();
  const LastLayerSettings s = last_layer_settings_from_json(stage.settings_json, stage.stage_id);
  report.solver = solver_name(s.solver);
  const bool prox = s.solver != Solver::kAdam;  // any of the exact solvers
  const auto existing = store.checkpoints(stage.stage_id);
  const auto latest = existing.empty() ? std::nullopt : std::optional<db::CheckpointRow>(existing.back());
  LastLayerModel l = load_last_layer_model(run, opened.model, stage, s, latest, rt.device);
  store.set_stage_status(stage.stage_id, db::StageStatus::kRunning);
  InterruptScope interrupt_scope;

  Fit f{run, *l.net, *l.optimizer, l.pos, s, {1.0, 0.0, 0.0, s.l1}, rt.device, rt.memory_budget, data,
        read_list(data, "train"), model_input(opened.model), {}, {}, {}, {},
        opened.manifest.counts.count("val") ? "val" : "test"};
  const bool cache_train = prox || !s.recompute;
  const CachePlan cache = plan_cache(f, opened.manifest, cache_train, prox);
  const int batch = feature_batch_size(*l.net, f.input, s.eval_batch_size, rt, cache.bytes, "last-layer: features");
  if (dist) {  // the other ranks compute their shares of the features with the same weights, batches and dtype
    hand_over(*dist, "last-layer plan",
              {{"eval_batch_size", batch}, {"eval_split", f.eval_split}, {"train", cache_train},
               {"compact", cache.dtype == torch::kHalf}},
              opened.model, *l.net);
  }
  report.feature_batch = batch;
  report.cache_dtype = cache.dtype == torch::kHalf ? "float16" : "float32";
  cache_features(f, dist, batch, cache_train, cache.dtype, report);
  solve(f, prox, latest && latest->final, report);
  store.set_stage_status(stage.stage_id, db::StageStatus::kDone);
  const auto weight = l.net->last_layer()->weight.detach();
  report.off_class_sparsity = model::off_class_sparsity(weight, l.net->prototype_class_identity()).item<double>();
  report.off_class_zero =
      model::off_class_sparsity(weight, l.net->prototype_class_identity(), std::numeric_limits<float>::min()).item<double>();
  report.seconds = seconds_since(start);
  return report;
}

LastLayerResult solve_on_rank_zero(const LastLayerConfig& c, const Runtime& rt, Distributed* dist, Clock::time_point start) {
  const fs::path data(c.data);
  RunWithData opened = open_run_with_data(c.run, data);
  RunFolder& run = opened.run;
  const LastLayerSettings requested{c.solver, c.epochs, c.batch_size,     c.eval_batch_size, c.lr,
                                    c.l1,     c.max_iterations, c.tolerance, c.recompute,       c.runtime.seed};
  const StageStart stage = resolve_stage(run, db::StageKind::kLastLayer, c.resume, nlohmann::json(requested).dump(),
                                         "'ppnet last-layer --resume'", ElasticJob::from_environment());
  LastLayerResult report;
  report.run = c.run;
  report.stage_id = stage.stage_id;
  report.resumed = stage.resumed;
  if (stage.already_done) {
    if (dist) hand_over_nothing(*dist, "last-layer plan");
    report.already_done = true;
    return report;
  }
  return within_stage(&run, stage.stage_id, [&] { return fit_stage(c, rt, dist, opened, stage, report, start); });
}

}  // namespace

LastLayerResult run_last_layer(const LastLayerConfig& c) {
  const auto start = Clock::now();
  const Runtime rt = start_runtime(c.runtime);
  const auto dist = join_ranks(c.data);
  return on_ranks(
      dist.get(), "last-layer plan", [&](Distributed* dist) { return solve_on_rank_zero(c, rt, dist, start); },
      [&](Distributed& dist) { return feature_worker(c, rt, dist); });
}

}  // namespace ppnet::pipeline
