#include "db/database.h"

#include <sqlite3.h>

#include "base/crash_point.h"
#include "base/paths.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <stdexcept>

namespace ppnet::db {
namespace {

[[noreturn]] void fail(sqlite3* db, const std::string& context) {
  throw std::runtime_error(context + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

// Called by SQLite after each commit to the WAL. Replaces the default hook, so it also does what
// that one does: a passive checkpoint once the WAL holds 1000 pages (SQLite's default).
int after_commit(void*, sqlite3* db, const char* schema, int pages) {
  if (pages >= 1000) sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  const char* file = sqlite3_db_filename(db, schema);
  durable_write("commit", file ? file : "");
  return SQLITE_OK;
}

}  // namespace

void Statement::Finalizer::operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }

Statement::Statement(sqlite3* db, const std::string& sql) : db_(db), sql_(sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
    fail(db, "SQL error in '" + sql + "'");
  }
  stmt_.reset(raw);
}

Statement& Statement::bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_.get(), index, value) != SQLITE_OK) fail(db_, "bind in '" + sql_ + "'");
  return *this;
}
Statement& Statement::bind(int index, double value) {
  if (sqlite3_bind_double(stmt_.get(), index, value) != SQLITE_OK) fail(db_, "bind in '" + sql_ + "'");
  return *this;
}
Statement& Statement::bind(int index, const std::string& value) {
  if (sqlite3_bind_text(stmt_.get(), index, value.data(), static_cast<int>(value.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK) {
    fail(db_, "bind in '" + sql_ + "'");
  }
  return *this;
}
Statement& Statement::bind_blob(int index, const std::string& bytes) {
  if (sqlite3_bind_blob64(stmt_.get(), index, bytes.data(), bytes.size(), SQLITE_TRANSIENT) != SQLITE_OK) {
    fail(db_, "bind in '" + sql_ + "'");
  }
  return *this;
}
Statement& Statement::bind_null(int index) {
  if (sqlite3_bind_null(stmt_.get(), index) != SQLITE_OK) fail(db_, "bind in '" + sql_ + "'");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(db_, "executing '" + sql_ + "'");
}

void Statement::run() {
  while (step()) {
  }
  sqlite3_reset(stmt_.get());
}

int64_t Statement::column_int(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
double Statement::column_double(int col) const { return sqlite3_column_double(stmt_.get(), col); }
std::string Statement::column_text(int col) const {
  const auto* text = sqlite3_column_text(stmt_.get(), col);
  return text ? std::string(reinterpret_cast<const char*>(text),
                            static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)))
              : std::string();
}
std::string Statement::column_blob(int col) const {
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(stmt_.get(), col));
  return bytes ? std::string(bytes, static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col))) : std::string();
}
bool Statement::column_is_null(int col) const {
  return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL;
}

Transaction::Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
      // Nothing more can be done from a destructor; SQLite rolls back on close anyway.
    }
  }
}
void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

void Database::Closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

Database::Database(const std::string& path, const Migrations& migrations, int32_t application_id, bool read_only)
    : path_(path) {
  sqlite3* raw = nullptr;
  int rc = 0;
  if (!read_only) {
    rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  } else {
    // A WAL file's readers need its -shm file; without both, nothing uncheckpointed is left
    // (a clean close checkpoints and removes them), and the file is read as it is.
    std::error_code ec;
    const bool wal = std::filesystem::exists(path + "-wal", ec) && std::filesystem::exists(path + "-shm", ec);
    rc = sqlite3_open_v2(wal ? path.c_str() : ("file:" + url_path(path) + "?immutable=1").c_str(), &raw,
                         SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
  }
  db_.reset(raw);
  if (rc != SQLITE_OK) fail(raw, "cannot open database " + path);
  try {
    sqlite3_busy_timeout(raw, 10000);
    check_ownership(migrations, application_id);  // before anything writes to the file
    if (read_only) {
      const int version = schema_version();
      if (version != static_cast<int>(migrations.size())) {
        throw std::runtime_error("schema version " + std::to_string(version) + " is not this ppnet's (" +
                                 std::to_string(migrations.size()) + ") and the file is read-only: " +
                                 (version > static_cast<int>(migrations.size())
                                      ? std::string("use a newer ppnet")
                                      : std::string("copy the run to a folder you can write, where ppnet brings it up to date")));
      }
      exec("PRAGMA foreign_keys=ON");
      return;
    }
    exec("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;");
    sqlite3_wal_hook(raw, after_commit, nullptr);
    const int version = schema_version();
    if (version > static_cast<int>(migrations.size())) {
      throw std::runtime_error("schema version " + std::to_string(version) +
                               " is newer than this ppnet understands (" +
                               std::to_string(migrations.size()) + "): use a newer ppnet");
    }
    // Foreign keys off while migrating (it cannot change inside a transaction), so that a
    // migration may rebuild a table others refer to (SQLite's procedure for schema changes
    // ALTER TABLE cannot make); each one is checked before its commit.
    if (static_cast<size_t>(version) < migrations.size()) exec("PRAGMA foreign_keys=OFF");
    for (size_t v = static_cast<size_t>(version); v < migrations.size(); ++v) {
      Transaction tx(*this);
      exec(migrations[v]);
      Statement check = prepare("PRAGMA foreign_key_check");
      if (check.step()) {
        throw std::runtime_error("schema step " + std::to_string(v + 1) + " broke a reference from table " +
                                 check.column_text(0));
      }
      exec("PRAGMA user_version = " + std::to_string(v + 1));
      if (application_id != 0) exec("PRAGMA application_id = " + std::to_string(application_id));
      tx.commit();
    }
    exec("PRAGMA foreign_keys=ON");
    if (application_id != 0 && pragma_int("application_id") == 0) {  // a file of ppnet 0.1
      exec("PRAGMA application_id = " + std::to_string(application_id));
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

Statement Database::prepare(const std::string& sql) { return Statement(db_.get(), sql); }

void Database::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error(msg + " (in '" + sql + "')");
  }
}

int64_t Database::pragma_int(const std::string& name) {
  Statement s = prepare("PRAGMA " + name);
  s.step();
  return s.column_int(0);
}

void Database::check_ownership(const Migrations& migrations, int32_t application_id) {
  const int64_t id = pragma_int("application_id"), version = pragma_int("user_version");
  std::vector<std::string> tables;
  auto s = prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  while (s.step()) tables.push_back(s.column_text(0));
  if (tables.empty() && version == 0 && id == 0) return;  // new or empty: ours to fill
  std::string why;
  if (application_id != 0 && id != 0 && id != application_id) {
    why = "its application id is " + std::to_string(id) + ", not ppnet's " + std::to_string(application_id);
  } else if (version == 0) {
    why = "it has tables but no schema version";
  } else if (application_id != 0 && id == 0 && !migrations.empty()) {
    // Without an id, only a file whose first table is the one ppnet's first migration creates.
    static const std::regex kFirstTable(R"(CREATE TABLE\s+(\w+))", std::regex::icase);
    std::smatch m;
    if (std::regex_search(migrations[0], m, kFirstTable) &&
        std::find(tables.begin(), tables.end(), m[1].str()) == tables.end()) {
      why = "it lacks ppnet's table '" + m[1].str() + "'";
    }
  }
  if (why.empty()) return;
  std::string list;
  for (size_t i = 0; i < tables.size() && i < 5; ++i) list += (i ? ", " : "") + tables[i];
  if (tables.size() > 5) list += ", …";
  throw std::runtime_error("not a ppnet database (" + why + "; tables: " + (list.empty() ? "none" : list) +
                           "); refusing to change it: use another folder");
}

int Database::schema_version() {
  Statement s = prepare("PRAGMA user_version");
  s.step();
  return static_cast<int>(s.column_int(0));
}

const Migrations& run_migrations() {
  static const Migrations kMigrations = {
      // 1: key/value facts about the run (what created it, with which ppnet version).
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;",
      // 2: the run, its stages, epochs and checkpoints.
      R"sql(
CREATE TABLE run (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  created TEXT NOT NULL,
  ppnet_version TEXT NOT NULL,
  model_json TEXT NOT NULL,
  data_path TEXT NOT NULL,
  data_manifest TEXT NOT NULL) STRICT;
CREATE TABLE stages (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'interrupted', 'done')),
  started TEXT NOT NULL,
  finished TEXT,
  config_json TEXT NOT NULL,
  start_checkpoint TEXT NOT NULL) STRICT;
CREATE TABLE epochs (
  stage_id INTEGER NOT NULL REFERENCES stages(id),
  epoch INTEGER NOT NULL,
  train_loss REAL NOT NULL, train_cross_entropy REAL NOT NULL, train_cluster REAL NOT NULL,
  train_separation REAL NOT NULL, train_avg_separation REAL NOT NULL, train_accuracy REAL NOT NULL,
  eval_split TEXT NOT NULL,
  eval_cross_entropy REAL NOT NULL, eval_cluster REAL NOT NULL, eval_separation REAL NOT NULL,
  eval_avg_separation REAL NOT NULL, eval_accuracy REAL NOT NULL,
  l1 REAL NOT NULL, prototype_distance REAL NOT NULL,
  images_per_second REAL NOT NULL, seconds REAL NOT NULL,
  PRIMARY KEY (stage_id, epoch)) STRICT;
CREATE TABLE checkpoints (
  id INTEGER PRIMARY KEY,
  stage_id INTEGER NOT NULL REFERENCES stages(id),
  epoch INTEGER NOT NULL,
  batch INTEGER NOT NULL,
  path TEXT NOT NULL UNIQUE,
  final INTEGER NOT NULL,
  created TEXT NOT NULL) STRICT;
)sql",
      // 3: what each projection (a stage of kind 'project') recorded per prototype.
      R"sql(
CREATE TABLE prototypes (
  stage_id INTEGER NOT NULL REFERENCES stages(id),
  prototype INTEGER NOT NULL,
  class_index INTEGER NOT NULL,
  image_path TEXT NOT NULL,
  image_id TEXT NOT NULL,
  image_width INTEGER NOT NULL, image_height INTEGER NOT NULL,
  cell_h INTEGER NOT NULL, cell_w INTEGER NOT NULL,
  distance_before REAL NOT NULL, distance_after REAL NOT NULL,
  rf_x0 INTEGER NOT NULL, rf_y0 INTEGER NOT NULL, rf_x1 INTEGER NOT NULL, rf_y1 INTEGER NOT NULL,
  box_x0 INTEGER NOT NULL, box_y0 INTEGER NOT NULL, box_x1 INTEGER NOT NULL, box_y1 INTEGER NOT NULL,
  PRIMARY KEY (stage_id, prototype)) STRICT;
)sql",
      // 4: evaluations of the run's model on a split (the report shows the latest).
      R"sql(
CREATE TABLE evaluations (
  id INTEGER PRIMARY KEY,
  created TEXT NOT NULL,
  checkpoint TEXT NOT NULL,
  split TEXT NOT NULL,
  images INTEGER NOT NULL,
  accuracy REAL NOT NULL,
  top5_accuracy REAL NOT NULL,
  details_json TEXT NOT NULL) STRICT;
)sql",
      // 5: global analyses (ppnet analyze): each prototype's nearest patches over a split.
      R"sql(
CREATE TABLE analyses (
  id INTEGER PRIMARY KEY,
  created TEXT NOT NULL,
  checkpoint TEXT NOT NULL,
  projection INTEGER,
  split TEXT NOT NULL,
  k INTEGER NOT NULL,
  images INTEGER NOT NULL,
  pictures TEXT NOT NULL,
  seconds REAL NOT NULL) STRICT;
CREATE TABLE nearest_patches (
  analysis_id INTEGER NOT NULL REFERENCES analyses(id),
  prototype INTEGER NOT NULL,
  rank INTEGER NOT NULL,
  image_path TEXT NOT NULL,
  image_id TEXT NOT NULL,
  class_index INTEGER NOT NULL,
  cell_h INTEGER NOT NULL, cell_w INTEGER NOT NULL,
  distance REAL NOT NULL, similarity REAL NOT NULL,
  box_x0 INTEGER NOT NULL, box_y0 INTEGER NOT NULL, box_x1 INTEGER NOT NULL, box_y1 INTEGER NOT NULL,
  PRIMARY KEY (analysis_id, prototype, rank)) STRICT;
)sql",
      // 6: prototypes a prune stage removed (its kept ones are in prototypes, renumbered).
      R"sql(
CREATE TABLE pruned (
  stage_id INTEGER NOT NULL REFERENCES stages(id),
  prototype INTEGER NOT NULL,
  class_index INTEGER NOT NULL,
  reason TEXT NOT NULL CHECK (reason IN ('nearest', 'duplicate')),
  detail TEXT NOT NULL,
  PRIMARY KEY (stage_id, prototype)) STRICT;
)sql",
      // 7: a stage whose training diverged is 'failed': kept for inspection, it holds up nothing.
      R"sql(
CREATE TABLE stages_new (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'interrupted', 'done', 'failed')),
  started TEXT NOT NULL,
  finished TEXT,
  config_json TEXT NOT NULL,
  start_checkpoint TEXT NOT NULL) STRICT;
INSERT INTO stages_new SELECT id, kind, status, started, finished, config_json, start_checkpoint FROM stages;
DROP TABLE stages;
ALTER TABLE stages_new RENAME TO stages;
)sql",
      // 8: how an analysis located each patch (its attribution method), and each nearest patch's
      // activation precision against the image's object mask (NULL: not measured).
      R"sql(
ALTER TABLE analyses ADD COLUMN attribution TEXT NOT NULL DEFAULT 'upsample';
ALTER TABLE nearest_patches ADD COLUMN mask_precision REAL;
)sql",
      // 9: concepts a user marked (ppnet forbid / remember): an image region, its pixels kept as a
      // PNG so that later training re-embeds it whatever the data folder holds by then.
      R"sql(
CREATE TABLE concepts (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('forbid', 'remember')),
  class_index INTEGER,
  created TEXT NOT NULL,
  origin TEXT NOT NULL,
  image_path TEXT NOT NULL,
  image_width INTEGER NOT NULL CHECK (image_width > 0),
  image_height INTEGER NOT NULL CHECK (image_height > 0),
  box_x0 INTEGER NOT NULL, box_y0 INTEGER NOT NULL, box_x1 INTEGER NOT NULL, box_y1 INTEGER NOT NULL,
  pixels BLOB NOT NULL,
  CHECK (0 <= box_x0 AND box_x0 < box_x1 AND box_x1 <= image_width AND
         0 <= box_y0 AND box_y0 < box_y1 AND box_y1 <= image_height)) STRICT;
)sql",
      // 10: the SHA-256 of every file the run keeps (its checkpoints) as it was written,
      // checked when the file is read. Files written before have none and are read unchecked.
      R"sql(
CREATE TABLE files (
  path TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL CHECK (length(sha256) = 64)) STRICT;
)sql",
      // 11: the torchrun job that began a stage (TORCHELASTIC_RUN_ID; '' outside torchrun), so
      // that the job's restarted workers continue its stage and not another's.
      "ALTER TABLE stages ADD COLUMN job TEXT NOT NULL DEFAULT '';",
  };
  return kMigrations;
}

}  // namespace ppnet::db
