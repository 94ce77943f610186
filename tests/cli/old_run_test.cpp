// A run made before 0.2 (tests/data/run-0.1: stage settings and model configuration in 0.1's
// JSON, a joint stage killed after its first checkpoint) opens, resumes and goes on: every command
// reads what 0.1 recorded through today's typed settings.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "db/run_store.h"
#include "tests/common/test_util.h"

#include "test_paths.h"

namespace ppnet {
namespace {

namespace fs = std::filesystem;
using test::run_ppnet;

TEST(OldRun, ARunMadeByZeroPointOneResumesAndGoesOn) {
  test::TempDir dir;
  fs::copy(fs::path(PPNET_SOURCE_DIR) / "tests" / "data" / "run-0.1", dir.path(), fs::copy_options::recursive);
  const std::string run = dir.file("run"), data = dir.file("data");
  const std::string d = " --data " + data + " --run " + run + " --threads 1";

  auto r = run_ppnet("info --json --run " + run);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto info = nlohmann::json::parse(r.out);
  EXPECT_EQ(info["model"]["resize"], "bilinear") << "0.1 recorded no resize: it resized bilinearly";
  ASSERT_EQ(info["stages"].size(), 5u);
  EXPECT_EQ(info["stages"][4]["status"], "running");

  // The killed joint stage resumes with the settings 0.1 recorded — the from-scratch recipe's
  // cosine decay from 1e-3 over 2 epochs of 3 batches, continuing stage #2's Adam state.
  r = run_ppnet("train --stage joint --resume --json" + d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto trained = nlohmann::json::parse(r.out);
  EXPECT_TRUE(trained["resumed"].get<bool>());
  ASSERT_EQ(trained["epochs"].size(), 2u);
  // The rate of each epoch's last batch: 1e-3 · ½(1 + cos(π · (e + 2/3) / 2)).
  EXPECT_NEAR(trained["epochs"][0]["learning_rate"].get<double>(), 1e-3 * 0.5 * (1 + std::cos(M_PI / 3)), 1e-12);
  EXPECT_NEAR(trained["epochs"][1]["learning_rate"].get<double>(), 1e-3 * 0.5 * (1 + std::cos(5 * M_PI / 6)), 1e-12);

  for (const char* step : {"project", "last-layer", "evaluate"}) {
    r = run_ppnet(std::string(step) + d);
    EXPECT_EQ(r.exit_code, 0) << step << ": " << r.err;
  }
  r = run_ppnet("info --json --run " + run);
  info = nlohmann::json::parse(r.out);
  ASSERT_EQ(info["stages"].size(), 7u);
  for (const auto& s : info["stages"]) EXPECT_EQ(s["status"], "done") << s.dump();
  EXPECT_EQ(run_ppnet("report --run " + run).exit_code, 0);
}

}  // namespace
}  // namespace ppnet
