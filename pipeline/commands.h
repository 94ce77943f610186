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

/// Loads `config.weights` into a fresh `config.arch` backbone; throws if it does not fit.
WeightsReport run_weights(const WeightsConfig& config);

}  // namespace ppnet::pipeline
