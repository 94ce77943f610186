#pragma once
// The closed sets of names a stage's options take — the joint stage's learning-rate schedule and
// the last-layer solver — with one function each to name and parse them. No JSON or LibTorch
// here: cli/ parses the command line into them.

#include <string>

namespace ppnet::pipeline {

/// The joint stage's learning-rate schedule: StepLR per epoch, or a cosine decay to 0 over the
/// stage, per batch.
enum class LrSchedule { kStep, kCosine };

/// "step" or "cosine".
const char* schedule_name(LrSchedule s);
/// Throws std::invalid_argument "'NAME': expected step or cosine".
LrSchedule parse_schedule(const std::string& name);

/// How `ppnet last-layer` solves its convex problem: to the optimum by proximal Newton or
/// FISTA (prox: whichever is faster for the problem's size, model::ProxMethod::kAuto), or the
/// reference's Adam epochs.
enum class Solver { kProx, kAdam, kNewton, kFista };

/// "prox", "adam", "newton" or "fista".
const char* solver_name(Solver s);
/// Throws std::invalid_argument "'NAME': expected prox, adam, newton or fista".
Solver parse_solver(const std::string& name);

/// Where projection may put a prototype: on any cell of its class's push images (the
/// reference's), or only on cells whose receptive-field centre lies inside the image's object
/// mask (images without a mask keep every cell).
enum class PushRegion { kAll, kObject };

/// "all" or "object".
const char* push_region_name(PushRegion r);
/// Throws std::invalid_argument "'NAME': expected all or object".
PushRegion parse_push_region(const std::string& name);

}  // namespace ppnet::pipeline
