#pragma once
// Checkpoints of a run's model (with, for training stages, the optimizer and where training
// stood) and the model as the run's latest finished stage left it.

#include <torch/types.h>

#include <filesystem>
#include <optional>

#include "db/run_store.h"
#include "model/protopnet.h"
#include "pipeline/stages/epoch_metrics.h"
#include "pipeline/run/run_folder.h"

namespace torch::optim {
class Optimizer;
}

namespace ppnet::pipeline {

model::ProtoPNetOptions to_model_options(const ModelConfig& m);

/// What a checkpoint holds besides the weights: where training stood.
struct TrainingPosition {
  int64_t stage_id = 0;
  int64_t epoch = 0;  // epochs completed
  int64_t batch = 0;  // batches of the next epoch completed
  /// The sums of the epoch in progress, so that a resumed epoch reports what an uninterrupted
  /// one would.
  EpochMetrics sums;
};

/// Writes model (and optionally optimizer and position) atomically to `path`; returns the
/// SHA-256 of the bytes written, for the run's record (db::FileRow).
std::string save_checkpoint(const std::filesystem::path& path, model::ProtoPNetImpl& model,
                     torch::optim::Optimizer* optimizer, const TrainingPosition* position);
/// Saves a training stage's checkpoint at `position` (model, optimizer, position) and registers
/// it, with the epoch's metrics when given. The stage's earlier non-final checkpoints are forgotten
/// in the same transaction and their files removed after the commit, so a stage keeps only its
/// latest and its final checkpoint.
void save_stage_checkpoint(RunFolder& run, model::ProtoPNetImpl& model, torch::optim::Optimizer& optimizer,
                           const TrainingPosition& position, bool final, const std::optional<db::EpochRow>& epoch_row);

/// Loads what save_checkpoint wrote into `model` (on `device`) and, when given, `optimizer` and
/// `position`. Throws std::runtime_error naming the file when it does not fit.
void load_checkpoint(const std::filesystem::path& path, model::ProtoPNetImpl& model, torch::Device device,
                     torch::optim::Optimizer* optimizer, TrainingPosition* position);
/// The same for checkpoint `relative` of `run`, its bytes first checked against the checksum the
/// run recorded (RunFolder::read_kept).
void load_checkpoint(RunFolder& run, const std::string& relative, model::ProtoPNetImpl& model, torch::Device device,
                     torch::optim::Optimizer* optimizer, TrainingPosition* position);
/// Only the optimizer's state of the checkpoint at `path` (Adam's moments and step counts), onto
/// `device`: a joint stage continuing the previous one's. Throws std::runtime_error naming the file.
void load_optimizer_state(const std::filesystem::path& path, torch::optim::Optimizer& optimizer, torch::Device device);
/// The same for checkpoint `relative` of `run`, checked against its recorded checksum first.
void load_optimizer_state(RunFolder& run, const std::string& relative, torch::optim::Optimizer& optimizer,
                          torch::Device device);

/// The model as the run's latest finished stage left it (or as created), on `device`.
model::ProtoPNet load_latest_model(RunFolder& run, torch::Device device);

/// An epoch's means per image into its row's train_* fields (loss terms and accuracy).
void write_train_metrics(const EpochMetrics& metrics, db::EpochRow& row);
/// An evaluation's means per image into the row's eval_* fields (loss terms and accuracy).
void write_eval_metrics(const EpochMetrics& metrics, db::EpochRow& row);

}  // namespace ppnet::pipeline
