// A stage's recorded settings read back as types, and the learning-rate factor they give.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "pipeline/stages/stage_settings.h"

namespace ppnet::pipeline {
namespace {

// Stage settings are input too: 0.1's JSON reads with today's defaults for what it lacks, and a
// value no command records (a database edited by hand) is refused naming the stage.
TEST(StageSettings, OldJsonReadsAndImpossibleValuesAreRefused) {
  const auto old = train_settings_from_json(
      R"({"epochs":2,"batch_size":4,"eval_batch_size":100,"lr_backbone":0.001,"lr_add_on":0.003,"lr_prototypes":0.003,)"
      R"("weight_decay":0.001,"lr_step":1,"lr_gamma":0.1,"cross_entropy":1.0,"cluster":0.8,"separation":-0.08,)"
      R"("l1":0.0001,"checkpoint_every":0,"seed":1,"threads":1})",
      2);
  EXPECT_EQ(old.lr_schedule, LrSchedule::kStep);  // before --lr-schedule: StepLR
  EXPECT_EQ(old.lr_step_offset, 0);
  EXPECT_EQ(old.ranks, 1);
  EXPECT_TRUE(old.continue_optimizer.empty());
  EXPECT_EQ(last_layer_settings_from_json(R"({"epochs":20,"lr":0.0001})", 4).solver, Solver::kAdam)
      << "stages recorded before --solver were Adam's";
  for (const char* bad : {R"({"lr_step":0})", R"({"batch_size":0})", R"({"lr_schedule":"linear"})", R"({"epochs":"two"})",
                          "not json"}) {
    try {
      train_settings_from_json(bad, 7);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("stage #7's settings in run.sqlite: ", 0), 0u) << e.what();
    }
  }
  // And the factor a stage applies: StepLR with the reference's offset, the cosine decay.
  TrainSettings s;
  s.lr_step = 2;
  s.lr_gamma = 0.5;
  EXPECT_DOUBLE_EQ(lr_factor(s, true, 1, 0, 4), 1.0);
  s.lr_step_offset = 1;
  EXPECT_DOUBLE_EQ(lr_factor(s, true, 1, 0, 4), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(s, false, 9, 0, 4), 1.0) << "warm: constant";
  s.lr_schedule = LrSchedule::kCosine;
  s.epochs = 2;
  EXPECT_NEAR(lr_factor(s, true, 1, 0, 4), 0.5, 1e-12);  // half way
}

}  // namespace
}  // namespace ppnet::pipeline
