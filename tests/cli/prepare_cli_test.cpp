// `ppnet prepare` as a shell runs it: exit codes, messages, kills and resumes.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"

namespace ppnet {
namespace {

namespace fs = std::filesystem;
using test::run_ppnet;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

size_t count_files(const fs::path& dir) {
  std::error_code ec;
  size_t n = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    n += it->is_regular_file(ec) ? 1 : 0;
  }
  return n;
}

TEST(PrepareCli, PreparesAndReportsThenSaysUpToDate) {
  test::TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 2, 3);
  const std::string args = "prepare --cub " + f.root.string() + " --out " + dir.file("data") + " --copies 1 --threads 2";
  auto r = run_ppnet(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "2 classes, push 4, test 2, train 12")) << r.out;
  EXPECT_TRUE(contains(r.err, "prepare cub: 6/6")) << r.err;  // progress lines on stderr
  r = run_ppnet(args);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "already complete")) << r.out;
}

TEST(PrepareCli, CorruptImageExitsOneWithASummary) {
  test::TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 2, 3);
  const fs::path bad = f.root / "images" / f.image_paths[0];
  test::write_file(bad.string(), "garbage");
  const auto r = run_ppnet("prepare --cub " + f.root.string() + " --out " + dir.file("data") + " --copies 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "failed: " + bad.string())) << r.err;
  EXPECT_TRUE(contains(r.err, "1 source images could not be read")) << r.err;
  EXPECT_TRUE(fs::exists(dir.path() / "data/manifest.json"));
}

TEST(PrepareCli, InputErrorsAndUsageErrors) {
  test::TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 2, 3);
  test::write_file((f.root / "train_test_split.txt").string(), "1 1\n2 maybe\n");
  auto r = run_ppnet("prepare --cub " + f.root.string() + " --out " + dir.file("data"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "train_test_split.txt line 2: 'maybe' is not an integer")) << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "data"));

  r = run_ppnet("prepare --out " + dir.file("data"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "exactly one of --cub, --folder and --idx")) << r.err;
  r = run_ppnet("prepare --cub a --idx b --out " + dir.file("data"));
  EXPECT_EQ(r.exit_code, 2);
  r = run_ppnet("prepare --cub " + f.root.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "missing --out")) << r.err;
  r = run_ppnet("prepare --cub x --out y --val-fraction 1.5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--val-fraction must be in [0, 1)")) << r.err;
  r = run_ppnet("prepare --idx x --out y --masks m");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--masks goes with --cub or --folder")) << r.err;
  r = run_ppnet("prepare --folder x --out y --masks m --foreground-threshold 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "give --masks or --foreground-threshold, not both")) << r.err;
  r = run_ppnet("prepare --idx x --out y --foreground-threshold 255");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--foreground-threshold must be a grey level in 0…254")) << r.err;
  const auto good = test::make_cub_fixture(dir.path() / "good", 2, 3);
  r = run_ppnet("prepare --cub " + good.root.string() + " --out " + dir.file("data") + " --masks " + dir.file("nomasks"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, dir.file("nomasks") + ": the mask folder does not exist")) << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "data"));
}

// Kill or interrupt a real run part-way, run it again, and compare with an uninterrupted run.
class PrepareInterrupted : public ::testing::TestWithParam<int> {};

TEST_P(PrepareInterrupted, ResumesToTheSameBytes) {
  const int sig = GetParam();
  test::TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 3, 8, 160, 120, ".jpg");
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"prepare", "--cub", f.root.string(), "--out", out, "--copies", "10",
                                    "--threads", "1"};
  };
  ASSERT_EQ(test::wait_exit(test::spawn_ppnet(args(dir.file("whole")), dir.file("whole.log"))), 0);

  const int pid = test::spawn_ppnet(args(dir.file("cut")), dir.file("cut.log"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (count_files(dir.path() / "cut" / "train") < 30 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, sig);
  const int code = test::wait_exit(pid);
  EXPECT_EQ(code, 128 + sig) << test::read_file(dir.file("cut.log"));
  EXPECT_FALSE(fs::exists(dir.path() / "cut" / "manifest.json"));
  if (sig == SIGINT) {
    EXPECT_TRUE(contains(test::read_file(dir.file("cut.log")), "run the same command again"));
  }

  ASSERT_EQ(test::wait_exit(test::spawn_ppnet(args(dir.file("cut")), dir.file("resume.log"))), 0)
      << test::read_file(dir.file("resume.log"));
  EXPECT_TRUE(contains(test::read_file(dir.file("resume.log")), "from an earlier run"));
  EXPECT_TRUE(test::snapshot(dir.path() / "whole") == test::snapshot(dir.path() / "cut"));
}

INSTANTIATE_TEST_SUITE_P(Signals, PrepareInterrupted, ::testing::Values(SIGKILL, SIGINT, SIGTERM),
                         [](const auto& info) {
                           return std::string(info.param == SIGKILL ? "SIGKILL" : info.param == SIGINT ? "SIGINT" : "SIGTERM");
                         });

}  // namespace
}  // namespace ppnet
