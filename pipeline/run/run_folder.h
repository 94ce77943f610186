#pragma once
// The run folder (--run RUN): run.sqlite, checkpoints/, and the model configuration every
// command of the run shares. Later commands read the model from here, never from options.
// No LibTorch here (info and report use only this); checkpoints are in pipeline/stages/checkpoint.h.

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/interrupt.h"
#include "db/run_store.h"
#include "model/names.h"
#include "pipeline/data/resize.h"
#include "pipeline/data/manifest.h"
#include "pipeline/run/run_lock.h"

namespace ppnet::pipeline {

/// The source kind recorded for a run imported without a data folder (`ppnet import` without
/// --data): its manifest holds only the classes.
inline constexpr const char* kNoData = "none";

struct ModelConfig {
  std::string arch = "vgg19";
  int img_size = 224;
  int num_classes = 0;  // from the data's manifest
  int prototypes_per_class = 10;
  int prototype_dim = 128;
  model::AddOnType add_on = model::AddOnType::kRegular;
  bool pretrained = false;  // created with --weights: training defaults are the reference's
  model::Activation activation = model::Activation::kLog;
  ResizeMethod resize = ResizeMethod::kBilinear;  // how images become model input (absent before 0.2: bilinear)
};

std::string model_config_json(const ModelConfig& m);
/// Throws std::runtime_error naming the field when the JSON lacks one.
ModelConfig model_config_from_json(const std::string& json);

/// names[index]; for an index that is none of them (a database edited by hand), "class <index>
/// (not one of the run's classes)" rather than a crash.
std::string class_name_of(const std::vector<std::string>& names, int64_t index);

/// kWrite: the command writes to the run and holds its lock (pipeline/run/run_lock.h) while the
/// RunFolder lives; kRead: it only reads (info, report, explain), alongside a writer.
enum class Access { kRead, kWrite };

class RunFolder {
 public:
  /// Opens an existing run folder; throws when `dir` holds no run.sqlite with a run in it, or
  /// (kWrite) when another process writes to it.
  static RunFolder open(const std::filesystem::path& dir, Access access = Access::kRead);
  /// Opens `dir` for writing, creating the folder and an empty run.sqlite when absent.
  static RunFolder open_or_create(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  db::RunStore& store() { return *store_; }
  bool has_run();
  ModelConfig model_config();
  /// The class names of the data the run was made from (its recorded manifest), by index.
  std::vector<std::string> class_names();

  /// Throws std::runtime_error saying what differs when `data` is not the prepared data the
  /// run was created with (other classes, source or preparation options). A run imported
  /// without data (its recorded source kind kNoData) takes any data with as many classes, of
  /// the same names when the import was given them.
  void check_data(const std::filesystem::path& data, const Manifest& manifest);

  /// Throws std::runtime_error when `output` (an output option's file, symbolic links followed)
  /// is one of the files ppnet keeps in the run: run.sqlite and its journals, the lock, or
  /// anything under checkpoints/, prototypes/ or analysis/.
  void check_output(const std::filesystem::path& output) const;

  /// The checkpoint of the model as the run's latest finished stage left it (its final
  /// checkpoint), or as the run was created (checkpoints/init.pt); relative to the run folder.
  std::string model_checkpoint();
  /// Path under checkpoints/ for a new checkpoint, relative to the run folder.
  std::string checkpoint_name(const std::string& tag) const;
  /// `relative`, a path the run's database names (a checkpoint, a pictures folder), under the run
  /// folder. Throws std::runtime_error when it is not inside the folder (empty, absolute, or with
  /// ".."): nothing outside RUN is read, written or removed because of what run.sqlite says.
  std::filesystem::path absolute(const std::string& relative) const;
  /// The bytes of kept file `relative` (see absolute()), checked against the SHA-256 recorded
  /// when it was written: throws std::runtime_error naming the file and what to do when they
  /// differ or it cannot be read. Files written before ppnet recorded checksums are not checked.
  std::string read_kept(const std::string& relative);

 private:
  RunFolder(std::filesystem::path dir, std::unique_ptr<RunLock> lock, std::unique_ptr<db::RunStore> store);
  /// What a killed writer left that no commit refers to: temporary files, checkpoints of ppnet's
  /// names that no row records, picture folders of stage or analysis ids not yet committed.
  /// Called with the lock held, so no other writer can be making them. Returns how many went.
  size_t remove_leftovers();
  std::filesystem::path dir_;
  std::unique_ptr<RunLock> lock_;  // first in, last out: taken before the database is opened
  std::unique_ptr<db::RunStore> store_;
};

/// An existing run opened for a command that reads `data` and writes to the run (it holds the
/// run's lock): the data's manifest has been checked against the one the run was created with
/// (RunFolder::check_data).
struct RunWithData {
  RunFolder run;
  Manifest manifest;
  ModelConfig model;
};
RunWithData open_run_with_data(const std::filesystem::path& run_dir, const std::filesystem::path& data);

/// The torchrun job a command runs in. torchrun's elastic agent (`--max-restarts N`) restarts a
/// failed worker group with the same command line; every worker sees the job's id
/// (TORCHELASTIC_RUN_ID: torchrun's --rdzv-id, a fresh one with --standalone) and how many
/// restarts came before (TORCHELASTIC_RESTART_COUNT).
struct ElasticJob {
  std::string id;    // empty outside torchrun
  int restarts = 0;  // 0: the job's first attempt
  /// From the environment; throws std::runtime_error naming the variable when it is malformed.
  static ElasticJob from_environment();
  /// Whether this is a restart of the job that began `stage`.
  bool restarted(const db::StageRow& stage) const { return restarts > 0 && !id.empty() && stage.job == id; }
};

/// Where a stage of `kind` starts. An unfinished latest stage of the same kind is resumed when
/// `resume`, with the settings it recorded; `resume` on a finished one means nothing to do; a
/// failed one (training diverged) holds up nothing: a new stage begins, with or without `resume`;
/// otherwise a new stage row is begun, recording `job`, from the latest finished stage's final
/// checkpoint. A restart of the job that began the latest stage (ElasticJob::restarted) resumes
/// as `resume` does, without it, and refuses to begin again a stage of the job that failed.
/// Throws when another kind of stage is unfinished (it must be resumed first).
struct StageStart {
  int64_t stage_id = 0;
  std::string start_checkpoint;
  std::string settings_json;
  bool resumed = false;
  bool already_done = false;
};
StageStart resolve_stage(RunFolder& run, db::StageKind kind, bool resume, const std::string& settings_json,
                         const std::string& resume_hint, const ElasticJob& job);

/// Marks stage `stage_id` of `run` failed, unless it already is, so that the next command goes
/// on from the run's last finished stage; returns `error`'s message with what happened to the
/// stage (also when the database could not be written).
std::string mark_stage_failed(RunFolder& run, int64_t stage_id, const std::exception& error);

/// The work of stage `stage_id` once it has begun: returns `body()`. When body throws anything
/// but Interrupted or Resumable (which leave the stage to --resume), the stage is marked failed
/// (mark_stage_failed) and the error, rethrown as std::runtime_error, says so: no failure leaves
/// a stage running that nothing can resume. Without `run` (ranks other than 0) only body runs.
template <class Body>
auto within_stage(RunFolder* run, int64_t stage_id, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Interrupted&) {
    throw;
  } catch (const Resumable&) {
    throw;
  } catch (const std::exception& e) {
    if (!run) throw;
    throw std::runtime_error(mark_stage_failed(*run, stage_id, e));
  }
}

}  // namespace ppnet::pipeline
