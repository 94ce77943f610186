#pragma once
// `ppnet train --stage warm|joint`: the SGD stages, resumable, into a run folder.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "model/names.h"
#include "pipeline/data/resize.h"
#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/epoch_summary.h"
#include "pipeline/stages/stage_names.h"

namespace ppnet::pipeline {

struct TrainConfig {
  std::string stage;  // "warm" or "joint"
  std::string data, run;
  // The model: fixed when the run is created; later commands may repeat, not change, them.
  std::string arch = "vgg19";
  int img_size = 224;
  int prototypes_per_class = 10;
  int prototype_dim = 128;
  model::AddOnType add_on = model::AddOnType::kRegular;
  model::Activation activation = model::Activation::kLog;  // new runs: the prototype activation
  ResizeMethod resize = ResizeMethod::kBilinear;  // new runs: how images become model input
  std::set<std::string> given;  // model options given explicitly (cli fills it)
  std::string weights;          // pretrained backbone, when the run is created
  // The stage (recorded with it; --resume continues with the recorded values). Defaults are the
  // reference's. The three left unset depend on the run: the reference's values with a
  // pretrained backbone, the from-scratch recipe otherwise (pipeline/stages/train.cpp, docs/usage.md).
  std::optional<int> epochs;               // 0 skips the stage
  std::optional<double> lr_backbone;       // joint
  std::optional<LrSchedule> lr_schedule;   // joint: StepLR, or cosine (to 0 over the stage)
  int batch_size = 80;
  int eval_batch_size = 100;
  double lr_add_on = 3e-3;
  double lr_prototypes = 3e-3;
  double weight_decay = 1e-3;  // backbone and add-on layers
  int lr_step = 5;             // joint, step: StepLR step size in epochs
  double lr_gamma = 0.1;
  int lr_step_offset = 0;      // joint, step: epoch e at γ^⌊(e + offset)/lr_step⌋; 1 is the reference's schedule
  double cross_entropy = 1.0, cluster = 0.8, separation = -0.08, l1 = 1e-4;
  // Fine annotation (IAIA-BL): penalise similarity outside the object masks of the prepared data
  // (DATA/masks/); 0 is off, IAIA-BL used 0.001. Refused when the data has no masks.
  double fine_annotation = 0;
  double annotated_fraction = 1;  // the share of source images whose masks it uses (seeded)
  model::FineAnnotationForm fine_annotation_form = model::FineAnnotationForm::kSerial;
  // ProtoPDebug's losses over the concepts marked with `ppnet forbid` / `ppnet remember` (its
  // coefficients on CUB); they apply when the run has concepts. Forgetting counts only the
  // similarity above forbid_threshold (empty: the similarity at squared distance 1, as `project`).
  double forget = 100, remember = 10;
  std::optional<double> forbid_threshold;
  int checkpoint_every = 0;  // also checkpoint every N batches (0: only at epoch ends)
  double flip = 0;           // online augmentation: a left-right flip of each training image with this probability
  double bucket_mb = 25;     // data-parallel: gradient bucket size, as DDP's bucket_cap_mb
  bool restart_optimizer = false;  // joint: fresh Adam state and schedule, not the previous joint stage's
  bool resume = false;
  RuntimeConfig runtime;
};

struct TrainResult {
  std::string run;
  std::string stage;
  int64_t stage_id = 0;
  bool created_run = false;
  bool resumed = false;
  bool already_done = false;  // --resume on a finished stage: nothing to do
  int rank = 0, ranks = 1;    // data-parallel: this process and how many train together
  std::vector<EpochSummary> epochs;  // the epochs this invocation ran
  double seconds = 0;
};

/// Trains the stage into the run folder (created on first use), resumably; see
/// docs/design.md §3. Throws Interrupted after SIGINT/SIGTERM once a checkpoint is saved.
TrainResult run_train(const TrainConfig& config);

}  // namespace ppnet::pipeline
