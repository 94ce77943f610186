#include <torch/torch.h>

#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <memory>
#include <optional>
#include <thread>

#include "base/interrupt.h"
#include "base/log.h"
#include "base/progress.h"
#include "base/version.h"
#include "model/loss.h"
#include "pipeline/data/masks.h"
#include "pipeline/formats/weights_file.h"
#include "pipeline/parallel/distributed.h"
#include "pipeline/runtime/runtime.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/stages/concept_inputs.h"
#include "pipeline/stages/feature_batch.h"
#include "pipeline/stages/handover.h"
#include "pipeline/stages/image_data.h"
#include "pipeline/stages/stage_settings.h"
#include "pipeline/stages/train.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kScratchJointEpochs = 12;

// The stage --stage names: warm or joint.
db::StageKind stage_kind(const TrainConfig& c) {
  if (c.stage == "warm") return db::StageKind::kWarm;
  if (c.stage == "joint") return db::StageKind::kJoint;
  throw std::runtime_error("--stage must be warm or joint");
}

// The options not given on the command line, from the recipe that suits the run. With a
// pretrained backbone (--weights) they are the reference's. Trained from scratch, its warm stage
// would train the head on a frozen *random* backbone and its backbone rate (1e-4, StepLR) learns
// too slowly; the from-scratch recipe skips warm and trains jointly at 1e-3 with a cosine decay
// to 0 over the stage (measured on Fashion-MNIST and digits: docs/usage.md, "Training from scratch").
TrainConfig with_recipe_defaults(TrainConfig c, bool pretrained) {
  const bool warm = stage_kind(c) == db::StageKind::kWarm;
  if (!c.epochs) c.epochs = pretrained ? (warm ? 5 : 10) : (warm ? 0 : kScratchJointEpochs);
  if (!c.lr_backbone) c.lr_backbone = pretrained ? 1e-4 : 1e-3;
  if (!c.lr_schedule) c.lr_schedule = pretrained ? LrSchedule::kStep : LrSchedule::kCosine;
  return c;
}

// A new joint stage continues the Adam state and StepLR schedule of the run's latest finished
// joint stage (the reference keeps one optimizer and one scheduler across its push cycles),
// unless --restart-optimizer, or a prune since then changed the prototypes the state belongs
// to. Fills the settings' continue_* fields and schedule_offset, or leaves them empty.
void continue_previous_joint(const TrainConfig& c, db::RunStore& store, TrainSettings& s) {
  if (stage_kind(c) != db::StageKind::kJoint || c.restart_optimizer) return;
  const auto stages = store.stages();
  int64_t epochs_before = 0;
  std::optional<db::StageRow> previous;
  for (const auto& st : stages) {
    if (st.kind == db::StageKind::kPrune) previous.reset();
    if (st.kind != db::StageKind::kJoint || st.status != db::StageStatus::kDone) continue;
    previous = st;
    epochs_before += train_settings_from_json(st.config_json, st.id).epochs;
  }
  if (!previous) return;
  const auto checkpoints = store.checkpoints(previous->id);
  if (checkpoints.empty() || !checkpoints.back().final) return;
  s.continue_optimizer = checkpoints.back().path;
  s.continue_stage = previous->id;
  s.schedule_offset = epochs_before;
}

// What a stage runs with, recorded in its row so that --resume continues identically.
TrainSettings stage_settings(const TrainConfig& c, int ranks) {
  TrainSettings s;
  s.epochs = *c.epochs;
  s.lr_schedule = *c.lr_schedule;
  s.batch_size = c.batch_size;
  s.eval_batch_size = c.eval_batch_size;
  s.lr_backbone = *c.lr_backbone;
  s.lr_add_on = c.lr_add_on;
  s.lr_prototypes = c.lr_prototypes;
  s.weight_decay = c.weight_decay;
  s.lr_step = c.lr_step;
  s.lr_gamma = c.lr_gamma;
  s.lr_step_offset = c.lr_step_offset;
  s.cross_entropy = c.cross_entropy;
  s.cluster = c.cluster;
  s.separation = c.separation;
  s.l1 = c.l1;
  s.fine_annotation = c.fine_annotation;
  s.annotated_fraction = c.annotated_fraction;
  s.fine_annotation_form = c.fine_annotation_form;
  s.forget = c.forget;
  s.remember = c.remember;
  s.checkpoint_every = c.checkpoint_every;
  s.flip = c.flip;
  s.seed = c.runtime.seed;
  s.threads = c.runtime.threads;
  s.ranks = ranks;
  s.amp = c.runtime.amp;  // a resumed stage computes in the resuming command's precision
  s.channels_last = c.runtime.channels_last;
  return s;
}

// `resuming`: --resume, or a torchrun restart, repeating the command that created the run.
void refuse_model_changes(const TrainConfig& c, const ModelConfig& m, const fs::path& run, bool resuming) {
  auto check = [&](const char* option, const std::string& asked, const std::string& recorded) {
    if (c.given.count(option) && asked != recorded) {
      throw std::runtime_error("run " + run.string() + " has --" + option + " " + recorded + "; this command asks for " +
                               asked + " (leave it out, or use another --run)");
    }
  };
  check("arch", c.arch, m.arch);
  check("img-size", std::to_string(c.img_size), std::to_string(m.img_size));
  check("prototypes-per-class", std::to_string(c.prototypes_per_class), std::to_string(m.prototypes_per_class));
  check("prototype-dim", std::to_string(c.prototype_dim), std::to_string(m.prototype_dim));
  check("add-on", model::to_string(c.add_on), model::to_string(m.add_on));
  check("activation", model::to_string(c.activation), model::to_string(m.activation));
  check("resize", resize_name(c.resize), resize_name(m.resize));
  if (!c.weights.empty() && !resuming) {  // (resuming, they were loaded when the run was created)
    throw std::runtime_error("--weights applies only when a run is created; run " + run.string() + " exists");
  }
}

// Training that has diverged cannot be resumed into anything useful: the stage is marked failed
// (its checkpoints stay for inspection), which frees the run for a new stage from the last
// finished one.
// `store` is null on ranks other than 0, which only stop.
[[noreturn]] void fail_stage(db::RunStore* store, int64_t stage_id, const std::string& where) {
  if (store) store->set_stage_status(stage_id, db::StageStatus::kFailed);
  throw std::runtime_error("training diverged at " + where + "; stage #" + std::to_string(stage_id) +
                           " is marked failed and the run goes on from its last finished stage: train again with "
                           "lower learning rates or loss coefficients");
}

// fp16's dynamic loss scale, as torch.cuda.amp.GradScaler keeps it: the loss is multiplied by
// the scale before the backward pass, so that small gradients survive in fp16, and the gradients
// are divided by it before the step; a step whose gradients overflowed is skipped and the scale
// halved; after 2000 steps without overflow it doubles. Off (factor 1, every step taken) for
// float32 and bf16, whose range is float32's. Not checkpointed: a resumed stage starts again
// at 2^16 and finds its level within a few steps.
class LossScale {
 public:
  explicit LossScale(bool on) : on_(on), factor_(on ? 65536.0 : 1.0) {}
  double factor() const { return factor_; }
  /// Divides the gradients of `params` by the scale; false when any is not finite (skip the step).
  bool unscale(const std::vector<torch::Tensor>& params) {
    if (!on_) return true;
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> sums;
    for (const auto& p : params) {
      if (!p.grad().defined()) continue;
      p.mutable_grad().div_(factor_);
      sums.push_back(p.grad().sum());
    }
    const bool finite = sums.empty() || torch::stack(sums).isfinite().all().item<bool>();
    if (!finite) {
      factor_ = std::max(factor_ / 2, 1.0);
      good_ = 0;
    } else if (++good_ == 2000) {
      factor_ *= 2;
      good_ = 0;
    }
    return finite;
  }

 private:
  bool on_;
  double factor_;
  int good_ = 0;
};

EpochMetrics evaluate(model::ProtoPNetImpl& net, const fs::path& data, const std::vector<ListEntry>& list, const ModelInput& input,
              int batch_size, torch::Device device, const model::LossCoefficients& coef, Shard shard) {
  torch::NoGradGuard no_grad;
  const bool was_training = net.is_training();
  net.eval();
  BatchLoader loader(data, list, sequential_order(list.size()), input, batch_size, 0, 3, false, shard);
  EpochMetrics sums;
  Batch b;
  while (loader.next(&b)) {
    if (b.labels.size(0) == 0) continue;
    const auto x = b.images.to(device), y = b.labels.to(device);
    const auto out = net.forward(x);
    const auto t = model::compute_loss_terms(out.logits, out.min_distances, y, net.prototype_class_identity(),
                                             net.last_layer()->weight, net.max_distance());
    sums.add(t, model::total_loss(t, coef), out.logits, y);
  }
  net.train(was_training);
  return sums;
}

std::string format_seconds(double s) {
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  }
  return buf;
}

// What this invocation trains: decided by rank 0 (the only process that writes to the run) and
// shared with the other ranks.
struct StagePlan {
  ModelConfig model;
  int64_t stage_id = 0;
  TrainSettings settings;
  std::string checkpoint;  // relative to the run: where the weights come from
  bool with_state = false;  // `checkpoint` is one of this stage's (optimizer and position too)
  bool created_run = false, resumed = false, already_done = false;
};

nlohmann::json plan_to_json(const StagePlan& p) {
  return {{"model", model_config_json(p.model)}, {"stage_id", p.stage_id},     {"settings", p.settings},
          {"checkpoint", p.checkpoint},          {"with_state", p.with_state}, {"created_run", p.created_run},
          {"resumed", p.resumed},                {"already_done", p.already_done}};
}

StagePlan plan_from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  StagePlan p;
  p.model = model_config_from_json(j.at("model").get<std::string>());
  p.stage_id = j.at("stage_id").get<int64_t>();
  p.settings = j.at("settings").get<TrainSettings>();
  p.checkpoint = j.at("checkpoint").get<std::string>();
  p.with_state = j.at("with_state").get<bool>();
  p.created_run = j.at("created_run").get<bool>();
  p.resumed = j.at("resumed").get<bool>();
  p.already_done = j.at("already_done").get<bool>();
  return p;
}

// A folder of this process's own under the system's temporary folder, removed with what it holds.
class TempFolder {
 public:
  explicit TempFolder(const std::string& prefix) {
    std::string pattern = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("cannot make a folder like " + pattern);
    path_ = pattern;
  }
  ~TempFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Creates the run on first use (the initial model as init.pt), then resolves the stage: a new
// one, or the interrupted one to resume from its last checkpoint.
StagePlan plan_stage(const TrainConfig& c, const Manifest& manifest, RunFolder& run, int ranks) {
  StagePlan p;
  const fs::path data(c.data);
  const ElasticJob job = ElasticJob::from_environment();
  if (!run.has_run()) {
    ModelConfig m{c.arch, c.img_size, static_cast<int>(manifest.classes.size()), c.prototypes_per_class,
                  c.prototype_dim, c.add_on, !c.weights.empty(), c.activation, c.resize};
    torch::manual_seed(c.runtime.seed);
    model::ProtoPNet net(to_model_options(m));
    net->receptive_field(m.img_size);  // throws when the image is too small for the backbone
    if (!c.weights.empty()) load_backbone_weights(net->backbone(), c.weights);
    const std::string init = run.checkpoint_name("init");
    const std::string sha256 = save_checkpoint(run.absolute(init), *net, nullptr, nullptr);
    run.store().create_run({db::utc_now(), std::string("ppnet ") + kVersion, model_config_json(m),
                            fs::absolute(data).lexically_normal().string(), manifest_to_json(manifest)},
                           {init, sha256});
    p.created_run = true;
  } else {
    refuse_model_changes(c, run.model_config(), run.dir(), c.resume || job.restarts > 0);
    run.check_data(data, manifest);
  }
  p.model = run.model_config();
  auto settings = stage_settings(with_recipe_defaults(c, p.model.pretrained), ranks);
  for (const auto& k : run.store().concepts()) settings.concepts.push_back(k.id);
  settings.forbid_threshold = c.forbid_threshold ? *c.forbid_threshold
                                                 : model::similarity(torch::ones({1}), p.model.activation).item<double>();
  continue_previous_joint(c, run.store(), settings);
  const StageStart stage = resolve_stage(run, stage_kind(c), c.resume, nlohmann::json(settings).dump(),
                                         "'ppnet train --stage " + c.stage + " --resume'", job);
  p.stage_id = stage.stage_id;
  p.resumed = stage.resumed;
  p.already_done = stage.already_done;
  if (p.already_done) return p;
  within_stage(&run, stage.stage_id, [&] {  // what the database says of the stage, checked
    p.settings = train_settings_from_json(stage.settings_json, stage.stage_id);
    const auto existing = run.store().checkpoints(stage.stage_id);
    p.with_state = !existing.empty();
    p.checkpoint = p.with_state ? existing.back().path : stage.start_checkpoint;
    run.absolute(p.checkpoint);  // throws when it names a path outside the run
    if (!p.settings.continue_optimizer.empty()) run.absolute(p.settings.continue_optimizer);
  });
  return p;
}

// The model of a stage and what trains it: one Adam group per trained part, each with its base
// learning rate (the schedule scales them at every batch). The last layer is fixed in both
// stages; warm also freezes the backbone completely: no gradients and no BatchNorm updates.
struct StageModel {
  model::ProtoPNet net{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer;
  std::vector<double> base_lr;
  std::vector<torch::Tensor> trained;  // what the optimizer updates: gradients are all-reduced
};

StageModel make_stage_model(const ModelConfig& m, const TrainSettings& settings, bool joint, torch::Device device) {
  StageModel s;
  s.net = model::ProtoPNet(to_model_options(m));
  s.net->to(device);
  for (auto& p : s.net->backbone().parameters()) p.set_requires_grad(joint);
  for (auto& p : s.net->add_on_layers()->parameters()) p.set_requires_grad(true);
  s.net->prototype_vectors().set_requires_grad(true);
  s.net->last_layer()->weight.set_requires_grad(false);
  const double wd = settings.weight_decay;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  const auto add_group = [&](std::vector<torch::Tensor> params, double base, double decay) {
    groups.emplace_back(std::move(params),
                        std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(base).weight_decay(decay)));
    s.base_lr.push_back(base);
  };
  if (joint) add_group(s.net->backbone().parameters(), settings.lr_backbone, wd);
  add_group(s.net->add_on_layers()->parameters(), settings.lr_add_on, wd);
  add_group({s.net->prototype_vectors()}, settings.lr_prototypes, 0.0);
  s.optimizer = std::make_unique<torch::optim::Adam>(groups);
  for (const auto& g : s.optimizer->param_groups()) s.trained.insert(s.trained.end(), g.params().begin(), g.params().end());
  return s;
}

// Trains one stage epoch by epoch, data-parallel when `dist` is set: on each batch every rank
// computes its slice's gradients, weighted by its share of the batch, and their sum (bucketed
// all-reduces overlapping the backward pass, then one of the stop and divergence flags) is the
// whole batch's gradient on every rank, so the Adam steps stay identical. Rank 0 alone (`run`
// set) writes checkpoints, rows and the stage's status.
class StageTrainer {
 public:
  StageTrainer(const TrainConfig& c, const Runtime& rt, const StagePlan& plan, const Manifest& manifest,
               Distributed* dist, RunFolder* run)
      : c_(c), rt_(rt), plan_(plan), settings_(plan.settings), dist_(dist), run_(run), data_(c.data),
        joint_(stage_kind(c) == db::StageKind::kJoint), rank_(dist ? dist->rank() : 0), ranks_(dist ? dist->size() : 1),
        epochs_(settings_.epochs), batch_size_(settings_.batch_size), checkpoint_every_(settings_.checkpoint_every),
        seed_(settings_.seed), coef_{settings_.cross_entropy, settings_.cluster, settings_.separation, settings_.l1},
        model_(make_stage_model(plan.model, settings_, joint_, rt.device)),
        train_list_(read_list(data_, "train")),
        eval_split_(manifest.counts.count("val") ? "val" : "test"),
        eval_list_(read_list(data_, eval_split_)),
        batches_((static_cast<int64_t>(train_list_.size()) + batch_size_ - 1) / batch_size_),
        loss_scale_(rt.amp == torch::kHalf) {
    if (train_list_.empty()) throw std::runtime_error(c.data + ": the train split is empty");
    if (settings_.fine_annotation > 0) choose_annotated();
    if (run_) load_concepts();
    load_start();
    if (dist_) {
      reducer_ = std::make_unique<GradientReducer>(*dist_, model_.trained, static_cast<int64_t>(c.bucket_mb * 1024 * 1024));
      if (run_) {
        log::info(log::format("data-parallel: %d ranks, gradients summed in %lld bucket(s) during the backward pass",
                     ranks_, static_cast<long long>(reducer_->buckets())));
      }
    }
    eval_batch_ = done() ? settings_.eval_batch_size : eval_batch_within_budget();  // the same on every rank
    if (run_) run_->store().set_stage_status(plan_.stage_id, db::StageStatus::kRunning);
  }

  bool done() const { return pos_.epoch >= epochs_; }

  /// Trains the next epoch, evaluates, and records both with a checkpoint. Throws Interrupted
  /// (after a checkpoint) when asked to stop, std::runtime_error when training diverged.
  EpochSummary epoch() {
    const auto epoch_start = Clock::now();
    const int64_t e = pos_.epoch;
    EpochMetrics sums;
    const int64_t seen = train_batches(e, sums, epoch_start);
    const double train_secs = seconds_since(epoch_start);
    sums = global_sums(sums, "the epoch's training sums");
    const EpochMetrics ev = global_sums(
        evaluate(*model_.net, data_, eval_list_, model_input(plan_.model), eval_batch_, rt_.device, coef_,
                 Shard{rank_, ranks_}),
        "the evaluation sums");
    db::EpochRow row = epoch_row(e, sums, ev);
    row.images_per_second = static_cast<double>(seen) / std::max(train_secs, 1e-9);
    row.seconds = seconds_since(epoch_start);
    pos_ = {plan_.stage_id, e + 1, 0, EpochMetrics()};
    if (run_) {
      save_stage_checkpoint(*run_, *model_.net, *model_.optimizer, pos_, done(), row);
      log::info(log::format("%s epoch %lld/%d: train loss %.4f acc %.4f | %s acc %.4f | %.1f img/s, %.1f s",
                   c_.stage.c_str(), static_cast<long long>(e + 1), epochs_, row.train_loss, row.train_accuracy,
                   eval_split_.c_str(), row.eval_accuracy, row.images_per_second, row.seconds));
    }
    return {e,           row.train_loss, row.train_accuracy, row.eval_accuracy, row.images_per_second, row.seconds,
            eval_split_, applied_lr()};
  }

  void finish() {
    if (run_) run_->store().set_stage_status(plan_.stage_id, db::StageStatus::kDone);
  }

 private:
  // The first parameter group's learning rate as the optimizer holds it.
  double applied_lr() {
    return static_cast<torch::optim::AdamOptions&>(model_.optimizer->param_groups().front().options()).lr();
  }

  static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

  // The files of the run a rank other than 0 loads (the stage's starting checkpoint, and the
  // previous joint stage's when its Adam state continues), received from rank 0 into a folder of
  // its own that goes when the stage has loaded them (rank 0 gets its own paths; one process, none).
  struct ReceivedFiles {
    fs::path checkpoint, optimizer;
    std::unique_ptr<TempFolder> folder;
  };
  ReceivedFiles files_from_rank_zero() {
    ReceivedFiles f;
    if (!dist_) return f;
    if (!run_) f.folder = std::make_unique<TempFolder>("ppnet-rank" + std::to_string(rank_));
    const auto copy = [&](const std::string& relative, const std::string& name, const std::string& what) {
      return share_file(*dist_, run_ ? run_->absolute(relative) : fs::path(), f.folder ? f.folder->path() / name : fs::path(),
                        what);
    };
    f.checkpoint = copy(plan_.checkpoint, "start.pt", "the stage's starting checkpoint");
    if (!settings_.continue_optimizer.empty()) {
      f.optimizer = copy(settings_.continue_optimizer, "optimizer.pt", "the previous joint stage's checkpoint");
    }
    return f;
  }

  // The weights (and, resuming, the optimizer and position) the stage starts from; a new joint
  // stage continues the previous joint stage's Adam state (moments and steps) when planned so.
  void load_start() {
    pos_.stage_id = plan_.stage_id;
    // Rank 0 reads the files from the run, checked against its record; the other ranks, which may
    // run on nodes without the run folder, load rank 0's copies (files_from_rank_zero).
    const ReceivedFiles files = files_from_rank_zero();
    const auto load = [&](torch::optim::Optimizer* optimizer, TrainingPosition* position) {
      if (run_) return load_checkpoint(*run_, plan_.checkpoint, *model_.net, rt_.device, optimizer, position);
      load_checkpoint(files.checkpoint, *model_.net, rt_.device, optimizer, position);
    };
    if (plan_.with_state) {
      load(model_.optimizer.get(), &pos_);
    } else {
      load(nullptr, nullptr);
      if (!settings_.continue_optimizer.empty()) {
        if (run_) {
          load_optimizer_state(*run_, settings_.continue_optimizer, *model_.optimizer, rt_.device);
        } else {
          load_optimizer_state(files.optimizer, *model_.optimizer, rt_.device);
        }
        // The archive brings its groups' options too: this stage's settings win (the learning
        // rates are set at every batch anyway).
        const double wd = settings_.weight_decay;
        auto& groups = model_.optimizer->param_groups();
        for (size_t g = 0; g < groups.size(); ++g) {
          static_cast<torch::optim::AdamOptions&>(groups[g].options()).weight_decay(g + 1 == groups.size() ? 0.0 : wd);
        }
      }
    }
    if (dist_) dist_->broadcast_weights(*model_.net);  // every rank read the same file; rank 0's copy counts
  }

  // The evaluation's batch within the memory budget: each rank takes its slice of a batch, so a
  // rank's fit counts `ranks_` times, and the ranks take the smallest of their figures.
  int eval_batch_within_budget() {
    const int requested = settings_.eval_batch_size, slice = (requested + ranks_ - 1) / ranks_;
    const int mine = feature_batch_size(*model_.net, model_input(plan_.model), slice, rt_, 0, c_.stage + ": evaluation");
    if (!dist_) return mine;
    std::vector<torch::Tensor> t = {torch::tensor({static_cast<double>(mine) * ranks_}, torch::kFloat64)};
    dist_->all_reduce_min(t, "the evaluation's batch");
    return std::min(requested, static_cast<int>(t[0].item<double>()));
  }

  // Sums over ranks: a checkpoint and an epoch's row hold the whole batch's figures. Each rank
  // adds only its own images, so the resumed part of an epoch counts once, on rank 0.
  EpochMetrics global_sums(const EpochMetrics& local, const std::string& what) {
    if (!dist_) return local;
    std::vector<torch::Tensor> t = {torch::tensor(local.to_vector(), torch::kFloat64)};
    dist_->all_reduce_sum(t, what);
    return EpochMetrics::from_vector({t[0].data_ptr<double>(), t[0].data_ptr<double>() + t[0].numel()});
  }

  // The batches of epoch `e` from the position reached; returns the images they held.
  int64_t train_batches(int64_t e, EpochMetrics& sums, Clock::time_point epoch_start) {
    model_.net->train();
    if (!joint_) model_.net->backbone().eval();
    if (run_) sums = pos_.sums;
    const uint64_t order_seed = seed_ * 1000003 + static_cast<uint64_t>(plan_.stage_id);
    BatchLoader loader(data_, train_list_, epoch_order(static_cast<int64_t>(train_list_.size()), order_seed, e),
                       model_input(plan_.model), batch_size_, pos_.batch, 3, false, Shard{rank_, ranks_}, annotated_,
                       RandomFlip{settings_.flip, order_seed * 1000003 + static_cast<uint64_t>(e)});
    Batch b;
    int64_t seen = 0;
    auto last_print = Clock::now() - std::chrono::hours(1);
    while (loader.next(&b)) {
      const bool stop = train_batch(b, e, sums);
      seen += b.global_size;
      pos_.batch = b.index + 1;
      if (run_ && log::progress_shown() && (Clock::now() - last_print > (tty_ ? std::chrono::milliseconds(500) : std::chrono::milliseconds(10000)) ||
                   pos_.batch == batches_)) {
        last_print = Clock::now();
        print_progress(e, sums, seen, epoch_start);
      }
      const bool checkpoint_now = checkpoint_every_ > 0 && pos_.batch % checkpoint_every_ == 0 && pos_.batch < batches_;
      if ((stop && pos_.batch < batches_) || checkpoint_now) {
        pos_.sums = global_sums(sums, "the sums for a checkpoint");
        if (run_) save_stage_checkpoint(*run_, *model_.net, *model_.optimizer, pos_, false, std::nullopt);
      }
      if (stop) {
        if (run_) run_->store().set_stage_status(plan_.stage_id, db::StageStatus::kInterrupted);
        if (tty_ && run_ && log::progress_shown()) std::fputc('\n', stderr);
        throw Interrupted(InterruptScope::signal_number(),
                          "interrupted; checkpoint saved: 'ppnet train --stage " + c_.stage + " --resume' continues");
      }
    }
    if (tty_ && run_ && log::progress_shown()) std::fputc('\n', stderr);
    return seen;
  }

  // Fine annotation: the training images whose masks the loss uses (the seeded
  // --annotated-fraction of source images, all their augmented copies alike).
  void choose_annotated() {
    if (!has_masks(data_)) {
      throw std::runtime_error(c_.data + " has no object masks (masks/), which --fine-annotation needs: prepare the data "
                               "with --masks DIR, --cub beside CUB's segmentations/, or --foreground-threshold T");
    }
    annotated_.reserve(train_list_.size());
    for (const auto& e : train_list_) annotated_.push_back(among_annotated(e.source_id, settings_.annotated_fraction, seed_));
  }

  // The concepts the stage began with (rank 0 alone adds their losses, so their gradients are
  // counted once in the ranks' sum), on the device.
  void load_concepts() {
    if (settings_.concepts.empty() || (settings_.forget == 0 && settings_.remember == 0)) return;
    const auto rows = run_->store().concepts(settings_.concepts);
    if (rows.size() < settings_.concepts.size()) {
      log::info(log::format("note: %zu of the %zu concepts stage #%lld began with were removed since; it goes on with the rest",
                   settings_.concepts.size() - rows.size(), settings_.concepts.size(), static_cast<long long>(plan_.stage_id)));
    }
    if (rows.empty()) return;
    const ModelInput input = model_input(plan_.model);
    concepts_ = concept_inputs(rows, input, model_.net->receptive_field(input.size));
    concepts_.images = concepts_.images.to(rt_.device);
    concepts_.occluded = concepts_.occluded.to(rt_.device);
    int64_t forbidden = concepts_.forbid.sum().item<int64_t>();
    log::info(log::format("concepts: %lld forbidden (forget %g above similarity %g), %lld remembered (remember %g)",
                 static_cast<long long>(forbidden), settings_.forget, settings_.forbid_threshold,
                 static_cast<long long>(concepts_.forbid.numel() - forbidden), settings_.remember));
  }

  // ProtoPDebug's losses on this batch's share of the concepts (all of them, or kConceptsPerBatch
  // in turn): forget × the mean concept activation of the forbidden ones, counting similarity
  // above the forbid threshold only, − remember × that of the remembered ones, on the cells the
  // concept's pixels reach as the model is now. Computed with the model in eval mode, so that
  // BatchNorm statistics are not learnt from the concepts' images; gradients reach the backbone
  // as the training images' do.
  torch::Tensor concept_loss(int64_t batch) {
    constexpr int64_t kConceptsPerBatch = 32;
    const int64_t n = concepts_.forbid.numel(), take = std::min(n, kConceptsPerBatch);
    const auto rows = (torch::arange(take, torch::kInt64) + batch * take).remainder(n);
    const ConceptInputs k = select_concepts(concepts_, rows);
    auto& net = *model_.net;
    net.eval();
    const auto act = net.activations(k.images);
    torch::Tensor region;
    {
      torch::NoGradGuard no_grad;
      region = concept_region(act.latent, net.latent(k.occluded), k.centred);
    }
    net.train();
    if (!joint_) net.backbone().eval();
    const auto sim = net.similarity(act.distances).to(torch::kFloat);
    const auto& identity = net.prototype_class_identity();
    const auto forbid = k.forbid.to(sim.device()).to(sim.scalar_type());
    const auto mean_over = [&](const torch::Tensor& a, const torch::Tensor& w) { return (a * w).sum() / w.sum().clamp_min(1); };
    const auto forgotten = model::concept_activation(sim, region, k.classes, identity, settings_.forbid_threshold);
    const auto remembered = model::concept_activation(sim, region, k.classes, identity);
    return settings_.forget * mean_over(forgotten, forbid) - settings_.remember * mean_over(remembered, 1 - forbid);
  }

  // One step on this rank's slice of batch `b`; returns whether any rank was asked to stop.
  bool train_batch(const Batch& b, int64_t e, EpochMetrics& sums) {
    const auto x = b.images.to(rt_.device), y = b.labels.to(rt_.device);
    const double factor = lr_factor(settings_, joint_, e, b.index, batches_);
    auto& groups = model_.optimizer->param_groups();
    for (size_t g = 0; g < groups.size(); ++g) {
      static_cast<torch::optim::AdamOptions&>(groups[g].options()).lr(model_.base_lr[g] * factor);
    }
    model_.optimizer->zero_grad();
    if (reducer_) reducer_->begin_step();
    double loss_value = 0;
    if (y.size(0) > 0) {
      auto& net = *model_.net;
      const auto act = net.activations(x);  // in --amp's precision up to the prototype layer
      const auto out = net.classify(act.distances);
      const auto terms = model::compute_loss_terms(out.logits, out.min_distances, y, net.prototype_class_identity(),
                                                   net.last_layer()->weight, net.max_distance());
      const auto loss = model::total_loss(terms, coef_);
      // The batch's loss is the mean over all its images: this slice's mean, weighted by its share.
      const double share = dist_ ? static_cast<double>(y.size(0)) / static_cast<double>(b.global_size) : 1.0;
      auto objective = loss * (share * loss_scale_.factor());
      // Fine annotation is a sum over the batch's images: each slice adds its own part, unweighted.
      auto reported = loss.detach();
      if (settings_.fine_annotation > 0) {
        const auto fine = settings_.fine_annotation *
                          model::fine_annotation_loss(net.similarity(act.distances), b.masks.to(rt_.device),
                                                      b.has_mask.to(rt_.device), y, net.prototype_class_identity(),
                                                      settings_.fine_annotation_form);
        objective = objective + fine * loss_scale_.factor();
        reported = reported + fine.detach() / share;  // weighted by the slice's images, the whole batch's term
      }
      if (concepts_.images.defined()) {  // rank 0 only: the whole batch's term once
        const auto concept_term = concept_loss(b.index);
        objective = objective + concept_term * loss_scale_.factor();
        reported = reported + concept_term.detach() / share;
      }
      objective.backward();
      sums.add(terms, reported, out.logits.detach(), y);
      loss_value = reported.item<double>();
    }
    bool stop = InterruptScope::stop_requested();
    bool diverged = !std::isfinite(loss_value) || !sums.finite();
    if (dist_) {
      const std::string what = "the gradients of epoch " + std::to_string(e + 1) + " batch " + std::to_string(b.index + 1);
      reducer_->finish(what);  // most buckets were summed while the backward pass ran
      std::vector<torch::Tensor> flags = {torch::tensor({stop ? 1.0f : 0.0f, diverged ? 1.0f : 0.0f})};
      dist_->all_reduce_sum(flags, what);
      stop = flags[0][0].item<float>() > 0;
      diverged = flags[0][1].item<float>() > 0;
    }
    if (diverged) {
      fail_stage(store(), plan_.stage_id, c_.stage + " epoch " + std::to_string(e + 1) + " batch " +
                                              std::to_string(b.index + 1) + ": the loss is " + std::to_string(loss_value));
    }
    if (loss_scale_.unscale(model_.trained)) model_.optimizer->step();  // fp16: a step that overflowed is skipped
    return stop;
  }

  void print_progress(int64_t e, const EpochMetrics& sums, int64_t seen, Clock::time_point epoch_start) const {
    const double rate = static_cast<double>(seen) / std::max(seconds_since(epoch_start), 1e-9);
    const double left = static_cast<double>((batches_ - pos_.batch) * batch_size_ +
                                            (epochs_ - e - 1) * static_cast<int64_t>(train_list_.size())) /
                        std::max(rate, 1e-9);
    std::fprintf(stderr, "%s%s epoch %lld/%d batch %lld/%lld loss %.4f acc %.3f %.1f img/s ETA %s%s", tty_ ? "\r" : "",
                 c_.stage.c_str(), static_cast<long long>(e + 1), epochs_, static_cast<long long>(pos_.batch),
                 static_cast<long long>(batches_), sums.mean_loss(), sums.accuracy(), rate, format_seconds(left).c_str(),
                 tty_ ? "   " : "\n");
    std::fflush(stderr);
  }

  // The epoch's row of metrics; a metric that is not finite fails the stage.
  db::EpochRow epoch_row(int64_t e, const EpochMetrics& train, const EpochMetrics& eval) {
    db::EpochRow row;
    row.stage_id = plan_.stage_id;
    row.epoch = e;
    write_train_metrics(train, row);
    row.eval_split = eval_split_;
    write_eval_metrics(eval, row);
    {
      torch::NoGradGuard no_grad;
      auto& net = *model_.net;
      row.l1 = model::off_class_l1(net.last_layer()->weight, net.prototype_class_identity()).item<double>();
      row.prototype_distance = model::mean_pairwise_prototype_distance(net.prototype_vectors()).item<double>();
    }
    for (const double v : {row.eval_cross_entropy, row.eval_cluster, row.eval_separation, row.eval_avg_separation,
                           row.l1, row.prototype_distance}) {
      if (!std::isfinite(v)) fail_stage(store(), plan_.stage_id, c_.stage + " epoch " + std::to_string(e + 1) + ": a metric is not finite");
    }
    return row;
  }

  db::RunStore* store() { return run_ ? &run_->store() : nullptr; }

  const TrainConfig& c_;
  const Runtime& rt_;
  const StagePlan& plan_;
  const TrainSettings& settings_;
  Distributed* dist_;
  RunFolder* run_;  // rank 0 only
  const fs::path data_;
  const bool joint_;
  const int rank_, ranks_, epochs_, batch_size_, checkpoint_every_;
  const uint64_t seed_;
  const model::LossCoefficients coef_;
  StageModel model_;
  const std::vector<ListEntry> train_list_;
  const std::string eval_split_;
  const std::vector<ListEntry> eval_list_;
  const int64_t batches_;
  int eval_batch_ = 1;  // settings_.eval_batch_size, or fewer within the memory budget
  const bool tty_ = ::isatty(2) == 1;
  InterruptScope interrupt_scope_;
  LossScale loss_scale_;
  std::vector<bool> annotated_;  // per training image, with fine annotation
  ConceptInputs concepts_;       // rank 0, with concepts: undefined images otherwise
  std::unique_ptr<GradientReducer> reducer_;
  TrainingPosition pos_;
};

// Rank 0 (or the only process) holds the run's lock and decides the plan; other ranks receive
// its decision and never write to the run.
StagePlan agree_on_plan(const TrainConfig& c, const Manifest& manifest, Distributed* dist, std::optional<RunFolder>& run) {
  const int ranks = dist ? dist->size() : 1;
  return on_ranks(
      dist, "plan",
      [&](Distributed* d) {
        run.emplace(RunFolder::open_or_create(c.run));
        auto p = plan_stage(c, manifest, *run, ranks);
        if (d) d->share("plan", plan_to_json(p).dump());
        return p;
      },
      [&](Distributed& d) { return plan_from_json(d.share("plan", "")); });
}

// The position of a checkpoint counts global batches, so any number of ranks can go on from it;
// but the result no longer equals an uninterrupted run's. Says so.
void note_rank_change(const StagePlan& plan, int ranks) {
  const int began = plan.settings.ranks;
  if (!plan.with_state || ranks == began) return;
  log::info(log::format("note: stage #%lld began with %d rank(s) and resumes with %d: the batches are the same, the "
                       "reduction order differs", static_cast<long long>(plan.stage_id), began, ranks));
}

}  // namespace

TrainResult run_train(const TrainConfig& c) {
  const auto start = Clock::now();
  stage_kind(c);  // validates --stage
  const Runtime rt = start_runtime(c.runtime);
  const Manifest manifest = read_manifest(c.data);
  const auto dist = join_ranks(c.data);
  std::optional<RunFolder> run;  // rank 0 only
  const StagePlan plan = agree_on_plan(c, manifest, dist.get(), run);

  TrainResult report;
  report.run = c.run;
  report.stage = c.stage;
  report.rank = dist ? dist->rank() : 0;
  report.ranks = dist ? dist->size() : 1;
  report.stage_id = plan.stage_id;
  report.created_run = plan.created_run;
  report.resumed = plan.resumed;
  report.already_done = plan.already_done;
  if (plan.already_done) return report;
  if (run) note_rank_change(plan, report.ranks);

  return within_stage(run ? &*run : nullptr, plan.stage_id, [&] {
    StageTrainer trainer(c, rt, plan, manifest, dist.get(), run ? &*run : nullptr);
    while (!trainer.done()) report.epochs.push_back(trainer.epoch());
    trainer.finish();
    report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return report;
  });
}

}  // namespace ppnet::pipeline
