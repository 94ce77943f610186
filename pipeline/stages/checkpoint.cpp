#include "pipeline/stages/checkpoint.h"

#include <torch/torch.h>

#include <sstream>
#include <stdexcept>

#include "base/atomic_file.h"
#include "base/log.h"
#include "base/sha256.h"

namespace ppnet::pipeline {

namespace fs = std::filesystem;

model::ProtoPNetOptions to_model_options(const ModelConfig& m) {
  model::ProtoPNetOptions o;
  o.arch = m.arch;
  o.num_classes = m.num_classes;
  o.prototypes_per_class = m.prototypes_per_class;
  o.prototype_dim = m.prototype_dim;
  o.add_on = m.add_on;
  o.activation = m.activation;
  return o;
}

std::string save_checkpoint(const fs::path& path, model::ProtoPNetImpl& model, torch::optim::Optimizer* optimizer,
                            const TrainingPosition* position) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    torch::serialize::OutputArchive opt_archive;
    optimizer->save(opt_archive);
    archive.write("optimizer", opt_archive);
  }
  if (position) {
    archive.write("position", torch::tensor({position->stage_id, position->epoch, position->batch}, torch::kInt64));
    archive.write("sums", torch::tensor(position->sums.to_vector(), torch::kFloat64));
  }
  std::ostringstream os;
  archive.save_to(os);
  const std::string bytes = os.str();
  write_file_atomic(path, bytes);
  log::detail(log::format("saved %s (%zu bytes)", path.string().c_str(), bytes.size()));
  return sha256_hex(bytes);
}

void save_stage_checkpoint(RunFolder& run, model::ProtoPNetImpl& model, torch::optim::Optimizer& optimizer,
                           const TrainingPosition& position, bool final, const std::optional<db::EpochRow>& epoch_row) {
  char tag[64];
  std::snprintf(tag, sizeof tag, "stage%lld-e%03lld-b%05lld", static_cast<long long>(position.stage_id),
                static_cast<long long>(position.epoch), static_cast<long long>(position.batch));
  const std::string rel = run.checkpoint_name(tag);
  const std::string sha256 = save_checkpoint(run.absolute(rel), model, &optimizer, &position);
  std::vector<int64_t> old_ids;
  std::vector<std::string> old_paths;
  for (const auto& ck : run.store().checkpoints(position.stage_id)) {
    if (!ck.final && ck.path != rel) {
      old_ids.push_back(ck.id);
      old_paths.push_back(ck.path);
    }
  }
  run.store().add_checkpoint({0, position.stage_id, position.epoch, position.batch, rel, final, "", sha256}, old_ids,
                             epoch_row);
  for (const auto& p : old_paths) {
    std::error_code ec;
    fs::remove(run.absolute(p), ec);
  }
}

namespace {

// Loads a checkpoint's archive with `open(archive)`; `name` is the file, for errors.
template <class Open>
void load_archive(const std::string& name, Open open, model::ProtoPNetImpl& model, torch::Device device,
                  torch::optim::Optimizer* optimizer, TrainingPosition* position) {
  try {
    // Every tensor straight onto `device`: the model's, and Adam's moments, which the optimizer
    // would otherwise keep on the CPU beside CUDA parameters when a run resumes there.
    torch::serialize::InputArchive archive;
    open(archive);
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    model.load(model_archive);
    model.to(device);
    if (optimizer) {
      torch::serialize::InputArchive opt_archive;
      archive.read("optimizer", opt_archive);
      optimizer->load(opt_archive);
    }
    if (position) {
      torch::Tensor pos, sums;
      archive.read("position", pos);
      archive.read("sums", sums);
      pos = pos.cpu();
      sums = sums.cpu().contiguous();
      position->stage_id = pos[0].item<int64_t>();
      position->epoch = pos[1].item<int64_t>();
      position->batch = pos[2].item<int64_t>();
      position->sums = EpochMetrics::from_vector({sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel()});
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error(name + ": not a checkpoint of this model (" + e.what_without_backtrace() + ")");
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(name + ": not a checkpoint of this model (" + e.what() + ")");
  }
}

}  // namespace

void load_checkpoint(const fs::path& path, model::ProtoPNetImpl& model, torch::Device device,
                     torch::optim::Optimizer* optimizer, TrainingPosition* position) {
  load_archive(
      path.string(), [&](torch::serialize::InputArchive& a) { a.load_from(path.string(), device); }, model, device,
      optimizer, position);
}

void load_checkpoint(RunFolder& run, const std::string& relative, model::ProtoPNetImpl& model, torch::Device device,
                     torch::optim::Optimizer* optimizer, TrainingPosition* position) {
  const std::string bytes = run.read_kept(relative);  // loaded from memory as they are: no second copy
  load_archive(
      run.absolute(relative).string(),
      [&](torch::serialize::InputArchive& a) { a.load_from(bytes.data(), bytes.size(), device); }, model, device,
      optimizer, position);
}

namespace {

template <class Open>
void load_optimizer_archive(const std::string& name, Open open, torch::optim::Optimizer& optimizer) {
  try {
    torch::serialize::InputArchive archive, opt_archive;
    open(archive);
    archive.read("optimizer", opt_archive);
    optimizer.load(opt_archive);
  } catch (const c10::Error& e) {
    throw std::runtime_error(name + ": no optimizer state of this model (" + e.what_without_backtrace() + ")");
  }
}

}  // namespace

void load_optimizer_state(const fs::path& path, torch::optim::Optimizer& optimizer, torch::Device device) {
  load_optimizer_archive(
      path.string(), [&](torch::serialize::InputArchive& a) { a.load_from(path.string(), device); }, optimizer);
}

void load_optimizer_state(RunFolder& run, const std::string& relative, torch::optim::Optimizer& optimizer,
                          torch::Device device) {
  const std::string bytes = run.read_kept(relative);
  load_optimizer_archive(
      run.absolute(relative).string(),
      [&](torch::serialize::InputArchive& a) { a.load_from(bytes.data(), bytes.size(), device); }, optimizer);
}

model::ProtoPNet load_latest_model(RunFolder& run, torch::Device device) {
  model::ProtoPNet net(to_model_options(run.model_config()));
  load_checkpoint(run, run.model_checkpoint(), *net, device, nullptr, nullptr);
  return net;
}

void write_train_metrics(const EpochMetrics& m, db::EpochRow& row) {
  row.train_loss = m.mean(m.loss);
  row.train_cross_entropy = m.mean(m.cross_entropy);
  row.train_cluster = m.mean(m.cluster);
  row.train_separation = m.mean(m.separation);
  row.train_avg_separation = m.mean(m.avg_separation);
  row.train_accuracy = m.mean(m.correct);
}

void write_eval_metrics(const EpochMetrics& m, db::EpochRow& row) {
  row.eval_cross_entropy = m.mean(m.cross_entropy);
  row.eval_cluster = m.mean(m.cluster);
  row.eval_separation = m.mean(m.separation);
  row.eval_avg_separation = m.mean(m.avg_separation);
  row.eval_accuracy = m.mean(m.correct);
}

}  // namespace ppnet::pipeline
