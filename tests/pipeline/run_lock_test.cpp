#include "pipeline/run/run_lock.h"

#include <errno.h>  // program_invocation_short_name (GNU)
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "pipeline/run/run_folder.h"
#include "tests/common/test_util.h"

namespace ppnet::pipeline {
namespace {

std::string lock_error(const std::filesystem::path& dir) {
  try {
    RunLock second(dir);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(RunLock, ASecondHolderIsRefusedNamingTheFirstsPid) {
  test::TempDir dir;
  {
    RunLock first(dir.path());
    const std::string msg = lock_error(dir.path());
    EXPECT_NE(msg.find(dir.path().string() + " is in use by pid " + std::to_string(getpid()) + " ("), std::string::npos) << msg;
    EXPECT_NE(msg.find(program_invocation_short_name), std::string::npos) << "the holder's command line: " << msg;
  }
  EXPECT_EQ(lock_error(dir.path()), "") << "released with its owner";
}

TEST(RunLock, AKilledHolderLeavesNoStaleLock) {
  test::TempDir dir;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  if (child == 0) {
    RunLock held(dir.path());
    (void)!write(ready[1], "x", 1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_NE(lock_error(dir.path()).find("in use by pid " + std::to_string(child)), std::string::npos);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_EQ(lock_error(dir.path()), "");
  close(ready[0]);
  close(ready[1]);
}

// A torchrun restart (TORCHELASTIC_RESTART_COUNT > 0) continues the stage its job began, as
// --resume would; another job's stage, or a job's first attempt, is left to --resume.
TEST(ElasticJob, ARestartContinuesTheStageItsJobBeganAndNoOther) {
  test::TempDir dir;
  auto run = RunFolder::open_or_create(dir.path());
  run.store().create_run({"2026-01-01T00:00:00Z", "ppnet test", "{}", "/data", "{}"}, {});
  const ElasticJob first{"job-a", 0}, restart{"job-a", 1}, other{"job-b", 1};
  const auto joint = [&](const ElasticJob& job) {
    return resolve_stage(run, db::StageKind::kJoint, false, "{}", "--resume", job);
  };
  const int64_t id = joint(first).stage_id;
  EXPECT_EQ(run.store().stages().back().job, "job-a");
  run.store().set_stage_status(id, db::StageStatus::kInterrupted);
  EXPECT_THROW(joint(other), std::runtime_error);  // another job's stage: --resume is the user's to give
  EXPECT_THROW(joint(first), std::runtime_error);  // a first attempt too
  const auto resumed = joint(restart);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.stage_id, id);

  run.store().set_stage_status(id, db::StageStatus::kDone);
  EXPECT_TRUE(joint(restart).already_done);  // the job finished it before it failed
  const auto next = joint(other);             // another job's command begins a stage of its own
  EXPECT_FALSE(next.resumed || next.already_done);
  EXPECT_NE(next.stage_id, id);
  EXPECT_EQ(run.store().stages().back().job, "job-b");

  run.store().set_stage_status(next.stage_id, db::StageStatus::kFailed);
  try {
    joint(ElasticJob{"job-b", 2});
    ADD_FAILURE() << "a restart began again a stage its job had failed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("failed in this torchrun job (job-b)"), std::string::npos) << e.what();
  }
  EXPECT_GT(joint(ElasticJob{"job-c", 0}).stage_id, next.stage_id);  // a failed stage holds up no other job
  EXPECT_EQ(run.store().stages().size(), 3u);
}

TEST(ElasticJob, ReadFromTorchrunsVariables) {
  EXPECT_EQ(ElasticJob::from_environment().restarts, 0);
  {
    test::ScopedEnv id("TORCHELASTIC_RUN_ID", "j1"), count("TORCHELASTIC_RESTART_COUNT", "2");
    const auto job = ElasticJob::from_environment();
    EXPECT_EQ(job.id, "j1");
    EXPECT_EQ(job.restarts, 2);
  }
  test::ScopedEnv count("TORCHELASTIC_RESTART_COUNT", "two");
  try {
    ElasticJob::from_environment();
    ADD_FAILURE() << "a malformed count was taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("TORCHELASTIC_RESTART_COUNT='two'"), std::string::npos) << e.what();
  }
}

// What a killed writer leaves and no commit refers to goes when the next writer opens the run;
// everything a row records, and files not of ppnet's naming, stay.
TEST(RunFolder, AWriterRemovesWhatNoCommitRecords) {
  test::TempDir dir;
  const auto root = dir.path();
  {
    auto run = RunFolder::open_or_create(root);
    run.store().create_run({"2026-01-01T00:00:00Z", "ppnet test", "{}", "/data", "{}"}, {});
    const int64_t warm = run.store().begin_stage(db::StageKind::kWarm, "{}", "checkpoints/init.pt");
    run.store().add_checkpoint({0, warm, 1, 0, "checkpoints/stage1-e001-b00000.pt", true, "", ""}, {}, std::nullopt);
    run.store().set_stage_status(warm, db::StageStatus::kDone);
  }
  namespace fs = std::filesystem;
  const std::vector<std::string> kept = {"checkpoints/init.pt", "checkpoints/stage1-e001-b00000.pt",
                                         "checkpoints/mine.pt", "prototypes/1/0-patch.png", "prototypes/notes/a.txt",
                                         "report.html"};
  const std::vector<std::string> gone = {"checkpoints/stage1-e000-b00005.pt", "checkpoints/project2.pt",
                                         "checkpoints/.stage1-e002-b00000.pt.tmp-99-1", "prototypes/2/0-patch.png",
                                         "analysis/1/0-0-patch.png"};
  const auto touch = [&](const std::string& f) {
    fs::create_directories((root / f).parent_path());
    test::write_file((root / f).string(), "x");
  };
  for (const auto& f : kept) touch(f);
  for (const auto& f : gone) touch(f);
  { auto reader = RunFolder::open(root, Access::kRead); }
  for (const auto& f : gone) EXPECT_TRUE(fs::exists(root / f)) << "a reader removes nothing: " << f;
  { auto writer = RunFolder::open(root, Access::kWrite); }
  for (const auto& f : kept) EXPECT_TRUE(fs::exists(root / f)) << f;
  for (const auto& f : gone) EXPECT_FALSE(fs::exists(root / f)) << f;
  EXPECT_FALSE(fs::exists(root / "prototypes/2")) << "the folder of a stage never committed";
}

}  // namespace
}  // namespace ppnet::pipeline
