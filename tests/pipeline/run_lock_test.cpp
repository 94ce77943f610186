#include "pipeline/run_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

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
    EXPECT_NE(msg.find("ppnet_unit_tests"), std::string::npos) << "the holder's command line: " << msg;
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

}  // namespace
}  // namespace ppnet::pipeline
