// `ppnet explain` and `ppnet evaluate` as a shell runs them.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"

namespace ppnet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::run_ppnet;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

fs::path first_image(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files.at(0);
}

// Every href and src of every page under `out` names a file that exists.
void expect_links_resolve(const fs::path& out) {
  int pages = 0, links = 0;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    if (e.path().extension() != ".html") continue;
    ++pages;
    const std::string page = test::read_file(e.path().string());
    static const std::regex kLink("(?:href|src)=\"([^\"]+)\"");
    for (auto it = std::sregex_iterator(page.begin(), page.end(), kLink); it != std::sregex_iterator(); ++it) {
      ++links;
      const fs::path target = e.path().parent_path() / url_decode((*it)[1].str());
      EXPECT_TRUE(fs::exists(target)) << e.path() << " links to missing " << target;
    }
  }
  EXPECT_GT(pages, 1);
  EXPECT_GT(links, pages);
}

// A planted-part data set and a run trained, projected and fitted on it through the CLI.
class ExplainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    parts_ = test::make_planted_folder(dir_->path() / "images", 4, 60);
    // The prepared data and the trained run, made once per test run. The reference's rates,
    // which this fixture was tuned with (not the from-scratch recipe).
    try {
      test::shared_fixture("explain-cli", dir_->path(), [](const fs::path& into) {
        const std::string d = " --data " + (into / "data").string() + " --run " + (into / "run").string();
        for (const std::string& step : {"prepare --folder " + dir_->file("images") + " --out " + (into / "data").string() +
                                            " --copies 0 --test-fraction 0.25",
                                        "train --stage warm" + d + " --arch small --img-size 48 --prototypes-per-class 1 "
                                            "--prototype-dim 32 --epochs 4 --batch-size 10",
                                        "train --stage joint" + d + " --epochs 8 --batch-size 10 --lr-backbone 1e-4 --lr-schedule step",
                                        "project" + d, "last-layer" + d}) {
          const auto r = run_ppnet(step);
          if (r.exit_code != 0) {
            throw std::runtime_error("'ppnet " + step + "' exited " + std::to_string(r.exit_code) + ": " + r.err);
          }
        }
      });
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  // A failed set-up fails every test instead of skipping it.
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << "suite set-up failed: " << setup_error_; }
  static test::TempDir* dir_;
  static std::map<std::string, cv::Rect> parts_;
  static std::string setup_error_;
};
test::TempDir* ExplainCli::dir_ = nullptr;
std::map<std::string, cv::Rect> ExplainCli::parts_;
std::string ExplainCli::setup_error_;

TEST_F(ExplainCli, ExplanationsAgreeWithEvaluateAndPointAtTheParts) {
  auto r = run_ppnet("evaluate --run " + dir_->file("run") + " --data " + dir_->file("data") +
                     " --predictions-csv " + dir_->file("pred.csv") + " --confusion-csv " + dir_->file("conf.csv") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ev = json::parse(r.out);
  EXPECT_EQ(ev["images"], 60);
  EXPECT_GE(ev["accuracy"].get<double>(), 0.8);
  EXPECT_EQ(ev["confusion"].size(), 4u);
  EXPECT_TRUE(contains(test::read_file(dir_->file("conf.csv")), "\"class3\""));

  r = run_ppnet("explain --run " + dir_->file("run") + " --dir " + dir_->file("data/test") + " --out " +
                dir_->file("out") + " --top-k 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "explained 60 of 60 images")) << r.out;

  std::map<std::string, int> evaluated;  // "classX/imgY.png" → predicted class
  std::ifstream csv(dir_->file("pred.csv"));
  std::string line;
  std::getline(csv, line);
  while (std::getline(csv, line)) {
    const auto a = line.find("\"test/") + 6, b = line.find('"', a);
    const auto fields = line.substr(b + 2);
    evaluated[line.substr(a, b - a)] = std::stoi(fields.substr(fields.find(',') + 1));
  }
  ASSERT_EQ(evaluated.size(), 60u);
  int on_part = 0, lines = 0;
  std::ifstream jsonl(dir_->file("out/explanations.jsonl"));
  while (std::getline(jsonl, line)) {
    ++lines;
    const auto j = json::parse(line);
    const std::string image = j["image"];
    EXPECT_EQ(j["predicted"]["class_index"].get<int>(), evaluated.at(image)) << image;
    const auto& top = j["prototypes"][0];
    EXPECT_EQ(top["source"]["image"].get<std::string>().rfind("push/", 0), 0u);
    const auto box = top["box"].get<std::vector<int>>();
    const cv::Rect part = parts_.at(image);
    const int cx = part.x + part.width / 2, cy = part.y + part.height / 2;
    on_part += (cx >= box[0] && cx < box[2] && cy >= box[1] && cy < box[3]) ? 1 : 0;
    for (const char* f : {"input.png", "composite.png", "01-heatmap.png", "01-patch.png", "01-prototype.png"}) {
      EXPECT_TRUE(fs::exists(dir_->path() / "out" / image / f)) << image << "/" << f;
    }
  }
  EXPECT_EQ(lines, 60);
  EXPECT_GE(on_part, 42) << "of 60 top-prototype boxes lie on the planted part";  // ≥ 70%
  expect_links_resolve(dir_->path() / "out");

  // The run report: one page with the curves, the evaluation just made and the prototypes.
  r = run_ppnet("report --run " + dir_->file("run"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "test accuracy")) << r.out;
  const std::string page = test::read_file(dir_->file("run/report.html"));
  for (const char* part : {"<svg", "polyline", "warm #1", "joint #2", "<h3>class3</h3>", "data:image/png;base64,",
                           "<b>accuracy "}) {
    EXPECT_TRUE(contains(page, part)) << part;
  }
  EXPECT_FALSE(contains(page, "src=\"prototypes/"));  // self-contained: no links to files
}

// The gradient attributions from the command line: explain draws their boxes and says which it
// drew; evaluate refuses a method it does not know, and precision without masks.
TEST_F(ExplainCli, SmoothGradBoxesFromTheCommandLine) {
  auto r = run_ppnet("explain --run " + dir_->file("run") + " --dir " + dir_->file("data/test") + " --out " +
                     dir_->file("out-smoothgrad") + " --top-k 1 --attribution smoothgrad --samples 4 --noise 0.1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int on_part = 0, lines = 0;
  std::ifstream jsonl(dir_->file("out-smoothgrad/explanations.jsonl"));
  std::string line;
  while (std::getline(jsonl, line)) {
    ++lines;
    const auto j = json::parse(line);
    const auto& top = j["prototypes"][0];
    EXPECT_EQ(top["attribution"], "smoothgrad");
    const auto box = top["box"].get<std::vector<int>>();
    const cv::Rect part = parts_.at(j["image"].get<std::string>());
    const int cx = part.x + part.width / 2, cy = part.y + part.height / 2;
    on_part += (cx >= box[0] && cx < box[2] && cy >= box[1] && cy < box[3]) ? 1 : 0;
  }
  EXPECT_EQ(lines, 60);
  EXPECT_GE(on_part, 48) << "of 60 smoothgrad boxes lie on the planted part";  // ≥ 80 %
  // Another method on the same --out is another command: refused without --force.
  r = run_ppnet("explain --run " + dir_->file("run") + " --dir " + dir_->file("data/test") + " --out " +
                dir_->file("out-smoothgrad") + " --top-k 1 --attribution saliency");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "made by a different command")) << r.err;

  r = run_ppnet("evaluate --run " + dir_->file("run") + " --data " + dir_->file("data") + " --attribution gradcam");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--attribution 'gradcam': expected upsample, saliency or smoothgrad")) << r.err;
  r = run_ppnet("explain --run " + dir_->file("run") + " --dir x --out y --samples 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--samples must be in 1…1024")) << r.err;
  r = run_ppnet("evaluate --run " + dir_->file("run") + " --data " + dir_->file("data") + " --metrics precision");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "has no object masks (masks/)")) << r.err;
  // "all" is every metric the data has annotations for: here, without parts or masks, sparsity.
  r = run_ppnet("evaluate --run " + dir_->file("run") + " --data " + dir_->file("data") + " --metrics all --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto metrics = json::parse(r.out)["metrics"];
  EXPECT_TRUE(metrics.contains("sparsity"));
  EXPECT_FALSE(metrics.contains("precision"));
}

TEST_F(ExplainCli, OddNamesCorruptFilesEmptyFoldersAndResumes) {
  const fs::path imgs = dir_->path() / "odd";
  fs::create_directories(imgs / "a folder");
  fs::copy_file(first_image(dir_->path() / "data/test/class0"), imgs / "a folder" / "bïld nr 1.png");
  fs::copy_file(first_image(dir_->path() / "data/test/class1"), imgs / "plain.png");
  test::write_file((imgs / "broken.jpg").string(), "not a jpeg");
  test::write_file((imgs / "readme.txt").string(), "ignored");
  const std::string base = "explain --run " + dir_->file("run") + " --dir " + q(imgs) + " --out " + dir_->file("odd-out");

  auto r = run_ppnet(base);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, (imgs / "broken.jpg").string())) << r.err;
  EXPECT_TRUE(contains(r.out, "explained 2 of 3 images")) << r.out;
  EXPECT_TRUE(fs::exists(dir_->path() / "odd-out" / "a folder" / "bïld nr 1.png" / "explanation.json"));
  expect_links_resolve(dir_->path() / "odd-out");

  // Resume: finished images are kept, the missing one is redone.
  fs::remove(imgs / "broken.jpg");
  fs::remove(dir_->path() / "odd-out" / "plain.png" / "explanation.json");
  r = run_ppnet(base + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["kept"], 1);
  EXPECT_EQ(j["explained"], 1);

  // Other options on the same folder: refused unless --force.
  r = run_ppnet(base + " --top-k 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "--force")) << r.err;
  r = run_ppnet(base + " --top-k 1 --force");
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // An empty folder is fine, and says so.
  fs::create_directories(dir_->path() / "empty");
  r = run_ppnet("explain --run " + dir_->file("run") + " --dir " + dir_->file("empty") + " --out " + dir_->file("empty-out"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "explained 0 of 0 images")) << r.out;
  EXPECT_TRUE(fs::exists(dir_->path() / "empty-out" / "index.html"));

  // --shard splits the folder into disjoint parts.
  fs::copy_file(first_image(dir_->path() / "data/test/class2"), imgs / "third.png");
  r = run_ppnet("explain --run " + dir_->file("run") + " --dir " + q(imgs) + " --out " + dir_->file("shard1") +
                " --shard 1/2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["images"], 1);  // of plain.png, third.png and the one in "a folder"

  // An --out inside --dir is not explained on the next run: the count stays the same.
  const std::string inside = "explain --run " + dir_->file("run") + " --dir " + q(imgs) + " --out " + q(imgs / "explained") + " --json";
  for (int run = 0; run < 2; ++run) {
    r = run_ppnet(inside + (run ? " --force" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["images"], 3) << "run " << run;
  }
}

TEST(ExplainRefusal, AnUnprojectedRunNamesTheCommandToRun) {
  test::TempDir dir;
  test::make_pattern_folder(dir.path() / "images", 2, 8);
  ASSERT_EQ(run_ppnet("prepare --folder " + dir.file("images") + " --out " + dir.file("data") + " --copies 0").exit_code, 0);
  ASSERT_EQ(run_ppnet("train --stage warm --data " + dir.file("data") + " --run " + dir.file("run") +
                      " --arch small --img-size 28 --epochs 1 --prototype-dim 8").exit_code, 0);
  const auto r = run_ppnet("explain --run " + dir.file("run") + " --dir " + dir.file("images") + " --out " + dir.file("out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "has not been projected")) << r.err;
  EXPECT_TRUE(contains(r.err, "ppnet project")) << r.err;
}

}  // namespace
}  // namespace ppnet
