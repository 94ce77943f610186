// What ppnet reads back from its own folders is input too: a small finished run and its data,
// changed the ways users, copies and accidents change them, then every command run on each.
// Each command must exit 0, or 1/2 with a message that names what is wrong; never crash, print
// a raw library message, leave a stage running, touch a file outside the run, or remove a file
// the run's database still names.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/sha256.h"
#include "test_paths.h"
#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"

namespace ppnet {
namespace {

namespace fs = std::filesystem;

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// Runs `sql` on `db`; returns "" or SQLite's error.
std::string exec_sql(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return "cannot open " + db.string();
  }
  char* error = nullptr;
  std::string out;
  if (sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) out = error ? error : "error";
  sqlite3_free(error);
  sqlite3_close(h);
  return out;
}

// One text column of every row `sql` selects; empty when the database cannot be read.
std::vector<std::string> query_column(const fs::path& db, const std::string& sql) {
  std::vector<std::string> out;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) == SQLITE_OK) {
      while (sqlite3_step(s) == SQLITE_ROW) {
        const auto* t = sqlite3_column_text(s, 0);
        out.push_back(t ? reinterpret_cast<const char*>(t) : "NULL");
      }
    }
    sqlite3_finalize(s);
  }
  sqlite3_close(h);
  return out;
}

// Every file under `root` (links not followed) with a digest of its bytes: what must not change.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto rel = fs::relative(it->path(), root).string();
    if (it->is_symlink(ec)) {
      out[rel] = "link " + fs::read_symlink(it->path(), ec).string();
    } else if (it->is_regular_file(ec)) {
      out[rel] = sha256_hex(test::read_file(it->path().string()));
    } else {
      out[rel] = "other";
    }
  }
  return out;
}

void flip_byte(const fs::path& file, size_t at) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(at));
  f.put(static_cast<char>(c ^ 0x5a));
}

void replace_line(const fs::path& file, int line_number, const std::function<std::string(const std::string&)>& edit) {
  std::ifstream in(file);
  std::string out, line;
  for (int n = 1; std::getline(in, line); ++n) out += (n == line_number ? edit(line) : line) + "\n";
  in.close();
  test::write_file(file.string(), out);
}

// What a mutation is, and what some commands must then say (every command is held to the
// general rules whatever it is expected to do).
struct Expect {
  std::string command;  // a key of HostileRun::commands()
  int exit_code;
  std::string error_part;  // a part of its stderr ("" for exit 0)
};
struct Mutation {
  std::string name;
  std::function<void(const fs::path& run, const fs::path& data, const fs::path& outside)> apply;
  std::vector<Expect> expect;
};

std::string sql(const fs::path& run, const std::string& statement) { return exec_sql(run / "run.sqlite", statement); }

// The final checkpoint of the last stage (the last layer's) and the projection's.
const char* const kLastCheckpoint = "checkpoints/stage4-e001-b00000.pt";
const char* const kDamaged = "is damaged: its SHA-256";

std::vector<Mutation> mutations() {
  using P = const fs::path&;
  auto must_sql = [](P run, const std::string& s) {
    const std::string e = sql(run, s);
    if (!e.empty()) throw std::runtime_error(s + ": " + e);
  };
  return {
      // The data folder's lists and manifest.
      {"test_list_class_out_of_range",
       [](P, P data, P) { replace_line(data / "lists/test.tsv", 2, [](const std::string& l) { return l.substr(0, l.find('\t')) + "\t3\t" + l.substr(l.rfind('\t') + 1); }); },
       {{"evaluate", 1, "test.tsv line 2: class index 3 is not one of the 3 classes"}}},
      {"train_list_class_out_of_range",
       [](P, P data, P) { replace_line(data / "lists/train.tsv", 2, [](const std::string& l) { return l.substr(0, l.find('\t')) + "\t3\t" + l.substr(l.rfind('\t') + 1); }); },
       {{"joint", 1, "train.tsv line 2: class index 3"}, {"last-layer", 1, "train.tsv line 2"}}},
      {"list_path_outside_data",
       [](P, P data, P) { replace_line(data / "lists/test.tsv", 2, [](const std::string& l) { return "../outside/victim.png" + l.substr(l.find('\t')); }); },
       {{"evaluate", 1, "'../outside/victim.png' is not a path inside"}}},
      {"list_path_absolute",
       [](P, P data, P outside) { replace_line(data / "lists/push.tsv", 2, [&](const std::string& l) { return (outside / "victim.png").string() + l.substr(l.find('\t')); }); },
       {{"project", 1, "is not a path inside"}, {"prune", 1, "is not a path inside"}}},
      {"list_line_removed", [](P, P data, P) { replace_line(data / "lists/test.tsv", 2, [](const std::string&) { return "# removed"; }); },
       {{"evaluate", 1, "test.tsv lists 2 images of class"}}},
      {"list_line_duplicated", [](P, P data, P) { replace_line(data / "lists/train.tsv", 2, [](const std::string& l) { return l + "\n" + l; }); },
       {{"joint", 1, "train.tsv lists"}}},
      {"list_malformed", [](P, P data, P) { replace_line(data / "lists/push.tsv", 3, [](const std::string&) { return "no tabs here"; }); },
       {{"project", 1, "push.tsv line 3: expected"}}},
      {"list_missing", [](P, P data, P) { fs::remove(data / "lists/test.tsv"); }, {{"evaluate", 1, "test.tsv: missing"}}},
      {"manifest_class_index_changed",
       [](P, P data, P) { auto m = test::read_file((data / "manifest.json").string());
                          m.replace(m.find("\"index\": 1"), 10, "\"index\": 7");
                          test::write_file((data / "manifest.json").string(), m); },
       {{"evaluate", 1, "classes[1] has index 7, expected 1"}}},
      {"manifest_garbage", [](P, P data, P) { test::write_file((data / "manifest.json").string(), "{\"ppnet_data_version\": 1,"); },
       {{"evaluate", 1, "manifest.json"}, {"joint", 1, "manifest.json"}}},
      {"test_image_truncated",
       [](P, P data, P) {
         const auto list = test::read_file((data / "lists/test.tsv").string());
         const auto line = list.substr(list.find('\n') + 1);
         fs::resize_file(data / line.substr(0, line.find('\t')), 20);
       },
       {{"evaluate", 1, ".png"}}},
      {"test_image_replaced_by_folder",
       [](P, P data, P) {
         const auto list = test::read_file((data / "lists/test.tsv").string());
         const auto line = list.substr(list.find('\n') + 1);
         const fs::path image = data / line.substr(0, line.find('\t'));
         fs::remove(image);
         fs::create_directories(image);
       },
       {{"evaluate", 1, ".png"}}},
      // Checkpoints damaged on disk.
      {"checkpoint_truncated", [](P run, P, P) { fs::resize_file(run / kLastCheckpoint, 5000); },
       {{"evaluate", 1, kDamaged}, {"joint", 1, kDamaged}, {"explain", 1, kDamaged}}},
      {"checkpoint_bit_flipped", [](P run, P, P) { flip_byte(run / kLastCheckpoint, fs::file_size(run / kLastCheckpoint) / 2); },
       {{"evaluate", 1, kDamaged}, {"analyze", 1, kDamaged}}},
      {"checkpoint_replaced_by_folder",
       [](P run, P, P) { fs::remove(run / kLastCheckpoint); fs::create_directories(run / kLastCheckpoint); },
       {{"evaluate", 1, "not a regular file"}, {"prune", 1, "not a regular file"}}},
      {"checkpoint_replaced_by_link_outside",
       [](P run, P, P outside) { fs::remove(run / kLastCheckpoint); fs::create_symlink(outside / "victim.pt", run / kLastCheckpoint); },
       {{"evaluate", 1, kDamaged}}},
      {"checkpoint_replaced_by_fifo",
       [](P run, P, P) { fs::remove(run / kLastCheckpoint); mkfifo((run / kLastCheckpoint).c_str(), 0644); },
       {{"evaluate", 1, "not a regular file"}, {"joint", 1, "not a regular file"}}},
      {"checkpoint_missing", [](P run, P, P) { fs::remove(run / kLastCheckpoint); }, {{"evaluate", 1, "missing"}}},
      {"init_checkpoint_truncated", [](P run, P, P) { fs::resize_file(run / "checkpoints/init.pt", 100); }, {{"evaluate", 0, ""}}},
      // run.sqlite edited.
      {"checkpoint_path_outside", [=](P run, P, P) { must_sql(run, "UPDATE checkpoints SET path = '../outside/victim.pt' WHERE stage_id = 4"); },
       {{"evaluate", 1, "'../outside/victim.pt' as one of the run's files, which is not a path inside"}, {"joint", 1, "not a path inside"}}},
      {"checkpoint_path_absolute",
       [=](P run, P, P outside) { must_sql(run, "UPDATE checkpoints SET path = '" + (outside / "victim.pt").string() + "' WHERE stage_id = 4"); },
       {{"evaluate", 1, "not a path inside"}, {"last-layer", 1, "not a path inside"}}},
      {"start_checkpoint_outside", [=](P run, P, P) { must_sql(run, "UPDATE stages SET start_checkpoint = '../outside/victim.pt'; UPDATE stages SET status = 'interrupted' WHERE id = 4; DELETE FROM checkpoints WHERE stage_id = 4"); },
       {{"resume", 1, "not a path inside"}, {"last-layer", 1, "did not finish"}}},
      {"checksum_changed", [=](P run, P, P) { must_sql(run, "UPDATE files SET sha256 = '" + std::string(64, '0') + "'"); },
       {{"evaluate", 1, kDamaged}, {"report", 0, ""}}},
      {"checkpoint_rows_deleted", [=](P run, P, P) { must_sql(run, "DELETE FROM checkpoints"); }, {{"info", 0, ""}}},
      {"stage_status_unknown", [=](P run, P, P) { must_sql(run, "PRAGMA ignore_check_constraints = ON; UPDATE stages SET status = 'bogus' WHERE id = 4"); },
       {{"info", 1, "unknown stage status 'bogus'"}, {"evaluate", 1, "unknown stage status 'bogus'"}}},
      {"stage_left_running", [=](P run, P, P) { must_sql(run, "UPDATE stages SET status = 'running' WHERE id = 4"); },
       {{"joint", 1, "did not finish"}, {"info", 0, ""}}},
      {"stage_settings_garbage", [=](P run, P, P) { must_sql(run, "UPDATE stages SET config_json = '{' ; UPDATE stages SET status = 'interrupted' WHERE id = 4"); },
       {{"resume", 1, "stage #4's settings in run.sqlite"}}},
      {"stage_settings_wrong_types", [=](P run, P, P) { must_sql(run, "UPDATE stages SET config_json = '{\"epochs\": \"many\"}'"); }, {}},
      {"stages_deleted", [=](P run, P, P) { must_sql(run, "DELETE FROM prototypes; DELETE FROM pruned; DELETE FROM epochs; DELETE FROM checkpoints; DELETE FROM stages"); },
       {{"info", 0, ""}}},
      {"model_settings_garbage", [=](P run, P, P) { must_sql(run, "UPDATE run SET model_json = '{\"arch\": 7}'"); },
       {{"evaluate", 1, "run.sqlite: model configuration: type must be string"}}},
      {"model_settings_huge", [=](P run, P, P) { must_sql(run, "UPDATE run SET model_json = replace(model_json, '\"prototypes_per_class\":2', '\"prototypes_per_class\":2000000000')"); },
       {{"evaluate", 1, "prototypes_per_class 2000000000 is outside"}}},
      {"recorded_manifest_garbage", [=](P run, P, P) { must_sql(run, "UPDATE run SET data_manifest = '[]'"); }, {{"evaluate", 1, "run.sqlite: the data manifest recorded with the run"}, {"report", 1, "the data manifest recorded"}}},
      {"run_row_deleted", [=](P run, P, P) { must_sql(run, "DELETE FROM run"); }, {{"evaluate", 1, "holds no run"}, {"info", 1, "holds no run"}, {"joint", 1, "records stages but no run"}}},
      {"prototype_image_outside", [=](P run, P, P) { must_sql(run, "UPDATE prototypes SET image_path = '../outside/victim.png'"); }, {}},
      {"prototype_boxes_nonsense", [=](P run, P, P) { must_sql(run, "UPDATE prototypes SET box_x0 = -40, box_y0 = 90, rf_x1 = -3, cell_h = 99, cell_w = -1"); }, {}},
      {"prototype_numbers_out_of_range", [=](P run, P, P) { must_sql(run, "UPDATE prototypes SET prototype = prototype + 1000, class_index = 77"); }, {}},
      {"analysis_pictures_outside", [=](P run, P, P) { must_sql(run, "UPDATE analyses SET pictures = '../outside'"); }, {{"report", 0, ""}}},
      {"schema_from_the_future", [=](P run, P, P) { must_sql(run, "PRAGMA user_version = 99"); }, {{"info", 1, "newer ppnet"}, {"joint", 1, "newer ppnet"}}},
      // run.sqlite itself damaged.
      {"database_truncated", [](P run, P, P) { fs::resize_file(run / "run.sqlite", 3000); }, {{"info", 1, "run.sqlite"}, {"evaluate", 1, "run.sqlite"}}},
      {"database_garbage", [](P run, P, P) { test::write_file((run / "run.sqlite").string(), std::string(8192, 'x')); },
       {{"info", 1, "run.sqlite"}, {"joint", 1, "run.sqlite"}}},
      // Pictures.
      {"prototype_picture_removed", [](P run, P, P) { fs::remove(run / "prototypes/3/0-patch.png"); }, {{"report", 0, ""}, {"explain", 0, ""}}},
      {"prototype_pictures_folder_is_a_file", [](P run, P, P) { fs::remove_all(run / "prototypes/3"); test::write_file((run / "prototypes/3").string(), "x"); },
       {{"report", 0, ""}, {"explain", 0, ""}}},
  };
}

class HostileRun : public ::testing::TestWithParam<size_t> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    try {
      test::shared_fixture("hostile-run", dir_->path(), [](const fs::path& into) {
        test::make_pattern_folder(into / "images", 3, 12, 28);
        const std::string d = " --data " + q(into / "data") + " --run " + q(into / "run") + " --threads 2";
        for (const std::string& step :
             {"prepare --folder " + q(into / "images") + " --out " + q(into / "data") + " --copies 0 --test-fraction 0.25",
              "train --stage warm" + d + " --arch small --img-size 28 --prototypes-per-class 2 --prototype-dim 16 --epochs 1 --batch-size 8",
              "train --stage joint" + d + " --epochs 1 --batch-size 8", "project" + d,
              "last-layer" + d + " --max-iterations 50", "evaluate" + d, "analyze" + d + " --k 2"}) {
          const auto r = test::run_ppnet(step);
          if (r.exit_code != 0) throw std::runtime_error("'ppnet " + step + "' exited " + std::to_string(r.exit_code) + ": " + r.err);
        }
      });
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << "suite set-up failed: " << setup_error_; }

  // The finished run and its data, into `w`/run and `w`/data.
  static void copy_fixture(const fs::path& w) {
    fs::copy(dir_->path() / "run", w / "run", fs::copy_options::recursive);
    fs::copy(dir_->path() / "data", w / "data", fs::copy_options::recursive);
  }

  // Every command, on the run and data of one test.
  std::vector<std::pair<std::string, std::string>> commands(const fs::path& w) const {
    const std::string r = " --run " + q(w / "run"), d = " --data " + q(w / "data"), t = " --threads 2";
    return {{"info", "info" + r},
            {"info-prototypes", "info --prototypes --json" + r},
            {"report", "report" + r + " --out " + q(w / "report.html")},
            {"evaluate", "evaluate" + r + d + t},
            {"explain", "explain" + r + " --dir " + q(dir_->path() / "data/test") + " --out " + q(w / "explained") + t},
            {"analyze", "analyze" + r + d + t + " --k 2"},
            {"prune", "prune" + r + d + t + " --dry-run"},
            {"forbid", "forbid" + r + d + " --prototype 0"},
            {"joint", "train --stage joint" + r + d + t + " --epochs 1 --batch-size 8"},
            {"project", "project" + r + d + t},
            {"last-layer", "last-layer" + r + d + t + " --max-iterations 20"},
            {"resume", "last-layer --resume" + r + d + t + " --max-iterations 20"}};
  }

  static test::TempDir* dir_;
  static std::string setup_error_;
};
test::TempDir* HostileRun::dir_ = nullptr;
std::string HostileRun::setup_error_;

// The files under the run that its database names (checkpoints, checksums).
std::set<std::string> named_files(const fs::path& run) {
  std::set<std::string> out;
  for (const char* sql : {"SELECT path FROM checkpoints", "SELECT path FROM files"}) {
    for (const auto& p : query_column(run / "run.sqlite", sql)) out.insert(p);
  }
  return out;
}

TEST_P(HostileRun, EveryCommandFailsCleanlyOrWorks) {
  const Mutation m = mutations()[GetParam()];
  test::TempDir scratch;
  const fs::path w = scratch.path();
  copy_fixture(w);
  fs::create_directories(w / "outside");
  fs::copy_file(w / "run/checkpoints/init.pt", w / "outside/victim.pt");
  const std::string list = test::read_file((w / "data/lists/test.tsv").string());
  const std::string first = list.substr(list.find('\n') + 1);
  fs::copy_file(w / "data" / first.substr(0, first.find('\t')), w / "outside/victim.png");
  m.apply(w / "run", w / "data", w / "outside");
  const auto outside_before = snapshot(w / "outside");
  const auto expected = [&](const std::string& command) -> const Expect* {
    for (const auto& e : m.expect) {
      if (e.command == command) return &e;
    }
    return nullptr;
  };
  for (const auto& [name, args] : commands(w)) {
    SCOPED_TRACE(m.name + ": ppnet " + name);
    std::set<std::string> present_before;  // named by the database and there
    for (const auto& p : named_files(w / "run")) {
      std::error_code ec;
      if (fs::symlink_status(w / "run" / p, ec).type() != fs::file_type::not_found) present_before.insert(p);
    }
    const auto r = test::run_ppnet(args);
    std::printf("hostile %-40s %-16s exit %d  %s\n", m.name.c_str(), name.c_str(), r.exit_code,
                r.err.substr(0, r.err.find('\n', r.err.find("error"))).substr(0, 160).c_str());
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1 || r.exit_code == 2) << "exit " << r.exit_code << "\n" << r.err;
    for (const char* raw : {"terminate called", "Exception raised from", "what():", "Assertion", "Segmentation",
                            "sqlite3_", "basic_string", "std::", "nlohmann", "json.exception", "cv::", "_M_", "vector::"}) {
      EXPECT_EQ(r.err.find(raw), std::string::npos) << "raw message '" << raw << "':\n" << r.err;
    }
    if (r.exit_code != 0) {
      EXPECT_NE(r.err.find("ppnet"), std::string::npos) << r.err;
    }
    if (const Expect* e = expected(name)) {
      EXPECT_EQ(r.exit_code, e->exit_code) << r.err;
      EXPECT_NE(r.err.find(e->error_part), std::string::npos) << "expected '" << e->error_part << "' in:\n" << r.err;
    }
    // No stage left running that was not running before, nothing outside touched, nothing the
    // database names removed.
    for (const auto& status : query_column(w / "run/run.sqlite", "SELECT status FROM stages WHERE id > 4")) {
      EXPECT_TRUE(status == "done" || status == "failed") << "a stage was left " << status;
    }
    EXPECT_EQ(snapshot(w / "outside"), outside_before);
    const auto named_after = named_files(w / "run");
    for (const auto& p : present_before) {
      std::error_code ec;
      const bool gone = fs::symlink_status(w / "run" / p, ec).type() == fs::file_type::not_found;
      EXPECT_FALSE(gone && named_after.count(p)) << p << " was removed while run.sqlite still names it";
    }
  }
}

// The checkpoint an interrupted stage would resume from is damaged: resuming fails and marks
// the stage failed, and the next command goes on from the last finished stage (before, every
// command was refused for good: the stage stayed unfinished and could not be resumed).
class DamagedRun : public HostileRun {};

TEST_F(DamagedRun, ADamagedCheckpointOfAnUnfinishedStageDoesNotBrickTheRun) {
  test::TempDir scratch;
  const fs::path w = scratch.path();
  copy_fixture(w);
  ASSERT_EQ(sql(w / "run", "UPDATE stages SET status = 'interrupted' WHERE id = 4; UPDATE checkpoints SET final = 0 WHERE stage_id = 4"), "");
  fs::resize_file(w / "run" / kLastCheckpoint, 1000);
  const std::string dr = " --data " + q(w / "data") + " --run " + q(w / "run") + " --threads 2";
  auto r = test::run_ppnet("train --stage joint --epochs 1 --batch-size 8" + dr);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("did not finish"), std::string::npos) << r.err;
  r = test::run_ppnet("last-layer --resume" + dr);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(kDamaged), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("stage #4 is marked failed"), std::string::npos) << r.err;
  EXPECT_EQ(query_column(w / "run/run.sqlite", "SELECT status FROM stages WHERE id = 4"), std::vector<std::string>{"failed"});
  r = test::run_ppnet("train --stage joint --epochs 1 --batch-size 8" + dr);  // from the projection
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(query_column(w / "run/run.sqlite", "SELECT start_checkpoint FROM stages WHERE id = 5"),
            std::vector<std::string>{"checkpoints/project3.pt"});
  r = test::run_ppnet("evaluate" + dr);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Folder walks (prepare --folder, explain --dir) meet links that lead nowhere or in circles,
// names that are not UTF-8 and folders they may not list: each is listed with the reason and the
// rest is done (before, a loop of links aborted both with std::filesystem's raw message, a
// dangling link was skipped without a word, and a name that is not UTF-8 failed explain).
class FolderWalks : public HostileRun {};

TEST_F(FolderWalks, LinksLoopsOddNamesAndUnreadableFoldersAreListedNotFatal) {
  test::TempDir scratch;
  const fs::path w = scratch.path(), images = w / "images";
  test::make_pattern_folder(images, 3, 8, 28);
  fs::create_symlink("loop_b.png", images / "class0/loop_a.png");
  fs::create_symlink("loop_a.png", images / "class0/loop_b.png");
  fs::create_symlink("missing.png", images / "class1/dangling.png");
  const std::string odd = std::string("caf") + static_cast<char>(0xe9) + ".png";  // Latin-1, not UTF-8
  fs::copy_file(images / "class2" / fs::directory_iterator(images / "class2")->path().filename(), images / "class2" / odd);
  fs::create_symlink("..", images / "class2/up");  // a loop of folders for a recursive walk

  auto r = test::run_ppnet("prepare --folder " + q(images) + " --out " + q(w / "data") + " --copies 0 --test-fraction 0.25");
  EXPECT_EQ(r.exit_code, 1) << r.err;  // some source files could not be read; the rest is prepared
  EXPECT_NE(r.err.find("loop_a.png: a loop of symbolic links"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("dangling.png: a symbolic link to missing.png"), std::string::npos) << r.err;
  const std::string manifest = test::read_file((w / "data/manifest.json").string());
  EXPECT_NE(manifest.find("dangling.png"), std::string::npos);
  std::string lists;
  for (const char* split : {"push", "test"}) lists += test::read_file((w / "data/lists" / (std::string(split) + ".tsv")).string());
  EXPECT_NE(lists.find("caf\\xe9"), std::string::npos) << "the odd name is prepared, shown escaped";
  EXPECT_EQ(std::count(lists.begin(), lists.end(), '\n'), 2 + 25);  // two headers, 8 + 8 + 9 images
  EXPECT_EQ(test::run_ppnet("evaluate --run " + q(dir_->path() / "run") + " --data " + q(w / "data")).exit_code, 1)
      << "another data set than the run's: refused, but its manifest reads";

  // explain, as user nobody when the tests run as root (so that a folder can be unreadable).
  fs::create_directories(images / "locked");
  fs::copy_file(images / "class2" / odd, images / "locked/hidden.png");
  fs::copy(dir_->path() / "run", w / "run", fs::copy_options::recursive);
  ASSERT_EQ(std::system(("chmod -R a+rwX " + q(w) + " && chmod 000 " + q(images / "locked")).c_str()), 0);
  const std::string as = geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  const std::string cmd = as + PPNET_BINARY + " explain --run " + q(w / "run") + " --dir " + q(images) + " --out " +
                          q(w / "explained") + " --threads 2 --json >" + q(w / "out.json") + " 2>" + q(w / "err");
  const int status = std::system(cmd.c_str());
  const std::string err = test::read_file((w / "err").string());
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 1) << err;
  EXPECT_NE(err.find("loop_b.png: a loop of symbolic links"), std::string::npos) << err;
  EXPECT_NE(err.find("locked: cannot be listed: Permission denied"), std::string::npos) << err;
  EXPECT_EQ(err.find("invalid UTF-8"), std::string::npos) << err;
  const auto result = nlohmann::json::parse(test::read_file((w / "out.json").string()));
  EXPECT_EQ(result["explained"], 25) << "each image once, though class2/up leads back";
  EXPECT_TRUE(fs::exists(w / "explained/class2" / odd / "index.html")) << "the folder keeps the name's bytes";
  std::set<std::string> shown;  // the names as explanations.jsonl shows them
  std::istringstream jsonl(test::read_file((w / "explained/explanations.jsonl").string()));
  for (std::string line; std::getline(jsonl, line);) shown.insert(nlohmann::json::parse(line)["image"].get<std::string>());
  EXPECT_EQ(shown.count("class2/caf\\xe9.png"), 1u) << "the odd name, shown escaped";
  ASSERT_EQ(std::system(("chmod -R u+rwX " + q(w)).c_str()), 0);
}

// A run folder that cannot be written (made read-only, on a read-only medium) is still read by
// the commands that only read it; a writer says why it cannot go on. As root (whom permissions
// do not stop) the commands run as user nobody.
class ReadOnlyRun : public HostileRun {};

TEST_F(ReadOnlyRun, InfoReportAndExplainReadItAndWritersSayWhyTheyCannot) {
  test::TempDir scratch;
  const fs::path w = scratch.path();
  copy_fixture(w);
  fs::create_directories(w / "out");
  const std::string everyone = "chmod -R a+rX " + q(w) + " && chmod 0777 " + q(w / "out") + " && chmod -R a-w " + q(w / "run");
  ASSERT_EQ(std::system(everyone.c_str()), 0);
  const auto before = snapshot(w / "run");
  const std::string as = geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  const auto run = [&](const std::string& args) {
    const std::string cmd = as + PPNET_BINARY + " " + args + " </dev/null >" + q(w / "out/stdout") + " 2>" + q(w / "out/stderr");
    const int status = std::system(cmd.c_str());
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, test::read_file((w / "out/stderr").string()));
  };
  for (const std::string& args : {"info --run " + q(w / "run"), "info --prototypes --run " + q(w / "run"),
                                  "report --run " + q(w / "run") + " --out " + q(w / "out/report.html"),
                                  "explain --run " + q(w / "run") + " --dir " + q(w / "data/test") + " --out " + q(w / "out/explained") + " --threads 2"}) {
    const auto [code, err] = run(args);
    EXPECT_EQ(code, 0) << args << "\n" << err;
  }
  EXPECT_TRUE(fs::exists(w / "out/report.html"));
  EXPECT_TRUE(fs::exists(w / "out/explained/index.html"));
  const auto [code, err] = run("evaluate --run " + q(w / "run") + " --data " + q(w / "data") + " --threads 2");
  EXPECT_EQ(code, 1);
  EXPECT_NE(err.find("cannot be written"), std::string::npos) << err;
  // A new output folder under a parent that cannot be written: the real reason, not "No such file".
  const auto [out_code, out_err] = run("prepare --folder " + q(w / "data/test") + " --out " + q(w / "run/new-data"));
  EXPECT_EQ(out_code, 1);
  EXPECT_NE(out_err.find("run/new-data: cannot create the folder (Permission denied)"), std::string::npos) << out_err;
  EXPECT_EQ(snapshot(w / "run"), before);  // nothing written, not even a journal
  ASSERT_EQ(std::system(("chmod -R u+w " + q(w)).c_str()), 0);
}

std::string mutation_name(const ::testing::TestParamInfo<size_t>& info) { return mutations()[info.param].name; }

INSTANTIATE_TEST_SUITE_P(Mutations, HostileRun, ::testing::Range(size_t{0}, mutations().size()), mutation_name);

}  // namespace
}  // namespace ppnet
