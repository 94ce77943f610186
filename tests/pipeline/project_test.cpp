#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "db/run_store.h"
#include "pipeline/data/prepare.h"
#include "pipeline/stages/last_layer.h"
#include "pipeline/stages/project.h"
#include "pipeline/stages/image_data.h"
#include "pipeline/render/heatmap.h"
#include "pipeline/stages/checkpoint.h"
#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

// warm → joint on a planted-part data set, shared by the tests below (each copies the run).
class Interpretable : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      dir_ = new TempDir;
      parts_ = test::make_planted_folder(dir_->path() / "images", 4, 80);
      // The prepared data and the trained run: made once per test run.
      test::shared_fixture("interpretable", dir_->path(), [](const fs::path& into) {
        PrepareConfig p;
        p.folder = (dir_->path() / "images").string();
        p.out = (into / "data").string();
        p.copies = 0;
        p.test_fraction = 0.25;
        run_prepare(p);
        test::train_part_model(p.out, into / "trained");
      });
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  // A failed set-up fails every test instead of skipping it.
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << "suite set-up failed: " << setup_error_; }

  // A fresh copy of the trained run, so each test starts from the same state.
  fs::path copy_run(const std::string& name) {
    const fs::path to = dir_->path() / name;
    fs::copy(dir_->path() / "trained", to, fs::copy_options::recursive);
    return to;
  }
  fs::path data() const { return dir_->path() / "data"; }

  static TempDir* dir_;
  static std::map<std::string, cv::Rect> parts_;
  static std::string setup_error_;
};
TempDir* Interpretable::dir_ = nullptr;
std::map<std::string, cv::Rect> Interpretable::parts_;
std::string Interpretable::setup_error_;

TEST_F(Interpretable, ProjectionThenLastLayerFindsThePlantedParts) {
  const fs::path run_dir = copy_run("a");
  ProjectConfig pc;
  pc.data = data().string();
  pc.run = run_dir.string();
  pc.runtime.threads = 2;
  const auto pr = run_project(pc);
  EXPECT_EQ(pr.prototypes, 4);
  EXPECT_EQ(pr.projected, 4);
  EXPECT_LT(pr.max_distance_after, 1e-4);

  // The default solver: the convex problem solved to its optimum, one recorded row.
  LastLayerConfig lc;
  lc.data = data().string();
  lc.run = run_dir.string();
  lc.runtime.threads = 2;
  const auto lr = run_last_layer(lc);
  ASSERT_EQ(lr.epochs.size(), 1u);
  EXPECT_EQ(lr.solver, "prox");
  EXPECT_TRUE(lr.converged) << lr.residual;
  EXPECT_LE(lr.residual, lc.tolerance);
  EXPECT_LT(lr.objective, lr.initial_objective);
  EXPECT_GE(lr.epochs.back().eval_accuracy, 0.8);  // chance: 1/4

  RunFolder run = RunFolder::open(run_dir);
  const auto rows = run.store().prototypes(pr.projection);
  ASSERT_EQ(rows.size(), 4u);
  int inside = 0, in_rf = 0;
  for (const auto& r : rows) {
    // Each prototype comes from an image of its own class, and its pictures exist.
    EXPECT_EQ(r.class_index, r.prototype);
    EXPECT_NE(r.image_path.find("class" + std::to_string(r.class_index) + "/"), std::string::npos) << r.image_path;
    for (const char* kind : {"-patch.png", "-box.png", "-heatmap.png"}) {
      EXPECT_TRUE(fs::exists(run_dir / "prototypes" / std::to_string(pr.projection) / (std::to_string(r.prototype) + kind)));
    }
    const std::string key = fs::path(r.image_path).lexically_relative("push").generic_string();
    const cv::Rect part = parts_.at(key);
    const cv::Point centre(part.x + part.width / 2, part.y + part.height / 2);
    auto contains = [&](const int64_t b[4]) { return centre.x >= b[0] && centre.x < b[2] && centre.y >= b[1] && centre.y < b[3]; };
    inside += contains(r.box) ? 1 : 0;
    in_rf += contains(r.rf) ? 1 : 0;
    EXPECT_LT((r.box[2] - r.box[0]) * (r.box[3] - r.box[1]), 48 * 48) << "a box that is the whole image says nothing";
  }
  EXPECT_GE(inside, 3) << "of 4 high-activation boxes contain the planted part";  // ≥ 70%
  EXPECT_GE(in_rf, 3) << "of 4 projected patches (receptive fields) contain the planted part";

  // Re-encoding each recorded source image puts the prototype exactly at the recorded cell.
  // (The last layer does not touch the prototypes, so the latest model still has them.)
  auto net = load_latest_model(run, torch::kCPU);
  net->eval();
  torch::NoGradGuard no_grad;
  for (const auto& r : rows) {
    const auto x = load_image_tensor(data() / r.image_path, ModelInput{48}).unsqueeze(0);
    const auto d = net->activations(x).distances;
    EXPECT_LT(d[0][r.prototype][r.cell_h][r.cell_w].item<double>(), 1e-4) << r.prototype;
    EXPECT_NEAR(d[0][r.prototype][r.cell_h][r.cell_w].item<double>(), r.distance_after, 1e-5);
  }
}

TEST_F(Interpretable, CachedLastLayerEqualsRecomputingAndChangesOnlyTheLastLayer) {
  std::map<bool, torch::Tensor> weights;
  torch::Tensor initial;
  for (const bool recompute : {false, true}) {
    const fs::path run_dir = copy_run(recompute ? "recompute" : "cached");
    ProjectConfig pc;
    pc.data = data().string();
    pc.run = run_dir.string();
    pc.save_images = false;
    const auto pr = run_project(pc);
    EXPECT_FALSE(fs::exists(run_dir / "prototypes" / std::to_string(pr.projection) / "0-patch.png"));
    RunFolder before_run = RunFolder::open(run_dir);
    auto before = load_latest_model(before_run, torch::kCPU);
    initial = before->last_layer()->weight.detach().clone();
    LastLayerConfig lc;
    lc.data = data().string();
    lc.run = run_dir.string();
    lc.solver = Solver::kAdam;
    lc.epochs = 4;
    lc.lr = 1e-2;  // large enough that the weights move visibly
    lc.recompute = recompute;
    run_last_layer(lc);
    RunFolder run = RunFolder::open(run_dir);
    auto after = load_latest_model(run, torch::kCPU);
    weights[recompute] = after->last_layer()->weight.detach().clone();
    auto ap = after->named_parameters();
    for (const auto& p : before->named_parameters()) {
      EXPECT_EQ(torch::equal(p.value(), ap[p.key()]), p.key() != "last_layer.weight") << p.key();
    }
    auto ab = after->named_buffers();
    for (const auto& b : before->named_buffers()) EXPECT_TRUE(torch::equal(b.value(), ab[b.key()])) << b.key();
  }
  // The last layer moved away from its initial connections (1 own class, −0.5 the others).
  EXPECT_GT((weights[false] - initial).abs().max().item<double>(), 1e-3);
  EXPECT_TRUE(torch::allclose(weights[false], weights[true], 1e-4, 1e-5))
      << (weights[false] - weights[true]).abs().max().item<double>();
}

TEST(Render, HighActivationBoxFollowsThePercentile) {
  cv::Mat sim = cv::Mat::zeros(4, 4, CV_32F);
  sim.at<float>(1, 2) = 10.0f;  // one hot cell
  const auto box = high_activation_box(sim, 40, 40);
  // The hot cell's bicubic bump lies around columns 20–30, rows 10–20 of the 40×40 image.
  EXPECT_GE(box[0], 15);
  EXPECT_LE(box[2], 35);
  EXPECT_GE(box[1], 5);
  EXPECT_LE(box[3], 25);
  EXPECT_LT(box[0], box[2]);
  const auto scaled = scale_box({10, 10, 20, 20}, 40, 40, 80, 20);
  EXPECT_EQ(scaled, (std::array<int, 4>{20, 5, 40, 10}));

  // Against an independent computation on random maps: the reference's bicubic upsampling, a
  // full sort and numpy's linear-interpolation percentile, the box of the pixels at or above it.
  cv::RNG rng(11);
  for (int trial = 0; trial < 20; ++trial) {
    cv::Mat map(7, 7, CV_32F);
    rng.fill(map, cv::RNG::UNIFORM, 0.0, 10.0);
    const int w = 30 + trial * 7, h = 50 - trial;
    const double pct = trial % 2 ? 95.0 : 80.0;
    cv::Mat up;
    cv::resize(map, up, cv::Size(w, h), 0, 0, cv::INTER_CUBIC);
    std::vector<float> sorted(up.begin<float>(), up.end<float>());
    std::sort(sorted.begin(), sorted.end());
    const double rank = pct / 100.0 * static_cast<double>(sorted.size() - 1);
    const double frac = rank - std::floor(rank);
    const double threshold = sorted[static_cast<size_t>(std::floor(rank))] * (1 - frac) +
                             sorted[static_cast<size_t>(std::ceil(rank))] * frac;
    std::vector<cv::Point> high;
    cv::findNonZero(up >= static_cast<float>(threshold), high);
    const cv::Rect r = cv::boundingRect(high);
    EXPECT_EQ(high_activation_box(map, w, h, pct), (std::array<int, 4>{r.x, r.y, r.x + r.width, r.y + r.height}))
        << "trial " << trial;
  }
}

// On the same run and cache, the proximal solver ends lower than the reference's 20 Adam
// epochs, and its zeros are exact.
TEST_F(Interpretable, ProxEndsBelowTwentyAdamEpochs) {
  double objective[2];
  for (const bool prox : {false, true}) {
    const fs::path run_dir = copy_run(prox ? "prox" : "adam");
    ProjectConfig pc;
    pc.data = data().string();
    pc.run = run_dir.string();
    pc.save_images = false;
    run_project(pc);
    LastLayerConfig lc;
    lc.data = data().string();
    lc.run = run_dir.string();
    lc.solver = prox ? Solver::kProx : Solver::kAdam;
    lc.l1 = 1e-2;  // strong enough for zeros on this tiny problem
    const auto r = run_last_layer(lc);
    EXPECT_EQ(r.epochs.size(), prox ? 1u : 20u);
    objective[prox] = r.objective;
    RunFolder run = RunFolder::open(run_dir);
    const auto w = load_latest_model(run, torch::kCPU)->last_layer()->weight.detach();
    const auto identity = load_latest_model(run, torch::kCPU)->prototype_class_identity();
    const int64_t zeros = (w.eq(0) & (identity.t() == 0)).sum().item<int64_t>();
    EXPECT_NEAR(r.off_class_zero, static_cast<double>(zeros) / 12.0, 1e-9);
    if (prox) {
      EXPECT_GT(zeros, 0);
    }
  }
  EXPECT_LT(objective[1], objective[0]);
}

}  // namespace
}  // namespace ppnet::pipeline
