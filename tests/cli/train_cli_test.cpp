// `ppnet train` and `ppnet info` as a shell runs them, including kill -9 and resume.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "model/backbone.h"
#include "pipeline/run/run_folder.h"
#include "db/run_store.h"
#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"
#include "test_paths.h"

namespace ppnet {
namespace {

namespace fs = std::filesystem;
using test::run_ppnet;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(test::prepare_pattern_data(dir_, 3, 60).exit_code, 0); }
  std::vector<std::string> joint_args(const std::string& run, bool resume) {
    std::vector<std::string> a = {"train", "--stage", "joint", "--data", dir_.file("data"), "--run", run,
                                  "--arch", "small", "--img-size", "28", "--prototypes-per-class", "2",
                                  "--prototype-dim", "16", "--epochs", "6", "--batch-size", "8",
                                  "--checkpoint-every", "3", "--threads", "2", "--seed", "3"};
    if (resume) a.push_back("--resume");
    return a;
  }
  std::map<std::string, torch::Tensor> final_state(const std::string& run_dir) { return test::run_state(run_dir); }
  // An image of the prepared test split (empty if there is none).
  fs::path a_test_image() const {
    fs::path image;
    for (const auto& f : fs::recursive_directory_iterator(dir_.path() / "data" / "test")) {
      if (f.is_regular_file()) image = f.path();
    }
    return image;
  }
  test::TempDir dir_;
};

TEST_F(TrainCli, TrainsAndInfoShowsTheEpochs) {
  auto r = run_ppnet("train --stage warm --data " + dir_.file("data") + " --run " + dir_.file("run") +
                     " --arch small --img-size 28 --epochs 2 --batch-size 16 --prototype-dim 16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "stage warm #1 (new run), 2 epochs")) << r.out;
  EXPECT_TRUE(contains(r.err, "warm epoch 2/2: train loss")) << r.err;  // progress on stderr
  r = run_ppnet("info --run " + dir_.file("run"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "warm   done")) << r.out;
  r = run_ppnet("info --run " + dir_.file("run") + " --json");
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"]["arch"], "small");
  EXPECT_EQ(j["epochs"].size(), 2u);
  EXPECT_EQ(j["stages"][0]["status"], "done");

  // A different model on the same run is refused; a missing run is a plain failure.
  r = run_ppnet("train --stage joint --data " + dir_.file("data") + " --run " + dir_.file("run") + " --arch resnet18");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "has --arch small")) << r.err;
  r = run_ppnet("info --run " + dir_.file("nothing"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "no run here")) << r.err;
  r = run_ppnet("train --stage warm --run x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "missing --data")) << r.err;
}

// --quiet, --verbose and --log-json as a pipeline uses them: stderr empty on success under
// --quiet, details under --verbose, and one JSON object per event that a watcher can follow.
TEST_F(TrainCli, QuietVerboseAndJsonEventsForPipelines) {
  const std::string data = dir_.file("data"), run = dir_.file("run"), events = dir_.file("events.jsonl");
  const std::string model = " --arch small --img-size 28 --epochs 2 --batch-size 16 --prototype-dim 16 --threads 2";
  auto r = run_ppnet("train --stage warm --data " + data + " --run " + run + model + " --quiet --log-json " + events);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");                                            // errors only
  EXPECT_TRUE(contains(r.out, "stage warm #1 (new run)")) << r.out;  // the result still on stdout

  std::vector<nlohmann::json> lines;
  std::istringstream in(test::read_file(events));
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  std::vector<std::string> names;
  for (const auto& j : lines) {
    names.push_back(j["event"]);
    EXPECT_EQ(j["command"], "train");
    EXPECT_EQ(j["time"].get<std::string>().size(), 24u) << j;  // 2026-12-06T16:55:32.123Z
    EXPECT_GE(j["elapsed_s"].get<double>(), 0.0);
  }
  ASSERT_GE(names.size(), 7u);
  EXPECT_EQ(names.front(), "started");
  EXPECT_EQ(names.back(), "finished");
  EXPECT_EQ(lines.back()["exit_code"], 0);
  int epochs = 0, checkpoints = 0;
  for (const auto& j : lines) {
    if (j["event"] == "epoch") {
      ++epochs;
      EXPECT_EQ(j["epoch"], epochs);
      EXPECT_GT(j["train_loss"].get<double>(), 0.0);
      EXPECT_EQ(j["eval_split"], "test");
    }
    if (j["event"] == "checkpoint") {
      ++checkpoints;
      EXPECT_TRUE(fs::exists(fs::path(run) / j["path"].get<std::string>()) || !j["final"].get<bool>()) << j;
      EXPECT_EQ(j["sha256"].get<std::string>().size(), 64u);
    }
  }
  EXPECT_EQ(epochs, 2);
  EXPECT_GE(checkpoints, 2);  // one per epoch
  EXPECT_EQ(lines[1]["event"], "stage");
  EXPECT_EQ(lines[1]["status"], "running");
  EXPECT_EQ(lines[1]["kind"], "warm");
  EXPECT_EQ(lines[lines.size() - 2]["event"], "stage");  // the stage is done before the command finishes
  EXPECT_EQ(lines[lines.size() - 2]["status"], "done");

  // The file is appended to: a failing command adds its events and an error with its exit code.
  r = run_ppnet("train --stage joint --data " + data + " --run " + run + " --arch resnet18 --log-json " + events);
  EXPECT_EQ(r.exit_code, 1);
  std::string last;
  std::istringstream again(test::read_file(events));
  size_t count = 0;
  for (std::string line; std::getline(again, line); ++count) last = line;
  EXPECT_EQ(count, lines.size() + 2);  // started, error
  const auto error = nlohmann::json::parse(last);
  EXPECT_EQ(error["event"], "error");
  EXPECT_EQ(error["exit_code"], 1);
  EXPECT_TRUE(contains(error["message"], "has --arch small")) << error;

  // --verbose adds the runtime and every file saved; the default shows neither.
  r = run_ppnet("project --data " + data + " --run " + run + " --threads 2 --verbose");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "runtime: ppnet ")) << r.err;
  EXPECT_TRUE(contains(r.err, "saved ")) << r.err;
  r = run_ppnet("last-layer --data " + data + " --run " + run + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(contains(r.err, "runtime: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "last-layer prox (newton): ")) << r.err;

  // Usage: both at once, or an events file that cannot be opened, exit 2 naming the problem.
  r = run_ppnet("info --run " + run + " --quiet --verbose");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--quiet and --verbose")) << r.err;
  r = run_ppnet("info --run " + run + " --log-json " + dir_.file("no/such/folder/events.jsonl"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "no/such/folder/events.jsonl: cannot open for appending")) << r.err;
}

// forbid / remember through the binary: what each writes, the exit codes of what it refuses,
// and the next training picking the concepts up.
TEST_F(TrainCli, ConceptsFromTheCommandLine) {
  const std::string base = "--data " + dir_.file("data") + " --run " + dir_.file("run");
  ASSERT_EQ(run_ppnet("train --stage joint " + base + " --arch small --img-size 28 --epochs 1 --batch-size 16 "
                      "--prototype-dim 16 --prototypes-per-class 1 --threads 2").exit_code, 0);
  const std::string run = " --run " + dir_.file("run");
  auto r = run_ppnet("forbid" + run + " --prototype 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "has no projection, so prototype 0 has no patch yet: run 'ppnet project' first")) << r.err;
  ASSERT_EQ(run_ppnet("project " + base + " --threads 2 --no-images").exit_code, 0);

  r = run_ppnet("forbid" + run + " --prototype 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto added = nlohmann::json::parse(r.out);
  EXPECT_EQ(added.at("kind"), "forbid");
  EXPECT_EQ(added.at("class_index"), 1);
  EXPECT_EQ(added.at("count"), 1);
  const fs::path image = a_test_image();
  r = run_ppnet("remember" + run + " --image " + image.string() + " --box 0,0,8,8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "remembered concept #2 (class all")) << r.out;
  r = run_ppnet("forbid" + run + " --image " + image.string() + " --box 0,0,8,99");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--box 0,0,8,99: expected 0 ≤ x0 < x1 ≤ 28 and 0 ≤ y0 < y1 ≤ 28 (" + image.string())) << r.err;
  r = run_ppnet("forbid" + run + " --remove 2");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "has no forbid concept #2")) << r.err;
  r = run_ppnet("info" + run + " --concepts --json");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out).at("concepts").size(), 2u);

  r = run_ppnet("train --stage joint " + base + " --epochs 1 --batch-size 16 --threads 2 --forget 5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "concepts: 1 forbidden (forget 5 above similarity 0.693047), 1 remembered")) << r.err;
  ASSERT_EQ(run_ppnet("remember" + run + " --remove 2").exit_code, 0);
  r = run_ppnet("info" + run + " --concepts");
  EXPECT_TRUE(contains(r.out, ": 1 concept(s)")) << r.out;
}

TEST_F(TrainCli, ProjectionKilledLeavesTheRunAsItWasAndARerunCompletes) {
  const std::string base = "--data " + dir_.file("data") + " --run " + dir_.file("run");
  ASSERT_EQ(run_ppnet("train --stage warm " + base + " --arch small --img-size 28 --epochs 1 --batch-size 16 --prototype-dim 16").exit_code, 0);
  const auto before = final_state(dir_.file("run"));
  std::string final_before;
  {
    auto run = pipeline::RunFolder::open(dir_.file("run"));
    final_before = run.store().latest_final_checkpoint()->path;
  }
  // Killed right after its first durable write, the commit that begins the projection stage:
  // the search has begun and nothing of it is recorded yet.
  const std::vector<std::string> project_args = {"project", "--data", dir_.file("data"), "--run", dir_.file("run"),
                                                 "--threads", "1"};
  EXPECT_EQ(test::run_killed_after(project_args, 1, dir_.file("project.log")), 128 + SIGKILL)
      << test::read_file(dir_.file("project.log"));
  {
    auto run = pipeline::RunFolder::open(dir_.file("run"));
    ASSERT_TRUE(run.store().latest_stage().has_value());
    EXPECT_EQ(run.store().latest_stage()->kind, db::StageKind::kProject);  // begun, not finished
  }
  {
    auto run = pipeline::RunFolder::open(dir_.file("run"));
    EXPECT_EQ(run.store().latest_final_checkpoint()->path, final_before);  // the model is the warm one
    EXPECT_FALSE(run.store().latest_projection().has_value());
    EXPECT_EQ(run.store().prototypes(run.store().latest_stage()->id).size(), 0u);
  }
  const auto after_kill = final_state(dir_.file("run"));
  for (const auto& [name, t] : before) EXPECT_TRUE(torch::equal(t, after_kill.at(name))) << name;

  auto r = run_ppnet("project " + base);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "30 of 30 prototypes projected")) << r.out;
  r = run_ppnet("info --run " + dir_.file("run") + " --prototypes");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "push/class2/")) << r.out;
  r = run_ppnet("info --run " + dir_.file("run") + " --prototypes --json");
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["prototypes"].size(), 30u);
  EXPECT_TRUE(fs::exists(dir_.path() / "run" / j["prototypes"][0]["heatmap_png"].get<std::string>()));

  r = run_ppnet("last-layer " + base + " --epochs 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--epochs applies to --solver adam")) << r.err;
  r = run_ppnet("last-layer " + base + " --solver adam --epochs 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ll = nlohmann::json::parse(r.out);
  EXPECT_EQ(ll["epochs"], 3);
  EXPECT_EQ(ll["solver"], "adam");
  r = run_ppnet("last-layer " + base + " --solver adam --epochs 3 --resume");
  EXPECT_TRUE(contains(r.out, "already finished")) << r.out;
  // The proximal solver, on from Adam's result: converged, lower, with exact zeros reported.
  r = run_ppnet("last-layer " + base + " --l1 0.01 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ll = nlohmann::json::parse(r.out);
  EXPECT_EQ(ll["solver"], "prox");
  EXPECT_TRUE(ll["converged"].get<bool>()) << r.out;
  EXPECT_LE(ll["residual"].get<double>(), 1e-5);
  EXPECT_LT(ll["objective"].get<double>(), ll["initial_objective"].get<double>());
  EXPECT_GT(ll["off_class_zero"].get<double>(), 0.0) << r.out;
  // The methods by name: each stage starts from the one before, so each finds that optimum again.
  const double optimum = ll["objective"].get<double>();
  for (const std::string solver : {"fista", "newton"}) {
    r = run_ppnet("last-layer " + base + " --l1 0.01 --json --solver " + solver);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ll = nlohmann::json::parse(r.out);
    EXPECT_EQ(ll["solver"], solver);
    EXPECT_TRUE(ll["converged"].get<bool>()) << r.out;
    EXPECT_NEAR(ll["objective"].get<double>(), optimum, 1e-6 * optimum) << solver;
  }
  r = run_ppnet("last-layer " + base + " --solver newton --lr 0.1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--lr applies to --solver adam (the solver is newton)")) << r.err;
  for (const char* bad : {"--l1 nan", "--tolerance 0", "--solver lbfgs", "--max-iterations 0"}) {
    r = run_ppnet("last-layer " + base + " " + bad);
    EXPECT_EQ(r.exit_code, 2) << bad;
  }
}

// --memory-budget: passes over images take smaller batches and the last layer's cache of
// features is kept in float16 when the budget is too small for float32; the results stay those
// of the default budget (the same predictions; the same optimum to float16's precision).
TEST_F(TrainCli, AMemoryBudgetShrinksBatchesAndTheCacheNotTheResults) {
  const std::string base = "--data " + dir_.file("data") + " --run " + dir_.file("run") + " --threads 2";
  ASSERT_EQ(run_ppnet("train --stage warm " + base + " --arch small --img-size 28 --epochs 1 --batch-size 16 "
                      "--prototype-dim 16 --eval-batch-size 50").exit_code, 0);
  auto r = run_ppnet("project " + base + " --memory-budget 1 --batch-size 20");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "project: search: batches of 1 images instead of 20")) << r.err;

  r = run_ppnet("last-layer " + base + " --l1 0.01 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto roomy = nlohmann::json::parse(r.out);
  EXPECT_EQ(roomy["feature_batch"], 100);
  EXPECT_EQ(roomy["cache_dtype"], "float32");
  r = run_ppnet("last-layer " + base + " --l1 0.01 --json --memory-budget 1k");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto tight = nlohmann::json::parse(r.out);
  EXPECT_EQ(tight["feature_batch"], 1);
  EXPECT_EQ(tight["cache_dtype"], "float16");
  EXPECT_TRUE(contains(r.err, "last-layer: features: batches of 1 images instead of 100")) << r.err;
  EXPECT_TRUE(contains(r.err, "kept in float16")) << r.err;
  EXPECT_TRUE(tight["converged"].get<bool>()) << r.out;
  const double optimum = roomy["objective"].get<double>();
  EXPECT_NEAR(tight["objective"].get<double>(), optimum, 1e-2 * optimum);
  EXPECT_NE(tight["objective"].get<double>(), optimum);  // float16 did round the features
  EXPECT_NEAR(tight["eval_accuracy"].get<double>(), roomy["eval_accuracy"].get<double>(), 0.02);

  r = run_ppnet("evaluate " + base + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double accuracy = nlohmann::json::parse(r.out)["accuracy"].get<double>();
  r = run_ppnet("evaluate " + base + " --json --memory-budget 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "evaluate: batches of 1 images instead of")) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["accuracy"].get<double>(), accuracy);

  r = run_ppnet("train --stage joint " + base + " --epochs 1 --batch-size 16 --memory-budget 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "joint: evaluation: batches of 1 images instead of 100")) << r.err;
  for (const char* bad : {"12X", "0", "0.5"}) {
    r = run_ppnet("evaluate " + base + " --memory-budget " + bad);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_TRUE(contains(r.err, std::string("--memory-budget '") + bad + "': expected a size such as 6G")) << r.err;
  }
}

// Values that make training blow up are refused before anything is recorded; training that
// diverges anyway (here: backbone weights scaled so far that float32 overflows) fails its stage,
// which does not hold up the run: the next train starts a new stage instead of demanding --resume.
TEST_F(TrainCli, BadValuesAreRefusedAndADivergedStageDoesNotBlockTheRun) {
  const std::string base = "--data " + dir_.file("data") + " --run " + dir_.file("run") +
                           " --arch small --img-size 28 --prototype-dim 16 --batch-size 16 --epochs 1";
  for (const char* bad : {"--lr-prototypes nan", "--lr-backbone inf", "--cluster -1e300", "--l1 -1"}) {
    const auto r = run_ppnet("train --stage warm " + base + " " + bad);
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_.path() / "run")) << "nothing recorded for a refused value";

  auto backbone = model::make_backbone("small");
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : backbone->named_parameters()) state[p.key()] = p.value().detach() * 1e20;
  for (const auto& b : backbone->named_buffers()) state[b.key()] = b.value();
  test::write_safetensors(dir_.file("huge.safetensors"), state);
  auto r = run_ppnet("train --stage warm " + base + " --weights " + dir_.file("huge.safetensors"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "training diverged at warm epoch 1 batch 1")) << r.err;
  EXPECT_TRUE(contains(r.err, "stage #1 is marked failed")) << r.err;
  r = run_ppnet("train --stage warm --resume " + base);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "stage #2 is marked failed")) << "a new stage, not a refusal: " << r.err;
  r = run_ppnet("info --run " + dir_.file("run") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["stages"].size(), 2u);
  EXPECT_EQ(j["stages"][0]["status"], "failed");
  EXPECT_EQ(j["stages"][1]["status"], "failed");
}

// --amp bf16 against float32, same seed and data: another trajectory (the backbone rounds to 8
// bits of mantissa) that learns as well; the precision is recorded. --channels-last alone changes
// only the order of sums: its first epoch matches float32's closely.
TEST_F(TrainCli, MixedPrecisionLearnsAsFloat32Does) {
  auto train = [&](const std::string& run, const std::string& extra, const std::string& epochs = "6") {
    auto a = joint_args(dir_.file(run), false);
    a[std::find(a.begin(), a.end(), "--epochs") - a.begin() + 1] = epochs;
    std::string cmd;
    for (const auto& s : a) cmd += s + " ";
    const auto r = run_ppnet(cmd + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto info = run_ppnet("info --json --run " + dir_.file(run));
    return nlohmann::json::parse(info.out);
  };
  const auto fp32 = train("fp32", ""), bf16 = train("bf16", "--amp bf16");
  const double a32 = fp32["epochs"].back()["eval_accuracy"].get<double>();
  const double a16 = bf16["epochs"].back()["eval_accuracy"].get<double>();
  std::cout << "eval accuracy after 6 epochs: float32 " << a32 << ", bf16 " << a16 << "\n";
  EXPECT_GE(a32, 0.8);
  EXPECT_GE(a16, a32 - 0.1);
  const double loss32 = fp32["epochs"][0]["train_loss"].get<double>(), loss16 = bf16["epochs"][0]["train_loss"].get<double>();
  EXPECT_GT(std::abs(loss16 - loss32), 1e-4 * std::abs(loss32)) << "bf16 did not apply";
  auto settings = nlohmann::json::parse(db::RunStore(dir_.file("bf16/run.sqlite")).stages().at(0).config_json);
  EXPECT_EQ(settings["amp"], "bf16");
  EXPECT_EQ(settings["channels_last"], false);

  // Over a training epoch the order of sums moves the trajectory a little (0.5 % here); the same
  // model is learnt.
  const auto nhwc = train("nhwc", "--channels-last", "1");
  const double loss_nhwc = nhwc["epochs"][0]["train_loss"].get<double>();
  EXPECT_LT(std::abs(loss_nhwc - loss32), 0.05 * std::abs(loss32)) << "channels-last trains another model";
  settings = nlohmann::json::parse(db::RunStore(dir_.file("nhwc/run.sqlite")).stages().at(0).config_json);
  EXPECT_EQ(settings["channels_last"], true);

  const auto r = run_ppnet("train --stage joint --data " + dir_.file("data") + " --run " + dir_.file("x") + " --amp fp16");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--amp fp16 needs --device cuda")) << r.err;
}

// --activation linear: recorded with the run, used by every later command, not changed later.
TEST_F(TrainCli, LinearActivationIsRecordedAndUsedThroughout) {
  const std::string d = " --data " + dir_.file("data") + " --run " + dir_.file("lin");
  auto r = run_ppnet("train --stage joint" + d + " --arch small --img-size 28 --prototype-dim 16 --epochs 2 "
                     "--batch-size 16 --activation linear");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* step : {"project", "last-layer", "evaluate"}) {
    r = run_ppnet(std::string(step) + d);
    EXPECT_EQ(r.exit_code, 0) << step << ": " << r.err;
  }
  // The linear activation is −d: every similarity a later command reports is ≤ 0 and equals
  // minus the distance (the log activation's are > 0).
  r = run_ppnet("analyze" + d + " --k 2 --no-images --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int nearest = 0;
  const auto analysis = nlohmann::json::parse(r.out);
  for (const auto& p : analysis["prototypes"]) {
    for (const auto& n : p["nearest"]) {
      EXPECT_NEAR(n["similarity"].get<double>(), -n["distance"].get<double>(), 1e-5);
      ++nearest;
    }
  }
  EXPECT_GT(nearest, 0);
  fs::create_directories(dir_.path() / "lin-imgs");
  const fs::path image = a_test_image();
  ASSERT_FALSE(image.empty());
  fs::copy_file(image, dir_.path() / "lin-imgs" / ("a" + image.extension().string()));
  r = run_ppnet("explain --run " + dir_.file("lin") + " --dir " + dir_.file("lin-imgs") + " --out " + dir_.file("lin-out") +
                " --top-k 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto e = nlohmann::json::parse(test::read_file((dir_.path() / "lin-out" / ("a" + image.extension().string()) / "explanation.json").string()));
  ASSERT_EQ(e["prototypes"].size(), 3u);
  for (const auto& p : e["prototypes"]) EXPECT_LE(p["similarity"].get<double>(), 0.0) << p.dump();
  r = run_ppnet("info --json --run " + dir_.file("lin"));
  EXPECT_EQ(nlohmann::json::parse(r.out)["model"]["activation"], "linear");
  r = run_ppnet("train --stage joint" + d + " --epochs 1 --activation log");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "has --activation linear")) << r.err;
  r = run_ppnet("train --stage joint" + d + " --activation tanh");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--activation 'tanh': expected log or linear")) << r.err;
}

// --resize antialias: recorded with the run, refused when changed, and the model input explain
// shows is Pillow's antialiased resize of the image (28 px shrunk to 16).
TEST_F(TrainCli, AntialiasedResizeIsRecordedAndUsedThroughout) {
  const std::string d = " --data " + dir_.file("data") + " --run " + dir_.file("aa");
  auto r = run_ppnet("train --stage joint" + d + " --arch small --img-size 16 --prototype-dim 16 --epochs 1 "
                     "--batch-size 16 --resize antialias");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_ppnet("info --json --run " + dir_.file("aa"));
  EXPECT_EQ(nlohmann::json::parse(r.out)["model"]["resize"], "antialias");
  r = run_ppnet("train --stage joint" + d + " --epochs 1 --resize bilinear");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "has --resize antialias")) << r.err;
  r = run_ppnet("train --stage joint" + d + " --resize lanczos");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--resize 'lanczos': expected bilinear or antialias")) << r.err;
  ASSERT_EQ(run_ppnet("project" + d).exit_code, 0);

  const fs::path image = a_test_image();
  ASSERT_FALSE(image.empty());
  fs::create_directories(dir_.path() / "aa-imgs");
  fs::copy_file(image, dir_.path() / "aa-imgs" / "a.png");
  r = run_ppnet("explain --run " + dir_.file("aa") + " --dir " + dir_.file("aa-imgs") + " --out " + dir_.file("aa-out") +
                " --top-k 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string pillow = dir_.file("pillow.png");
  const std::string cmd = std::string(PPNET_ORACLE_PYTHON) +
                          " -c \"import sys; from PIL import Image; "
                          "Image.open(sys.argv[1]).convert('RGB').resize((16, 16), Image.BILINEAR).save(sys.argv[2])\" " +
                          image.string() + " " + pillow;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const cv::Mat shown = cv::imread(dir_.file("aa-out/a.png/input.png")), expected = cv::imread(pillow);
  ASSERT_EQ(shown.size(), cv::Size(16, 16));
  EXPECT_EQ(cv::norm(shown, expected, cv::NORM_INF), 0.0);
}

// The CSV files of evaluate, read back by Python's csv module: a class name and paths holding a
// comma and quotes survive (RFC 4180: fields quoted, quotes doubled).
TEST(EvaluateCsv, ClassNamesWithCommasAndQuotesSurviveAStandardReader) {
  test::TempDir dir;
  test::make_pattern_folder(dir.path() / "images", 2, 20);
  const std::string odd = "shirt \"v2\", blue";
  fs::rename(dir.path() / "images" / "class0", dir.path() / "images" / odd);
  const std::string d = " --data " + dir.file("data") + " --run " + dir.file("run");
  ASSERT_EQ(run_ppnet("prepare --folder " + dir.file("images") + " --out " + dir.file("data") + " --copies 0").exit_code, 0);
  ASSERT_EQ(run_ppnet("train --stage joint" + d + " --arch small --img-size 28 --prototype-dim 16 --epochs 1 --batch-size 16")
                .exit_code, 0);
  const auto r = run_ppnet("evaluate" + d + " --predictions-csv " + dir.file("pred.csv") + " --confusion-csv " +
                           dir.file("conf.csv"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string to_json = dir.file("read.json");
  const std::string cmd = std::string(PPNET_ORACLE_PYTHON) +
                          " -c 'import csv, json, sys; json.dump([list(csv.reader(open(f, newline=\"\"))) for f in "
                          "sys.argv[1:3]], open(sys.argv[3], \"w\"))' " + dir.file("pred.csv") + " " + dir.file("conf.csv") +
                          " " + to_json;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto tables = nlohmann::json::parse(test::read_file(to_json));
  const auto& pred = tables[0];
  const auto& conf = tables[1];
  ASSERT_GE(pred.size(), 2u);
  for (const auto& row : pred) EXPECT_EQ(row.size(), 4u) << row.dump();
  bool odd_path = false;
  for (const auto& row : pred) odd_path |= row[0].get<std::string>().find(odd) != std::string::npos;
  EXPECT_TRUE(odd_path) << pred.dump();
  ASSERT_EQ(conf.size(), 3u);  // header + 2 classes
  EXPECT_EQ(conf[0].size(), 3u);
  bool named = false;
  for (const auto& cell : conf[0]) named |= cell.get<std::string>().find(odd) != std::string::npos;
  EXPECT_TRUE(named) << conf.dump();
}

// Under torchrun's restarts the same command line runs again: a projection or last layer the
// job already finished is found done (as with --resume), while another job's command begins
// its own.
TEST_F(TrainCli, ATorchrunRestartFindsItsJobsProjectionAndLastLayerDone) {
  const std::string d = " --data " + dir_.file("data") + " --run " + dir_.file("run");
  ASSERT_EQ(run_ppnet("train --stage joint" + d + " --arch small --img-size 28 --prototype-dim 16 --epochs 1 --batch-size 16")
                .exit_code, 0);
  auto as_job = [&](const std::string& job, int restarts, const std::string& command) {
    test::ScopedEnv id("TORCHELASTIC_RUN_ID", job), count("TORCHELASTIC_RESTART_COUNT", std::to_string(restarts));
    const auto r = run_ppnet(command + d);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  const auto stages = [&] { return nlohmann::json::parse(run_ppnet("info --json --run " + dir_.file("run")).out)["stages"].size(); };
  as_job("job-a", 0, "project");
  EXPECT_EQ(stages(), 2u);
  EXPECT_TRUE(contains(as_job("job-a", 1, "project"), "projection #2 already finished: nothing to do"));
  as_job("job-a", 0, "last-layer");
  EXPECT_TRUE(contains(as_job("job-a", 1, "last-layer"), "last-layer stage #3 already finished: nothing to do"));
  EXPECT_EQ(stages(), 3u);
  EXPECT_TRUE(contains(as_job("job-b", 1, "project"), "projection #4,"));  // another job's own projection
  EXPECT_EQ(stages(), 4u);
}

class TrainKilled : public TrainCli, public ::testing::WithParamInterface<int> {};

// With --flip, so that the resumed part of the epoch must flip the same images.
TEST_P(TrainKilled, ResumeEndsWithTheWeightsOfAnUninterruptedRun) {
  const int sig = GetParam();
  auto flipping = [&](const std::string& run) {
    auto a = joint_args(run, false);
    a.insert(a.end(), {"--flip", "0.5"});
    return a;
  };
  ASSERT_EQ(test::wait_exit(test::spawn_ppnet(flipping(dir_.file("whole")), dir_.file("whole.log"))), 0)
      << test::read_file(dir_.file("whole.log"));

  const int pid = test::spawn_ppnet(flipping(dir_.file("cut")), dir_.file("cut.log"));
  test::wait_for_checkpoint(dir_.path() / "cut", "stage1-");
  kill(pid, sig);
  EXPECT_EQ(test::wait_exit(pid), 128 + sig) << test::read_file(dir_.file("cut.log"));

  const auto resume = test::run_ppnet([&] {
    std::string s;
    for (const auto& a : joint_args(dir_.file("cut"), true)) s += a + " ";
    return s;
  }());
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  EXPECT_TRUE(contains(resume.out, "resumed")) << resume.out;

  const auto a = final_state(dir_.file("whole")), b = final_state(dir_.file("cut"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
}

INSTANTIATE_TEST_SUITE_P(Signals, TrainKilled, ::testing::Values(SIGKILL, SIGINT), [](const auto& info) {
  return std::string(info.param == SIGKILL ? "SIGKILL" : "SIGINT");
});

}  // namespace
}  // namespace ppnet
