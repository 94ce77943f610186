// Extraction of data set archives made by Python's tarfile and zipfile (make_archives.py).
#include "pipeline/data/archive.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "test_paths.h"
#include "tests/common/test_util.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const std::string kLong = "CUB/images/" + std::string(120, 'x') + ".bin";

std::string payload() {
  std::string s;
  for (int r = 0; r < 40; ++r) {
    for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  }
  return s;
}

class Archive : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string cmd = std::string(PPNET_ORACLE_PYTHON) + " " + PPNET_SOURCE_DIR +
                            "/tests/pipeline/make_archives.py " + dir_->file("in");
    made_ = std::system(cmd.c_str()) == 0;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(made_) << "make_archives.py failed"; }
  static std::string in(const std::string& name) { return dir_->file("in/" + name); }

  // What extracting `name` refuses with, or "" when it does not throw.
  static std::string refusal(const std::string& name, const fs::path& dest) {
    try {
      extract_archive(in(name), dest.string());
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }

  static TempDir* dir_;
  static bool made_;
};
TempDir* Archive::dir_ = nullptr;
bool Archive::made_ = false;

TEST_F(Archive, EveryFormatGivesTheSameFiles) {
  for (const std::string name : {"good.tar.gz", "good.tar.bz2", "good.tar.xz", "good.tar", "good.zip"}) {
    TempDir out;
    uint64_t last_bytes = 0;
    const uint64_t files = extract_archive(in(name), out.path().string(), [&](uint64_t at) {
      EXPECT_GE(at, last_bytes);
      last_bytes = at;
    });
    const bool tar = name != "good.zip";
    EXPECT_EQ(files, tar ? 4u : 3u) << name;  // the hard link is a file of its own
    EXPECT_EQ(last_bytes, fs::file_size(in(name))) << name;
    EXPECT_EQ(test::read_file(out.file("CUB/images.txt")), "1 a.jpg\n") << name;
    EXPECT_EQ(test::read_file(out.file(kLong)), payload()) << name;  // pax / GNU long name
    EXPECT_TRUE(fs::is_regular_file(out.file("CUB/empty.txt"))) << name;
    EXPECT_EQ(fs::file_size(out.file("CUB/empty.txt")), 0u) << name;
    if (tar) {
      EXPECT_EQ(test::read_file(out.file("CUB/copy.bin")), payload()) << name;
      EXPECT_FALSE(fs::exists(fs::symlink_status(out.file("CUB/inner_link")))) << name << ": links are not made";
    }
  }
}

TEST_F(Archive, MembersAndLinksLeavingTheDestinationAreRefused) {
  struct Case {
    const char* archive;
    const char* message;
  };
  for (const Case& c : {Case{"unsafe_absolute.tar", "unsafe member name '/tmp/ppnet-archive-test-evil'"},
                        Case{"unsafe_dotdot.tar", "unsafe member name '../evil'"},
                        Case{"unsafe_nested_dotdot.tar", "unsafe member name 'CUB/../../evil'"},
                        Case{"unsafe_symlink_up.tar", "symbolic link 'CUB/link' to '../../evil' points outside"},
                        Case{"unsafe_symlink_absolute.tar", "symbolic link 'CUB/link' to '/etc/passwd' points outside"},
                        Case{"unsafe_hardlink_up.tar", "hard link 'CUB/link' to '../evil' points outside"},
                        Case{"unsafe_dotdot.zip", "unsafe member name '../evil'"}}) {
    TempDir box;  // dest is box/dest: nothing may appear beside it
    const fs::path dest = box.path() / "dest";
    fs::create_directories(dest);
    const std::string msg = refusal(c.archive, dest);
    EXPECT_NE(msg.find(in(c.archive) + ": " + c.message), std::string::npos) << c.archive << ": " << msg;
    EXPECT_EQ(test::read_file((dest / "CUB/first.txt").string()), "written before the unsafe member") << c.archive;
    EXPECT_FALSE(fs::exists(box.path() / "evil")) << c.archive;
    size_t beside = 0;
    for (const auto& e : fs::directory_iterator(box.path())) beside += e.path() != dest;
    EXPECT_EQ(beside, 0u) << c.archive;
  }
  EXPECT_FALSE(fs::exists("/tmp/ppnet-archive-test-evil"));
}

TEST_F(Archive, DamagedOrForeignFilesAreRefusedNamingTheFile) {
  TempDir out;
  std::string msg = refusal("truncated.tar.gz", out.path());
  EXPECT_NE(msg.find(in("truncated.tar.gz") + ": damaged, truncated or not an archive"), std::string::npos) << msg;
  test::write_file(dir_->file("in/notes.txt"), "these are notes, not an archive\n");
  msg = refusal("notes.txt", out.path());
  EXPECT_NE(msg.find(in("notes.txt") + ": damaged, truncated or not an archive"), std::string::npos) << msg;
  msg = refusal("missing.tgz", out.path());
  EXPECT_NE(msg.find(in("missing.tgz") + ": "), std::string::npos) << msg;
}

}  // namespace
}  // namespace ppnet::pipeline
