#pragma once
// The SQLite connection behind run.sqlite: RAII handles, prepared statements, transactions
// and versioned schema migrations. The only code in ppnet that speaks SQL lives in db/.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace ppnet::db {

/// A prepared statement. Bind parameters by 1-based index, step() through rows, read columns
/// by 0-based index. Errors throw std::runtime_error with SQLite's message and the SQL.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql);
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, double value);
  Statement& bind(int index, const std::string& value);
  Statement& bind_null(int index);
  /// Binds `bytes` as a BLOB (bind(int, string) binds TEXT).
  Statement& bind_blob(int index, const std::string& bytes);
  /// Advances to the next row; false once done.
  bool step();
  /// Runs a statement that returns no rows.
  void run();
  int64_t column_int(int col) const;
  double column_double(int col) const;
  std::string column_text(int col) const;
  std::string column_blob(int col) const;
  bool column_is_null(int col) const;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const;
  };
  sqlite3* db_;
  std::string sql_;
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
};

class Database;

/// BEGIN IMMEDIATE on construction; rolls back on destruction unless commit() was called.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

/// One schema step: the SQL that takes the schema from version `index` to `index + 1`.
using Migrations = std::vector<std::string>;

class Database {
 public:
  /// Opens (creating if needed) the database at `path` with WAL journaling, foreign keys on and
  /// a busy timeout, then applies each migration the file has not seen, each in its own
  /// transaction that also bumps PRAGMA user_version and sets PRAGMA application_id. Throws
  /// std::runtime_error naming the file when it cannot be opened, is not a database, has a
  /// schema newer than `migrations`, or is another program's database: one with tables but no
  /// schema version, another application id, or (without an id, as files of ppnet 0.1) without
  /// the first table `migrations` creates. Nothing is written to a file it refuses.
  ///
  /// `read_only` (for a file in a folder that cannot be written): opens the file read-only —
  /// through its -wal and -shm files when a writer left both, otherwise as SQLite's immutable
  /// file — and migrates nothing: a schema older than `migrations` throws saying so.
  Database(const std::string& path, const Migrations& migrations, int32_t application_id = 0, bool read_only = false);

  Statement prepare(const std::string& sql);
  /// Runs SQL without results (may hold several statements; used for schema changes).
  void exec(const std::string& sql);
  int schema_version();
  const std::string& path() const { return path_; }

 private:
  int64_t pragma_int(const std::string& name);
  void check_ownership(const Migrations& migrations, int32_t application_id);
  struct Closer {
    void operator()(sqlite3* db) const;
  };
  std::string path_;
  std::unique_ptr<sqlite3, Closer> db_;
};

/// The migrations of run.sqlite, oldest first, and its PRAGMA application_id ("ppnt").
const Migrations& run_migrations();
inline constexpr int32_t kRunApplicationId = 0x70706e74;

}  // namespace ppnet::db
