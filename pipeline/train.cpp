#include <torch/torch.h>

#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "model/loss.h"
#include "pipeline/commands.h"
#include "pipeline/distributed.h"
#include "pipeline/image_data.h"
#include "pipeline/interrupt.h"
#include "pipeline/progress.h"
#include "pipeline/run_folder.h"
#include "pipeline/runtime.h"
#include "pipeline/weights.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kScratchJointEpochs = 12;

// The options not given on the command line, from the recipe that suits the run. With a
// pretrained backbone (--weights) they are the reference's. Trained from scratch, its warm stage
// would train the head on a frozen *random* backbone and its backbone rate (1e-4, StepLR) learns
// too slowly; the from-scratch recipe skips warm and trains jointly at 1e-3 with a cosine decay
// to 0 over the stage (measured on Fashion-MNIST and digits: README, "Training from scratch").
TrainConfig with_recipe_defaults(TrainConfig c, bool pretrained) {
  const bool warm = c.stage == "warm";
  if (!c.epochs) c.epochs = pretrained ? (warm ? 5 : 10) : (warm ? 0 : kScratchJointEpochs);
  if (!c.lr_backbone) c.lr_backbone = pretrained ? 1e-4 : 1e-3;
  if (!c.lr_schedule) c.lr_schedule = pretrained ? "step" : "cosine";
  return c;
}

// Multiplies the stage's base learning rates at (epoch, batch): constant in warm, StepLR or a
// cosine decay in joint. A function of the position alone, so resuming needs no state.
double lr_factor(const nlohmann::json& settings, bool joint, int64_t epoch, int64_t batch, int64_t batches) {
  if (!joint) return 1.0;
  if (settings.value("lr_schedule", std::string("step")) == "cosine") {
    const double progress = (static_cast<double>(epoch) + static_cast<double>(batch) / static_cast<double>(batches)) /
                            settings.at("epochs").get<double>();
    return 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  // StepLR counts the joint epochs of the earlier push cycles too, as the reference's one
  // scheduler does (schedule_offset, when the stage continues the previous joint stage).
  const int64_t e = epoch + settings.value("schedule_offset", int64_t{0});
  return std::pow(settings.at("lr_gamma").get<double>(), e / settings.at("lr_step").get<int>());
}

// A new joint stage continues the Adam state and StepLR schedule of the run's latest finished
// joint stage (the reference keeps one optimizer and one scheduler across its push cycles),
// unless --restart-optimizer, or a prune since then changed the prototypes the state belongs
// to. Returns {} or {"optimizer": that stage's final checkpoint, "schedule_offset": joint
// epochs done so far}.
nlohmann::json continuation(const TrainConfig& c, db::RunStore& store) {
  if (c.stage != "joint" || c.restart_optimizer) return {};
  const auto stages = store.stages();
  int64_t epochs_before = 0;
  std::optional<db::StageRow> previous;
  for (const auto& st : stages) {
    if (st.kind == "prune") previous.reset();
    if (st.kind != "joint" || st.status != "done") continue;
    previous = st;
    epochs_before += nlohmann::json::parse(st.config_json).value("epochs", int64_t{0});
  }
  if (!previous) return {};
  const auto checkpoints = store.checkpoints(previous->id);
  if (checkpoints.empty() || !checkpoints.back().final) return {};
  return {{"optimizer", checkpoints.back().path}, {"stage", previous->id}, {"schedule_offset", epochs_before}};
}

// What a stage runs with, recorded in its row so that --resume continues identically.
nlohmann::json stage_settings(const TrainConfig& c) {
  return {{"epochs", *c.epochs},
          {"lr_schedule", *c.lr_schedule},
          {"batch_size", c.batch_size},
          {"eval_batch_size", c.eval_batch_size},
          {"lr_backbone", *c.lr_backbone},
          {"lr_add_on", c.lr_add_on},
          {"lr_prototypes", c.lr_prototypes},
          {"weight_decay", c.weight_decay},
          {"lr_step", c.lr_step},
          {"lr_gamma", c.lr_gamma},
          {"cross_entropy", c.cross_entropy},
          {"cluster", c.cluster},
          {"separation", c.separation},
          {"l1", c.l1},
          {"checkpoint_every", c.checkpoint_every},
          {"seed", c.runtime.seed},
          {"threads", c.runtime.threads}};
}

void refuse_model_changes(const TrainConfig& c, const ModelConfig& m, const fs::path& run) {
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
  check("add-on", c.add_on, m.add_on);
  check("activation", c.activation, m.activation);
  if (!c.weights.empty() && !c.resume) {  // (with --resume they were loaded when the run was created)
    throw std::runtime_error("--weights applies only when a run is created; run " + run.string() + " exists");
  }
}

struct Sums {  // loss, CE, cluster, separation, avg separation (all × batch size), correct, images
  std::vector<double> v = std::vector<double>(7, 0.0);
  void add(const model::LossTerms& t, const torch::Tensor& loss, const torch::Tensor& logits, const torch::Tensor& labels) {
    const double b = static_cast<double>(labels.size(0));
    v[0] += loss.item<double>() * b;
    v[1] += t.cross_entropy.item<double>() * b;
    v[2] += t.cluster.item<double>() * b;
    v[3] += t.separation.item<double>() * b;
    v[4] += t.avg_separation.item<double>() * b;
    v[5] += static_cast<double>(logits.argmax(1).eq(labels).sum().item<int64_t>());
    v[6] += b;
  }
  double mean(size_t i) const { return v[6] > 0 ? v[i] / v[6] : 0.0; }
  double accuracy() const { return mean(5); }
};

// Training that has diverged cannot be resumed into anything useful: the stage is marked failed
// (its checkpoints stay for inspection), which frees the run for a new stage from the last
// finished one.
// `store` is null on ranks other than 0, which only stop.
[[noreturn]] void fail_stage(db::RunStore* store, int64_t stage_id, const std::string& where) {
  if (store) store->set_stage_status(stage_id, "failed");
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

Sums evaluate(model::ProtoPNetImpl& net, const fs::path& data, const std::vector<ListEntry>& list, int img_size,
              int batch_size, torch::Device device, const model::LossCoefficients& coef, Shard shard) {
  torch::NoGradGuard no_grad;
  const bool was_training = net.is_training();
  net.eval();
  BatchLoader loader(data, list, sequential_order(list.size()), img_size, batch_size, 0, 3, false, shard);
  Sums sums;
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
  nlohmann::json settings;
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
  p.settings = j.at("settings");
  p.checkpoint = j.at("checkpoint").get<std::string>();
  p.with_state = j.at("with_state").get<bool>();
  p.created_run = j.at("created_run").get<bool>();
  p.resumed = j.at("resumed").get<bool>();
  p.already_done = j.at("already_done").get<bool>();
  return p;
}

// Creates the run on first use (the initial model as init.pt), then resolves the stage: a new
// one, or the interrupted one to resume from its last checkpoint.
StagePlan plan_stage(const TrainConfig& c, const Manifest& manifest, RunFolder& run, int ranks) {
  StagePlan p;
  const fs::path data(c.data);
  if (!run.has_run()) {
    ModelConfig m{c.arch, c.img_size, static_cast<int>(manifest.classes.size()), c.prototypes_per_class,
                  c.prototype_dim, c.add_on, !c.weights.empty(), c.activation};
    torch::manual_seed(c.runtime.seed);
    model::ProtoPNet net(to_model_options(m));
    net->receptive_field(m.img_size);  // throws when the image is too small for the backbone
    if (!c.weights.empty()) load_backbone_weights(net->backbone(), c.weights);
    save_checkpoint(run.absolute(run.checkpoint_name("init")), *net, nullptr, nullptr);
    run.store().create_run({db::utc_now(), std::string("ppnet ") + PPNET_VERSION, model_config_json(m),
                            fs::absolute(data).lexically_normal().string(), manifest_to_json(manifest)});
    p.created_run = true;
  } else {
    refuse_model_changes(c, run.model_config(), run.dir());
    run.check_data(data, manifest);
  }
  p.model = run.model_config();
  auto settings = stage_settings(with_recipe_defaults(c, p.model.pretrained));
  settings["ranks"] = ranks;
  settings["amp"] = c.runtime.amp;  // a resumed stage computes in the resuming command's precision
  settings["channels_last"] = c.runtime.channels_last;
  const auto continued = continuation(c, run.store());
  if (!continued.empty()) {
    settings["continue_optimizer"] = continued.at("optimizer");
    settings["continue_stage"] = continued.at("stage");
    settings["schedule_offset"] = continued.at("schedule_offset");
  }
  const StageStart stage = resolve_stage(run, c.stage, c.resume, settings.dump(),
                                         "'ppnet train --stage " + c.stage + " --resume'");
  p.stage_id = stage.stage_id;
  p.resumed = stage.resumed;
  p.already_done = stage.already_done;
  p.settings = nlohmann::json::parse(stage.settings_json);
  const auto existing = run.store().checkpoints(stage.stage_id);
  p.with_state = !existing.empty();
  p.checkpoint = p.with_state ? existing.back().path : stage.start_checkpoint;
  return p;
}

}  // namespace

TrainReport run_train(const TrainConfig& c) {
  const auto start = Clock::now();
  if (c.stage != "warm" && c.stage != "joint") throw std::runtime_error("--stage must be warm or joint");
  const Runtime rt = start_runtime(c.runtime);
  const fs::path data(c.data);
  const Manifest manifest = read_manifest(data);

  // 1. The plan: rank 0 (or the only process) holds the run's lock and decides; other ranks
  //    receive its decision and never write to the run.
  const auto dist = Distributed::from_environment(kDistributedTimeout);
  const int rank = dist ? dist->rank() : 0, ranks = dist ? dist->size() : 1;
  const bool leader = rank == 0;
  std::optional<RunFolder> run;
  const StagePlan plan = on_ranks(
      dist.get(), "plan",
      [&](Distributed* d) {
        run.emplace(RunFolder::open_or_create(c.run));
        auto p = plan_stage(c, manifest, *run, ranks);
        if (d) d->share("plan", plan_to_json(p).dump());
        return p;
      },
      [&](Distributed& d) { return plan_from_json(d.share("plan", "")); });
  TrainReport report;
  report.run = c.run;
  report.stage = c.stage;
  report.rank = rank;
  report.ranks = ranks;
  report.stage_id = plan.stage_id;
  report.created_run = plan.created_run;
  report.resumed = plan.resumed;
  if (plan.already_done) {
    report.already_done = true;
    return report;
  }
  const ModelConfig& m = plan.model;
  db::RunStore* store = leader ? &run->store() : nullptr;
  const int64_t stage_id = plan.stage_id;
  const nlohmann::json& settings = plan.settings;
  if (leader && plan.with_state && ranks != settings.value("ranks", 1)) {
    // The position of a checkpoint counts global batches, so any number of ranks could go on
    // from it; but the result would no longer equal an uninterrupted run's. Say so.
    std::fprintf(stderr, "note: stage #%lld began with %d rank(s) and resumes with %d: the batches are the same, the "
                         "reduction order differs\n", static_cast<long long>(stage_id), settings.value("ranks", 1), ranks);
  }

  const int epochs = settings.at("epochs").get<int>();
  const int batch_size = settings.at("batch_size").get<int>();
  const model::LossCoefficients coef{settings.at("cross_entropy").get<double>(), settings.at("cluster").get<double>(),
                                     settings.at("separation").get<double>(), settings.at("l1").get<double>()};
  const int checkpoint_every = settings.at("checkpoint_every").get<int>();
  const uint64_t seed = settings.at("seed").get<uint64_t>();
  const bool joint = c.stage == "joint";

  // 2. The model and what this stage trains. The last layer is fixed in both stages; warm also
  //    freezes the backbone completely: no gradients and no BatchNorm statistics updates.
  model::ProtoPNet net(to_model_options(m));
  net->to(rt.device);
  for (auto& p : net->backbone().parameters()) p.set_requires_grad(joint);
  for (auto& p : net->add_on_layers()->parameters()) p.set_requires_grad(true);
  net->prototype_vectors().set_requires_grad(true);
  net->last_layer()->weight.set_requires_grad(false);
  const double wd = settings.at("weight_decay").get<double>();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  std::vector<double> base_lr;
  if (joint) {
    groups.emplace_back(net->backbone().parameters(),
                        std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(settings.at("lr_backbone").get<double>()).weight_decay(wd)));
    base_lr.push_back(settings.at("lr_backbone").get<double>());
  }
  groups.emplace_back(net->add_on_layers()->parameters(),
                      std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(settings.at("lr_add_on").get<double>()).weight_decay(wd)));
  base_lr.push_back(settings.at("lr_add_on").get<double>());
  groups.emplace_back(std::vector<torch::Tensor>{net->prototype_vectors()},
                      std::make_unique<torch::optim::AdamOptions>(settings.at("lr_prototypes").get<double>()));
  base_lr.push_back(settings.at("lr_prototypes").get<double>());
  torch::optim::Adam optimizer(groups);
  std::vector<torch::Tensor> trained;  // what the optimizer updates: gradients are all-reduced
  for (const auto& g : optimizer.param_groups()) trained.insert(trained.end(), g.params().begin(), g.params().end());

  TrainingPosition pos;
  pos.stage_id = stage_id;
  pos.sums.assign(7, 0.0);
  const fs::path run_dir(c.run);
  if (plan.with_state) {
    load_checkpoint(run_dir / plan.checkpoint, *net, rt.device, &optimizer, &pos);
  } else {
    load_checkpoint(run_dir / plan.checkpoint, *net, rt.device, nullptr, nullptr);
    if (settings.contains("continue_optimizer")) {  // the previous joint stage's Adam state, moments and steps
      load_optimizer_state(run_dir / settings.at("continue_optimizer").get<std::string>(), optimizer, rt.device);
      // The archive brings its groups' options too: this stage's settings win (the learning
      // rates are set at every batch anyway).
      for (size_t g = 0; g < optimizer.param_groups().size(); ++g) {
        const bool prototypes = g + 1 == optimizer.param_groups().size();
        static_cast<torch::optim::AdamOptions&>(optimizer.param_groups()[g].options()).weight_decay(prototypes ? 0.0 : wd);
      }
    }
  }
  if (dist) dist->broadcast_weights(*net);  // every rank read the same file; rank 0's copy counts
  if (leader) store->set_stage_status(stage_id, "running");

  const auto train_list = read_list(data, "train");
  const std::string eval_split = manifest.counts.count("val") ? "val" : "test";
  const auto eval_list = read_list(data, eval_split);
  if (train_list.empty()) throw std::runtime_error(c.data + ": the train split is empty");
  InterruptScope interrupt_scope;
  const int64_t batches = (static_cast<int64_t>(train_list.size()) + batch_size - 1) / batch_size;
  const bool tty = ::isatty(2) == 1;
  const Shard shard{rank, ranks};
  // Sums over ranks: a checkpoint and an epoch's row hold the whole batch's figures. Each rank
  // adds only its own images, so the resumed part of an epoch counts once, on rank 0.
  const auto global_sums = [&](const Sums& local, const std::string& what) {
    if (!dist) return local;
    std::vector<torch::Tensor> t = {torch::tensor(local.v, torch::kFloat64)};
    dist->all_reduce_sum(t, what);
    Sums out;
    out.v.assign(t[0].data_ptr<double>(), t[0].data_ptr<double>() + t[0].numel());
    return out;
  };

  LossScale loss_scale(rt.amp == torch::kHalf);
  const auto reducer =
      dist ? std::make_unique<GradientReducer>(*dist, trained, static_cast<int64_t>(c.bucket_mb * 1024 * 1024)) : nullptr;
  if (reducer && leader) {
    std::fprintf(stderr, "data-parallel: %d ranks, gradients summed in %lld bucket(s) during the backward pass\n", ranks,
                 static_cast<long long>(reducer->buckets()));
  }
  // 3. The epochs: on each batch every rank computes its slice's gradients, weighted by its
  //    share of the batch, and their sum (bucketed all-reduces overlapping the backward pass,
  //    then one of the stop and divergence flags) is the whole batch's gradient on every rank,
  //    so the Adam steps stay identical.
  while (pos.epoch < epochs) {
    const auto epoch_start = Clock::now();
    const int64_t e = pos.epoch;
    net->train();
    if (!joint) net->backbone().eval();
    Sums sums;
    if (leader) sums.v = pos.sums;
    BatchLoader loader(data, train_list, epoch_order(static_cast<int64_t>(train_list.size()), seed * 1000003 + static_cast<uint64_t>(stage_id), e),
                       m.img_size, batch_size, pos.batch, 3, false, shard);
    Batch b;
    int64_t seen_now = 0;
    auto last_print = Clock::now() - std::chrono::hours(1);
    while (loader.next(&b)) {
      const auto x = b.images.to(rt.device), y = b.labels.to(rt.device);
      const double factor = lr_factor(settings, joint, e, b.index, batches);
      for (size_t g = 0; g < optimizer.param_groups().size(); ++g) {
        static_cast<torch::optim::AdamOptions&>(optimizer.param_groups()[g].options()).lr(base_lr[g] * factor);
      }
      optimizer.zero_grad();
      if (reducer) reducer->begin_step();
      const int64_t here = y.size(0);
      double loss_value = 0;
      if (here > 0) {
        const auto out = net->forward(x);  // in --amp's precision up to the prototype layer
        const auto terms = model::compute_loss_terms(out.logits, out.min_distances, y, net->prototype_class_identity(),
                                                     net->last_layer()->weight, net->max_distance());
        const auto loss = model::total_loss(terms, coef);
        // The batch's loss is the mean over all its images: this slice's mean, weighted by its share.
        const double share = dist ? static_cast<double>(here) / static_cast<double>(b.global_size) : 1.0;
        (loss * (share * loss_scale.factor())).backward();
        sums.add(terms, loss.detach(), out.logits.detach(), y);
        loss_value = loss.item<double>();
      }
      bool stop = InterruptScope::stop_requested();
      bool diverged = !std::isfinite(loss_value) ||
                      !std::all_of(sums.v.begin(), sums.v.end(), [](double v) { return std::isfinite(v); });
      if (dist) {
        const std::string what = "the gradients of epoch " + std::to_string(e + 1) + " batch " + std::to_string(b.index + 1);
        reducer->finish(what);  // most buckets were summed while the backward pass ran
        std::vector<torch::Tensor> flags = {torch::tensor({stop ? 1.0f : 0.0f, diverged ? 1.0f : 0.0f})};
        dist->all_reduce_sum(flags, what);
        stop = flags[0][0].item<float>() > 0;
        diverged = flags[0][1].item<float>() > 0;
      }
      if (diverged) {
        fail_stage(store, stage_id, c.stage + " epoch " + std::to_string(e + 1) + " batch " + std::to_string(b.index + 1) +
                                         ": the loss is " + std::to_string(loss_value));
      }
      if (loss_scale.unscale(trained)) optimizer.step();  // fp16: a step whose gradients overflowed is skipped
      seen_now += b.global_size;
      pos.batch = b.index + 1;

      const auto now = Clock::now();
      if (leader && (now - last_print > (tty ? std::chrono::milliseconds(500) : std::chrono::milliseconds(10000)) || pos.batch == batches)) {
        last_print = now;
        const double secs = std::chrono::duration<double>(now - epoch_start).count();
        const double rate = seen_now / std::max(secs, 1e-9);
        const double left = static_cast<double>((batches - pos.batch) * batch_size + (epochs - e - 1) * static_cast<int64_t>(train_list.size())) / std::max(rate, 1e-9);
        std::fprintf(stderr, "%s%s epoch %lld/%d batch %lld/%lld loss %.4f acc %.3f %.1f img/s ETA %s%s",
                     tty ? "\r" : "", c.stage.c_str(), static_cast<long long>(e + 1), epochs,
                     static_cast<long long>(pos.batch), static_cast<long long>(batches), sums.mean(0), sums.accuracy(),
                     rate, format_seconds(left).c_str(), tty ? "   " : "\n");
        std::fflush(stderr);
      }
      const bool checkpoint_now = checkpoint_every > 0 && pos.batch % checkpoint_every == 0 && pos.batch < batches;
      if ((stop && pos.batch < batches) || checkpoint_now) {
        pos.sums = global_sums(sums, "the sums for a checkpoint").v;
        if (leader) save_stage_checkpoint(*run, *net, optimizer, pos, false, std::nullopt);
      }
      if (stop) {
        if (leader) store->set_stage_status(stage_id, "interrupted");
        if (tty && leader) std::fputc('\n', stderr);
        throw Interrupted(InterruptScope::signal_number(),
                          "interrupted; checkpoint saved: 'ppnet train --stage " + c.stage + " --resume' continues");
      }
    }
    if (tty && leader) std::fputc('\n', stderr);

    // End of the epoch: evaluate, then record metrics and checkpoint together.
    const double train_secs = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    sums = global_sums(sums, "the epoch's training sums");
    const Sums ev = global_sums(evaluate(*net, data, eval_list, m.img_size, settings.at("eval_batch_size").get<int>(), rt.device, coef, shard),
                                "the evaluation sums");
    db::EpochRow row;
    row.stage_id = stage_id;
    row.epoch = e;
    row.train_loss = sums.mean(0);
    row.train_cross_entropy = sums.mean(1);
    row.train_cluster = sums.mean(2);
    row.train_separation = sums.mean(3);
    row.train_avg_separation = sums.mean(4);
    row.train_accuracy = sums.accuracy();
    row.eval_split = eval_split;
    row.eval_cross_entropy = ev.mean(1);
    row.eval_cluster = ev.mean(2);
    row.eval_separation = ev.mean(3);
    row.eval_avg_separation = ev.mean(4);
    row.eval_accuracy = ev.accuracy();
    {
      torch::NoGradGuard no_grad;
      row.l1 = model::off_class_l1(net->last_layer()->weight, net->prototype_class_identity()).item<double>();
      row.prototype_distance = model::mean_pairwise_prototype_distance(net->prototype_vectors()).item<double>();
    }
    for (const double v : {row.eval_cross_entropy, row.eval_cluster, row.eval_separation, row.eval_avg_separation, row.l1,
                           row.prototype_distance}) {
      if (std::isfinite(v)) continue;
      fail_stage(store, stage_id, c.stage + " epoch " + std::to_string(e + 1) + ": a metric is not finite");
    }
    row.images_per_second = seen_now / std::max(train_secs, 1e-9);
    row.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    pos.epoch = e + 1;
    pos.batch = 0;
    pos.sums.assign(7, 0.0);
    if (leader) {
      save_stage_checkpoint(*run, *net, optimizer, pos, pos.epoch == epochs, row);
      std::fprintf(stderr, "%s epoch %lld/%d: train loss %.4f acc %.4f | %s acc %.4f | %.1f img/s, %.1f s\n",
                   c.stage.c_str(), static_cast<long long>(e + 1), epochs, row.train_loss, row.train_accuracy,
                   eval_split.c_str(), row.eval_accuracy, row.images_per_second, row.seconds);
    }
    report.epochs.push_back({e, row.train_loss, row.train_accuracy, row.eval_accuracy, row.images_per_second,
                             row.seconds, eval_split});
  }
  if (leader) store->set_stage_status(stage_id, "done");
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

}  // namespace ppnet::pipeline
