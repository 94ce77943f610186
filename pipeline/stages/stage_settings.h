#pragma once
// What a training stage (warm, joint) or a last-layer stage runs with: decided when the stage
// begins, recorded as JSON in its row of run.sqlite, and read back by --resume (and, for joint, by
// the next joint stage), so that a resumed stage continues exactly as it began. Fields a run made
// by an earlier release lacks take the defaults below (that release's behaviour); a field of the
// wrong type, or an unknown schedule or solver name, is an error naming the stage.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/names.h"
#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/stage_names.h"

namespace ppnet::pipeline {

void to_json(nlohmann::json& j, LrSchedule s);
void from_json(const nlohmann::json& j, LrSchedule& s);
void to_json(nlohmann::json& j, Amp a);
void from_json(const nlohmann::json& j, Amp& a);
}  // namespace ppnet::pipeline
namespace ppnet::model {
void to_json(nlohmann::json& j, FineAnnotationForm f);
void from_json(const nlohmann::json& j, FineAnnotationForm& f);
}  // namespace ppnet::model
namespace ppnet::pipeline {

struct TrainSettings {
  int epochs = 0;
  LrSchedule lr_schedule = LrSchedule::kStep;
  int batch_size = 80;
  int eval_batch_size = 100;
  double lr_backbone = 1e-4, lr_add_on = 3e-3, lr_prototypes = 3e-3;
  double weight_decay = 1e-3;  // backbone and add-on layers
  int lr_step = 5;             // StepLR: the rate is multiplied by lr_gamma every lr_step epochs,
  double lr_gamma = 0.1;       // joint epoch e (from 0) at γ^⌊(e + schedule_offset + lr_step_offset)/lr_step⌋
  int lr_step_offset = 0;      // 1: the reference's schedule (it steps its scheduler before each epoch)
  double cross_entropy = 1.0, cluster = 0.8, separation = -0.08, l1 = 1e-4;
  // IAIA-BL's fine annotation (model/loss.h): coefficient (0: off), the share of source images
  // whose masks it uses, and the form.
  double fine_annotation = 0;
  double annotated_fraction = 1;
  model::FineAnnotationForm fine_annotation_form = model::FineAnnotationForm::kSerial;
  // ProtoPDebug's forgetting and remembering losses (model/loss.h, concept_activation) over the
  // run's concepts when the stage began (their ids: a concept added later waits for the next
  // stage); forgetting counts only similarity above forbid_threshold.
  double forget = 100, remember = 10, forbid_threshold = 0;
  std::vector<int64_t> concepts;
  int checkpoint_every = 0;  // also checkpoint every N batches
  double flip = 0;           // each training image flipped left to right with this probability (per epoch)
  uint64_t seed = 1;
  int threads = 0;
  int ranks = 1;               // data-parallel processes the stage began with
  Amp amp = Amp::kOff;         // the precision it began with (a resumed stage uses the resuming command's)
  bool channels_last = false;
  // A joint stage continuing the previous finished joint stage's Adam state and StepLR count:
  // that stage's final checkpoint (relative to the run; empty when starting afresh), its id, and
  // the joint epochs done before this stage.
  std::string continue_optimizer;
  int64_t continue_stage = 0;
  int64_t schedule_offset = 0;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainSettings, epochs, lr_schedule, batch_size, eval_batch_size,
                                                lr_backbone, lr_add_on, lr_prototypes, weight_decay, lr_step, lr_gamma,
                                                lr_step_offset, cross_entropy, cluster, separation, l1,
                                                fine_annotation, annotated_fraction, fine_annotation_form,
                                                forget, remember, forbid_threshold, concepts, checkpoint_every, flip, seed, threads, ranks, amp, channels_last,
                                                continue_optimizer, continue_stage, schedule_offset)

/// Parses a stage's recorded settings; throws std::runtime_error "stage #ID's settings in
/// run.sqlite: …" when they are not JSON, a field has the wrong type, or a count no command
/// records (a batch size or StepLR step below 1, a negative epoch count).
TrainSettings train_settings_from_json(const std::string& json, int64_t stage_id);

void to_json(nlohmann::json& j, Solver s);
void from_json(const nlohmann::json& j, Solver& s);

struct LastLayerSettings {
  Solver solver = Solver::kAdam;  // stages recorded before --solver were Adam's
  int epochs = 20;                // adam
  int batch_size = 80;            // adam
  int eval_batch_size = 100;
  double lr = 1e-4;  // adam
  double l1 = 1e-4;
  int64_t max_iterations = 10000;  // prox
  double tolerance = 1e-5;         // prox
  bool recompute = false;          // adam: similarities through the network every epoch
  uint64_t seed = 1;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LastLayerSettings, solver, epochs, batch_size, eval_batch_size, lr, l1,
                                                max_iterations, tolerance, recompute, seed)

/// Parses a last-layer stage's recorded settings; throws as train_settings_from_json does.
LastLayerSettings last_layer_settings_from_json(const std::string& json, int64_t stage_id);

/// The factor of the stage's base learning rates at batch `batch` (of `batches`) of epoch `epoch`
/// (both from 0): 1 in warm; in joint, StepLR or the cosine decay. A function of the position
/// alone, so resuming needs no state.
double lr_factor(const TrainSettings& s, bool joint, int64_t epoch, int64_t batch, int64_t batches);

}  // namespace ppnet::pipeline
