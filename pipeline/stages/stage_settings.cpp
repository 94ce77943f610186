#include "pipeline/stages/stage_settings.h"

#include "base/names.h"

#include <cmath>
#include <stdexcept>

namespace ppnet::pipeline {

namespace {
constexpr const char* kScheduleNames[] = {"step", "cosine"};
constexpr const char* kSolverNames[] = {"prox", "adam", "newton", "fista"};
constexpr const char* kPushRegionNames[] = {"all", "object"};
}  // namespace

const char* schedule_name(LrSchedule s) { return name_of(kScheduleNames, s); }
LrSchedule parse_schedule(const std::string& name) { return value_of<LrSchedule>(kScheduleNames, name); }
const char* solver_name(Solver s) { return name_of(kSolverNames, s); }
Solver parse_solver(const std::string& name) { return value_of<Solver>(kSolverNames, name); }
const char* push_region_name(PushRegion r) { return name_of(kPushRegionNames, r); }
PushRegion parse_push_region(const std::string& name) { return value_of<PushRegion>(kPushRegionNames, name); }

void to_json(nlohmann::json& j, LrSchedule s) { j = schedule_name(s); }
void from_json(const nlohmann::json& j, LrSchedule& s) { s = parse_schedule(j.get<std::string>()); }
void to_json(nlohmann::json& j, Amp a) { j = amp_name(a); }
void from_json(const nlohmann::json& j, Amp& a) { a = parse_amp(j.get<std::string>()); }

}  // namespace ppnet::pipeline
namespace ppnet::model {
void to_json(nlohmann::json& j, FineAnnotationForm f) { j = to_string(f); }
void from_json(const nlohmann::json& j, FineAnnotationForm& f) { f = parse_fine_annotation_form(j.get<std::string>()); }
}  // namespace ppnet::model
namespace ppnet::pipeline {

void to_json(nlohmann::json& j, Solver s) { j = solver_name(s); }
void from_json(const nlohmann::json& j, Solver& s) { s = parse_solver(j.get<std::string>()); }

namespace {

// Values no command records: a database edited by hand (a StepLR step of 0 would divide by zero).
void check(const TrainSettings& s) {
  if (s.epochs < 0 || s.batch_size < 1 || s.eval_batch_size < 1 || s.lr_step < 1 || s.lr_step_offset < 0) {
    throw std::invalid_argument("epochs must be 0 or more, batch_size, eval_batch_size and lr_step at least 1, "
                                "lr_step_offset 0 or more");
  }
  if (!(s.fine_annotation >= 0) || !(s.annotated_fraction > 0 && s.annotated_fraction <= 1)) {
    throw std::invalid_argument("fine_annotation must be 0 or more, annotated_fraction in (0, 1]");
  }
  if (!(s.forget >= 0) || !(s.remember >= 0)) throw std::invalid_argument("forget and remember must be 0 or more");
}
void check(const LastLayerSettings& s) {
  if (s.epochs < 0 || s.batch_size < 1 || s.eval_batch_size < 1 || s.max_iterations < 0) {
    throw std::invalid_argument("epochs and max_iterations must be 0 or more, batch_size and eval_batch_size at least 1");
  }
}

template <class Settings>
Settings settings_from_json(const std::string& json, int64_t stage_id) {
  try {
    auto s = nlohmann::json::parse(json).get<Settings>();
    check(s);
    return s;
  } catch (const std::exception& e) {
    throw std::runtime_error("stage #" + std::to_string(stage_id) + "'s settings in run.sqlite: " + e.what());
  }
}
}  // namespace

TrainSettings train_settings_from_json(const std::string& json, int64_t stage_id) {
  return settings_from_json<TrainSettings>(json, stage_id);
}

LastLayerSettings last_layer_settings_from_json(const std::string& json, int64_t stage_id) {
  return settings_from_json<LastLayerSettings>(json, stage_id);
}

double lr_factor(const TrainSettings& s, bool joint, int64_t epoch, int64_t batch, int64_t batches) {
  if (!joint) return 1.0;
  if (s.lr_schedule == LrSchedule::kCosine) {
    const double progress =
        (static_cast<double>(epoch) + static_cast<double>(batch) / static_cast<double>(batches)) / s.epochs;
    return 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  // StepLR counts the joint epochs of the earlier push cycles too, as the reference's one
  // scheduler does (schedule_offset, when the stage continues the previous joint stage).
  const int64_t e = epoch + s.schedule_offset + s.lr_step_offset;
  return std::pow(s.lr_gamma, static_cast<double>(e / s.lr_step));
}

}  // namespace ppnet::pipeline
