#pragma once
// One run_<command>() per subcommand that is built. Each returns a plain report that cli/
// prints as text or JSON; progress goes to stderr. Errors are exceptions whose message names
// the file, option or value at fault. No LibTorch types here, so cli/ stays free of them.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pipeline/config.h"

namespace ppnet::pipeline {

/// "ppnet 0.1.0 (LibTorch 1.13.1, CPU)"-style line for --version.
std::string build_info();

struct WeightsReport {
  std::string arch;
  std::string file;
  std::string format;  // "safetensors" or "torch.save (zip)"
  int64_t tensors_loaded = 0;
  int64_t parameters = 0;
  std::vector<std::string> ignored;    // classification-head tensors left out
  std::vector<std::string> defaulted;  // optional buffers the file lacks
  int64_t out_channels = 0;            // backbone features at img_size: channels × grid × grid
  int64_t grid = 0;
  int64_t receptive_field = 0;  // pixels covered by one latent cell
  int img_size = 0;
  int threads = 0;
};

struct PrepareReport {
  std::string out;
  std::string source_kind;
  int classes = 0;
  std::map<std::string, int64_t> images;  // split → images listed (train: augmented outputs)
  int64_t source_images = 0;   // source images this run decoded
  int64_t files_written = 0;
  int64_t files_kept = 0;      // complete outputs of an earlier, interrupted run
  std::vector<std::string> failed;  // "path: reason", one per unreadable source image
  bool up_to_date = false;     // the same command had already finished: nothing to do
  double seconds = 0;
  int threads = 0;
};

/// Turns raw data into a prepared data folder (see shared/DESIGN.md §1). Metadata errors throw
/// before anything is written; unreadable images are reported in `failed` and the rest done.
/// Re-running the same command resumes; a different command on the same folder throws unless
/// config.force. Throws Interrupted after SIGINT/SIGTERM, leaving a resumable folder.
PrepareReport run_prepare(const PrepareConfig& config);

struct EpochSummary {
  int64_t epoch = 0;
  double train_loss = 0, train_accuracy = 0, eval_accuracy = 0, images_per_second = 0, seconds = 0;
  std::string eval_split;
};

struct TrainReport {
  std::string run;
  std::string stage;
  int64_t stage_id = 0;
  bool created_run = false;
  bool resumed = false;
  bool already_done = false;  // --resume on a finished stage: nothing to do
  std::vector<EpochSummary> epochs;  // the epochs this invocation ran
  double seconds = 0;
};

/// Trains the stage into the run folder (created on first use), resumably; see
/// shared/DESIGN.md §3. Throws Interrupted after SIGINT/SIGTERM once a checkpoint is saved.
TrainReport run_train(const TrainConfig& config);

struct StageInfo {
  int64_t id = 0;
  std::string kind, status, started, finished;
  int64_t epochs_done = 0;
  double last_train_loss = 0, last_eval_accuracy = 0;
  std::string eval_split;
};

struct EpochInfo {
  int64_t stage_id = 0;
  std::string stage;
  int64_t epoch = 0;
  double train_loss = 0, train_cross_entropy = 0, train_cluster = 0, train_separation = 0,
         train_avg_separation = 0, train_accuracy = 0;
  std::string eval_split;
  double eval_cross_entropy = 0, eval_accuracy = 0, l1 = 0, prototype_distance = 0,
         images_per_second = 0, seconds = 0;
};

struct InfoReport {
  std::string run;
  std::string created;
  std::string ppnet_version;
  std::string model_json;
  std::string data_path;
  std::vector<StageInfo> stages;
  std::vector<EpochInfo> epochs;
};

/// What run.sqlite records about a run.
InfoReport run_info(const InfoConfig& config);

/// Loads `config.weights` into a fresh `config.arch` backbone; throws if it does not fit.
WeightsReport run_weights(const WeightsConfig& config);

}  // namespace ppnet::pipeline
