// Fault injection: every writing command killed with SIGKILL right after one of its durable
// writes (an SQLite commit or a file renamed into place, base/crash_point.h), then resumed the way
// docs/reliability.md says. The result must be what an uninterrupted run leaves: the same files byte for
// byte, the same database rows (times aside), and a database that passes PRAGMA integrity_check
// both right after the kill and after the resume.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <torch/serialize/input-archive.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>

#include "tests/common/fixtures.h"
#include "base/sha256.h"
#include "tests/common/test_util.h"

namespace ppnet {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;

// Columns that record when or how fast, which no two runs share.
const std::set<std::string> kTimeColumns = {"created", "started", "finished", "seconds", "images_per_second"};

std::string sqlite_text(sqlite3_stmt* s, int col) {
  const auto* t = sqlite3_column_text(s, col);
  return sqlite3_column_type(s, col) == SQLITE_NULL ? "NULL" : std::string(reinterpret_cast<const char*>(t));
}

/// "ok" or what PRAGMA integrity_check found, then every row of every table, times left out.
struct DbState {
  std::string integrity;
  std::vector<std::string> rows;
};

DbState read_db(const fs::path& file) {
  DbState out;
  if (!fs::exists(file)) return out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    out.integrity = "cannot open";
    return out;
  }
  auto query = [&](const std::string& sql, const std::function<void(sqlite3_stmt*)>& row) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      out.integrity += std::string("error in ") + sql + ": " + sqlite3_errmsg(db);
      return;
    }
    while (sqlite3_step(s) == SQLITE_ROW) row(s);
    sqlite3_finalize(s);
  };
  query("PRAGMA integrity_check", [&](sqlite3_stmt* s) { out.integrity += sqlite_text(s, 0); });
  std::vector<std::string> tables;
  query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        [&](sqlite3_stmt* s) { tables.push_back(sqlite_text(s, 0)); });
  for (const auto& t : tables) {
    query("SELECT * FROM \"" + t + "\" ORDER BY rowid", [&](sqlite3_stmt* s) {
      std::string line = t;
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        const std::string name = sqlite3_column_name(s, c);
        if (t == "files" && name == "sha256") {
          // A checkpoint's bytes hold the optimizer's parameter addresses, so two equal runs
          // record different checksums: what must hold is that each is its file's.
          const fs::path kept = file.parent_path() / sqlite_text(s, 0);
          const bool right = fs::exists(kept) && sha256_hex(test::read_file(kept.string())) == sqlite_text(s, c);
          line += std::string(" sha256=") + (right ? "of-the-file" : "NOT-OF-THE-FILE");
        } else if (!kTimeColumns.count(name)) {
          line += " " + name + "=" + sqlite_text(s, c);
        }
      }
      out.rows.push_back(line);
    });
  }
  sqlite3_close(db);
  return out;
}

// Every entry of a LibTorch archive as "key = value" lines, sorted. LibTorch's optimizers key
// their state by the address of each parameter, which differs from process to process, so the
// bytes of two equal checkpoints differ: addresses become "ADDR" and the lines are compared as
// a sorted multiset (tensors by dtype, shape and bytes).
void archive_lines(torch::serialize::InputArchive& archive, const std::string& prefix, std::vector<std::string>& out) {
  static const std::regex kAddress("0x[0-9a-f]+");
  for (const auto& key : archive.keys()) {
    const std::string name = prefix + std::regex_replace(key, kAddress, "ADDR");
    torch::Tensor t;
    torch::serialize::InputArchive sub;
    c10::IValue value;
    if (archive.try_read(key, t)) {
      t = t.contiguous().cpu();
      std::ostringstream os;
      os << name << " = " << t.dtype() << t.sizes() << " ";
      os.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
      out.push_back(os.str());
    } else if (archive.try_read(key, sub)) {
      archive_lines(sub, name + "/", out);
    } else if (archive.try_read(key, value)) {
      std::ostringstream os;
      os << value;
      out.push_back(name + " = " + std::regex_replace(os.str(), kAddress, "ADDR"));
    }
  }
}

std::string checkpoint_content(const std::string& bytes) {
  torch::serialize::InputArchive archive;
  archive.load_from(bytes.data(), bytes.size());
  std::vector<std::string> lines;
  archive_lines(archive, "", lines);
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

/// Every file below `root` but the database (compared by read_db) and the run's lock file;
/// checkpoints by content (checkpoint_content).
std::map<std::string, std::string> files_of(const fs::path& root) {
  auto files = test::snapshot(root);
  for (auto it = files.begin(); it != files.end();) {
    const fs::path path(it->first);
    const std::string name = path.filename().string();
    if (name.rfind("run.sqlite", 0) == 0 || name == ".lock") {
      it = files.erase(it);
      continue;
    }
    if (path.extension() == ".pt") {
      it->second = checkpoint_content(it->second);
      EXPECT_NE(it->second.find("model/"), std::string::npos) << "no model tensors read from " << path;
    }
    ++it;
  }
  return files;
}

void copy_tree(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

std::vector<std::string> read_lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

/// One writing command, the arguments that resume it, and the number of kill points to test.
/// A command that records a result (`records`: evaluate, analyze, prune, report) has finished
/// once its last durable write is done: killed right after it, it is not run again (a second run
/// would record a second result); killed before, the same command runs again.
struct Stage {
  std::string name;
  Args run, resume;
  int points;
  bool records = false;
  std::string db = "run/run.sqlite";  // the database it writes, under w()
};

class FaultInjection : public ::testing::TestWithParam<int> {
 protected:
  fs::path w() const { return dir_.path() / "w"; }
  std::string at(const std::string& rel) const { return (w() / rel).string(); }

  // The pipeline on a tiny data set; each stage's commands use paths under w().
  std::vector<Stage> stages() const {
    const Args model = {"--arch", "small", "--img-size", "28", "--prototypes-per-class", "2", "--prototype-dim", "16",
                        "--batch-size", "8", "--threads", "2", "--seed", "3", "--checkpoint-every", "5"};
    const Args data_run = {"--data", at("data"), "--run", at("run")};
    auto cat = [](Args a, const Args& b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    const Args prepare = {"prepare", "--folder", at("images"), "--out", at("data"), "--copies", "1",
                          "--test-fraction", "0.25", "--threads", "2"};
    const Args warm = cat(cat({"train", "--stage", "warm", "--epochs", "2"}, data_run), model);
    const Args joint = cat(cat({"train", "--stage", "joint", "--epochs", "2"}, data_run), model);
    const Args project = cat({"project", "--threads", "2"}, data_run);
    const Args project_again = cat(project, {"--resume"});
    const Args last = cat({"last-layer", "--threads", "2", "--max-iterations", "200"}, data_run);
    const Args explain = {"explain", "--run", at("run"), "--dir", at("data/test/class1"), "--out", at("expl"),
                          "--threads", "2"};
    const Args analyze = cat({"analyze", "--threads", "2", "--k", "2"}, data_run);
    const Args evaluate = cat({"evaluate", "--threads", "2", "--metrics", "sparsity", "--predictions-csv",
                               at("pred.csv"), "--confusion-csv", at("conf.csv")}, data_run);
    const Args prune = cat({"prune", "--threads", "2", "--k", "6", "--threshold", "6", "--duplicates"}, data_run);
    const Args report = {"report", "--run", at("run")};
    // The pruned model out to a state dict (and its JSON), then into a run of its own.
    const Args export_model = {"export", "--run", at("run"), "--out", at("model.pth"), "--format", "pth"};
    const Args import_model = {"import", "--reference", at("model.pth"), "--run", at("imported"), "--threads", "2"};
    return {{"prepare", prepare, prepare, 6},
            {"warm", warm, cat(warm, {"--resume"}), 5},
            {"joint", joint, cat(joint, {"--resume"}), 5},
            {"project", project, project_again, 4},
            {"last-layer", last, cat(last, {"--resume"}), 4},
            {"explain", explain, explain, 6},
            {"analyze", analyze, analyze, 4, true},
            {"evaluate", evaluate, evaluate, 3, true},
            {"prune", prune, prune, 2, true},
            {"report", report, report, 1, true},
            {"export", export_model, export_model, 2},
            {"import", import_model, import_model, 12, true, "imported/run.sqlite"}};
  }

  int run(const Args& args, const std::string& log_name) {
    const std::string log = (dir_.path() / log_name).string();
    return test::wait_exit(test::spawn_ppnet(args, log));
  }
  std::string log(const std::string& log_name) { return test::read_file((dir_.path() / log_name).string()); }

  test::TempDir dir_;
};

TEST_P(FaultInjection, KilledAfterADurableWriteAndResumedEndsAsAnUninterruptedRun) {
  const auto all = stages();
  const size_t target = static_cast<size_t>(GetParam());
  const Stage& stage = all[target];
  // Stages before the one under test run uninterrupted.
  fs::create_directories(w());
  test::make_pattern_folder(w() / "images", 3, 16);
  for (size_t i = 0; i < target; ++i) ASSERT_EQ(run(all[i].run, "setup.log"), 0) << all[i].name << ": " << log("setup.log");
  const fs::path before = dir_.path() / "before", expected = dir_.path() / "expected";
  copy_tree(w(), before);

  // Uninterrupted, counting the durable writes.
  const fs::path points_log = dir_.path() / "points.log";
  {
    test::ScopedEnv env("PPNET_CRASH_LOG", points_log.string());
    ASSERT_EQ(run(stage.run, "whole.log"), 0) << log("whole.log");
  }
  const auto points = read_lines(points_log);
  ASSERT_GE(points.size(), static_cast<size_t>(stage.points)) << stage.name;
  const auto want_files = files_of(w());
  const auto want_db = read_db(w() / stage.db);
  copy_tree(w(), expected);

  // Kill points spread over the command: the first durable write, the last, and between.
  std::set<size_t> ks = {points.size()};
  for (int i = 0; i + 1 < stage.points; ++i) {
    ks.insert(1 + static_cast<size_t>(i) * (points.size() - 1) / static_cast<size_t>(stage.points - 1));
  }
  for (const size_t k : ks) {
    const std::string where = stage.name + " killed after durable write " + std::to_string(k) + "/" +
                              std::to_string(points.size()) + " (" + points[k - 1].substr(points[k - 1].find(' ') + 1) + ")";
    copy_tree(before, w());
    {
      test::ScopedEnv env("PPNET_CRASH_AFTER", std::to_string(k));
      ASSERT_EQ(run(stage.run, "cut.log"), 128 + SIGKILL) << where << ": " << log("cut.log");
    }
    const auto cut_db = read_db(w() / stage.db);
    EXPECT_TRUE(cut_db.integrity.empty() || cut_db.integrity == "ok") << where << ": " << cut_db.integrity;

    const bool finished = stage.records && k == points.size();
    if (!finished) {
      ASSERT_EQ(run(stage.resume, "resume.log"), 0) << where << ": " << log("resume.log");
    }
    const auto got_files = files_of(w());
    const auto got_db = read_db(w() / stage.db);
    EXPECT_TRUE(got_db.integrity.empty() || got_db.integrity == "ok") << where << ": " << got_db.integrity;
    std::vector<std::string> differ;
    for (const auto& row : want_db.rows) {
      if (std::find(got_db.rows.begin(), got_db.rows.end(), row) == got_db.rows.end()) differ.push_back("missing row " + row);
    }
    for (const auto& row : got_db.rows) {
      if (std::find(want_db.rows.begin(), want_db.rows.end(), row) == want_db.rows.end()) differ.push_back("extra row " + row);
    }
    for (const auto& [path, bytes] : want_files) {
      const auto it = got_files.find(path);
      if (it == got_files.end()) differ.push_back("missing " + path);
      else if (it->second != bytes) differ.push_back("differs " + path);
    }
    for (const auto& [path, bytes] : got_files) {
      if (!want_files.count(path)) differ.push_back("extra " + path);
    }
    EXPECT_TRUE(differ.empty()) << where << ": " << ::testing::PrintToString(differ);
    std::cout << where << (finished ? ": finished, " : ": resumed, ") << (differ.empty() ? "identical" : "DIFFERENT")
              << ", integrity " << (got_db.integrity.empty() ? "(no database)" : got_db.integrity) << "\n";
  }
}

std::string stage_name(const ::testing::TestParamInfo<int>& info) {
  static const char* const kNames[] = {"prepare", "warm",     "joint", "project", "last_layer", "explain",
                                       "analyze", "evaluate", "prune", "report",  "export",     "import"};
  return kNames[info.param];
}

INSTANTIATE_TEST_SUITE_P(Stages, FaultInjection, ::testing::Range(0, 12), stage_name);

}  // namespace
}  // namespace ppnet
