#include "db/database.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "db/run_store.h"
#include "tests/common/test_util.h"

namespace ppnet::db {
namespace {

using test::TempDir;

const Migrations kTwoSteps = {
    "CREATE TABLE a (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER NOT NULL REFERENCES a(id));",
};

TEST(Database, FreshFileMigratesFromZeroToLatest) {
  TempDir dir;
  Database db(dir.file("run.sqlite"), run_migrations());
  EXPECT_EQ(db.schema_version(), static_cast<int>(run_migrations().size()));
  auto mode = db.prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.step());
  EXPECT_EQ(mode.column_text(0), "wal");
  auto fk = db.prepare("PRAGMA foreign_keys");
  ASSERT_TRUE(fk.step());
  EXPECT_EQ(fk.column_int(0), 1);
  db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)").bind(1, std::string("k")).bind(2, std::string("v")).run();
}

TEST(Database, AppliesOnlyTheMissingSteps) {
  TempDir dir;
  const std::string path = dir.file("x.sqlite");
  {
    Database db(path, Migrations{kTwoSteps[0]});
    EXPECT_EQ(db.schema_version(), 1);
    db.prepare("INSERT INTO a (name) VALUES (?)").bind(1, std::string("kept")).run();
  }
  Database db(path, kTwoSteps);  // would fail on re-running step 0 ("table a already exists")
  EXPECT_EQ(db.schema_version(), 2);
  auto s = db.prepare("SELECT name FROM a");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_text(0), "kept");
  // Foreign keys are enforced.
  EXPECT_THROW(db.prepare("INSERT INTO b (a_id) VALUES (42)").run(), std::runtime_error);
}

// Step 7 rebuilds `stages`, which epochs, checkpoints, prototypes and pruned refer to: a run made
// at step 6 keeps every row and reference, gains the 'failed' status, and still enforces keys.
TEST(Database, RebuildingStagesKeepsARunsRowsAndReferences) {
  TempDir dir;
  const std::string path = dir.file("run.sqlite");
  const Migrations six(run_migrations().begin(), run_migrations().begin() + 6);
  {
    Database db(path, six, kRunApplicationId);
    db.exec("INSERT INTO stages VALUES (1, 'warm', 'done', 't0', 't1', '{}', 'checkpoints/init.pt');"
            "INSERT INTO stages VALUES (2, 'joint', 'interrupted', 't2', NULL, '{\"a\":1}', 'c1.pt');"
            "INSERT INTO checkpoints VALUES (1, 1, 1, 0, 'c1.pt', 1, 't1');");
    EXPECT_THROW(db.exec("UPDATE stages SET status = 'failed' WHERE id = 2"), std::runtime_error);
  }
  Database db(path, run_migrations(), kRunApplicationId);
  EXPECT_EQ(db.schema_version(), static_cast<int>(run_migrations().size()));
  auto rows = db.prepare("SELECT id, kind, status, COALESCE(finished, '-'), config_json FROM stages ORDER BY id");
  ASSERT_TRUE(rows.step());
  EXPECT_EQ(rows.column_text(2), "done");
  EXPECT_EQ(rows.column_text(3), "t1");
  ASSERT_TRUE(rows.step());
  EXPECT_EQ(rows.column_text(1), "joint");
  EXPECT_EQ(rows.column_text(3), "-");
  EXPECT_EQ(rows.column_text(4), "{\"a\":1}");
  EXPECT_FALSE(rows.step());
  db.exec("UPDATE stages SET status = 'failed' WHERE id = 2");
  EXPECT_THROW(db.exec("UPDATE stages SET status = 'lost' WHERE id = 2"), std::runtime_error);
  auto fk = db.prepare("PRAGMA foreign_keys");
  ASSERT_TRUE(fk.step());
  EXPECT_EQ(fk.column_int(0), 1);
  EXPECT_THROW(db.exec("INSERT INTO checkpoints VALUES (2, 9, 1, 0, 'c9.pt', 0, 't')"), std::runtime_error)
      << "checkpoints still refer to stages";
  auto ref = db.prepare("SELECT s.kind FROM checkpoints c JOIN stages s ON s.id = c.stage_id");
  ASSERT_TRUE(ref.step());
  EXPECT_EQ(ref.column_text(0), "warm");
}

TEST(Database, RefusesANewerSchema) {
  TempDir dir;
  const std::string path = dir.file("x.sqlite");
  { Database db(path, kTwoSteps); }
  try {
    Database db(path, Migrations{kTwoSteps[0]});
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("newer"), std::string::npos) << msg;
  }
}

TEST(Database, RefusesAFileThatIsNotADatabase) {
  TempDir dir;
  const std::string path = dir.file("not.sqlite");
  test::write_file(path, std::string(4096, 'x'));
  try {
    Database db(path, run_migrations());
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_file(path), std::string(4096, 'x'));  // untouched
}

TEST(Database, TransactionRollsBackUnlessCommitted) {
  TempDir dir;
  Database db(dir.file("t.sqlite"), kTwoSteps);
  {
    Transaction tx(db);
    db.prepare("INSERT INTO a (name) VALUES ('lost')").run();
  }
  {
    Transaction tx(db);
    db.prepare("INSERT INTO a (name) VALUES ('kept')").run();
    tx.commit();
  }
  auto s = db.prepare("SELECT group_concat(name) FROM a");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_text(0), "kept");
}

TEST(Database, StatementBindsAndReadsEveryType) {
  TempDir dir;
  Database db(dir.file("s.sqlite"), Migrations{"CREATE TABLE t (i INTEGER, d REAL, s TEXT, n TEXT);"});
  db.prepare("INSERT INTO t VALUES (?, ?, ?, ?)")
      .bind(1, int64_t{1} << 40)
      .bind(2, 0.125)
      .bind(3, std::string("a'b\0c", 5))
      .bind_null(4)
      .run();
  auto s = db.prepare("SELECT i, d, s, n FROM t");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_int(0), int64_t{1} << 40);
  EXPECT_EQ(s.column_double(1), 0.125);
  EXPECT_EQ(s.column_text(2), std::string("a'b\0c", 5));
  EXPECT_TRUE(s.column_is_null(3));
  EXPECT_FALSE(s.step());
  EXPECT_THROW(db.prepare("SELECT nope FROM t"), std::runtime_error);
}

// Another program's database is refused without a byte written: one with tables but no schema
// version, one with another application id, one with a version but none of ppnet's tables.
TEST(Database, RefusesAForeignDatabaseWithoutWritingToIt) {
  TempDir dir;
  struct Case {
    const char* name;
    Migrations migrations;
    int32_t id;
    const char* why;
  };
  const Case cases[] = {
      {"plain.sqlite", {"CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada');"}, 0, "it has tables but no schema version"},
      {"other-app.sqlite", {"CREATE TABLE meta (k TEXT);"}, 0x12345678, "its application id is 305419896"},
      {"versioned.sqlite", {"CREATE TABLE people (name TEXT);"}, 0, "it lacks ppnet's table 'meta'"},
  };
  for (const auto& c : cases) {
    const std::string path = dir.file(c.name);
    {
      Database other(path, c.migrations, c.id);
      if (std::string(c.name) == "plain.sqlite") other.exec("PRAGMA user_version = 0");
      other.exec("PRAGMA journal_mode=DELETE");  // one file, so its bytes say everything
    }
    const std::string before = test::read_file(path);
    try {
      Database db(path, run_migrations(), kRunApplicationId);
      ADD_FAILURE() << c.name << ": expected an exception";
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path + ": not a ppnet database (" + c.why), std::string::npos) << msg;
      EXPECT_NE(msg.find("tables: "), std::string::npos) << msg;
    }
    EXPECT_EQ(test::read_file(path), before) << c.name << " was changed";
    EXPECT_FALSE(std::filesystem::exists(path + "-wal")) << c.name;
  }
}

TEST(Database, AdoptsItsOwnFilesWithAndWithoutAnApplicationId) {
  TempDir dir;
  const std::string path = dir.file("run.sqlite");
  { Database old(path, Migrations{run_migrations()[0], run_migrations()[1]}); }  // as ppnet 0.1 wrote it: no id
  Database db(path, run_migrations(), kRunApplicationId);
  EXPECT_EQ(db.schema_version(), static_cast<int>(run_migrations().size()));
  auto s = db.prepare("PRAGMA application_id");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_int(0), kRunApplicationId);
  Database again(path, run_migrations(), kRunApplicationId);  // and reopens it
  Database fresh(dir.file("new.sqlite"), run_migrations(), kRunApplicationId);
}

// Stage kinds and statuses are read back as types: every name ppnet stores maps to its value, and
// a name no ppnet wrote (a database edited by hand) is refused with the name in the message.
TEST(RunStore, StageKindsAndStatusesReadBackAndUnknownNamesAreRefused) {
  TempDir dir;
  const std::string path = dir.file("run.sqlite");
  RunStore store(path);
  const StageKind kinds[] = {StageKind::kWarm, StageKind::kJoint, StageKind::kProject, StageKind::kLastLayer,
                             StageKind::kPrune, StageKind::kImport};
  const StageStatus statuses[] = {StageStatus::kRunning, StageStatus::kInterrupted, StageStatus::kDone,
                                  StageStatus::kFailed, StageStatus::kDone, StageStatus::kDone};
  for (size_t i = 0; i < 6; ++i) {
    const int64_t id = store.begin_stage(kinds[i], "{}", "checkpoints/init.pt");
    store.set_stage_status(id, statuses[i]);
  }
  const auto stages = store.stages();
  ASSERT_EQ(stages.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(stages[i].kind, kinds[i]);
    EXPECT_EQ(stages[i].status, statuses[i]);
    EXPECT_EQ(parse_stage_kind(to_string(kinds[i])), kinds[i]);
  }
  EXPECT_STREQ(to_string(StageKind::kLastLayer), "last_layer");
  EXPECT_TRUE(stages[0].unfinished());
  EXPECT_TRUE(stages[1].unfinished());
  EXPECT_FALSE(stages[2].unfinished());
  {
    Database db(path, run_migrations(), kRunApplicationId);
    db.exec("UPDATE stages SET kind = 'distill' WHERE id = 2");
  }
  try {
    store.stages();
    FAIL() << "an unknown stage kind was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown stage kind 'distill'"), std::string::npos) << e.what();
  }
}

// Concepts: the PNG bytes come back exactly (NUL bytes included), a class may be none (every
// class), removal needs the right kind, and a box outside its image never gets in.
TEST(RunStore, ConceptsKeepTheirPixelsAndAreRemovedByKind) {
  TempDir dir;
  RunStore store(dir.file("run.sqlite"));
  ConceptRow c;
  c.kind = ConceptKind::kForbid;
  c.class_index = 2;
  c.origin = "prototype 7 of projection #3";
  c.image_path = "push/a/b.png";
  c.image_width = 40;
  c.image_height = 30;
  c.box[0] = 1;
  c.box[1] = 2;
  c.box[2] = 11;
  c.box[3] = 12;
  c.pixels = std::string("\x89PNG\0\0\x01rest", 12);
  const int64_t first = store.add_concept(c);
  c.kind = ConceptKind::kRemember;
  c.class_index.reset();
  const int64_t second = store.add_concept(c);
  EXPECT_NE(first, second);
  const auto all = store.concepts();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].kind, ConceptKind::kForbid);
  EXPECT_EQ(all[0].class_index, std::optional<int64_t>(2));
  EXPECT_EQ(all[0].pixels, c.pixels);
  EXPECT_EQ(all[0].pixels.size(), 12u);
  EXPECT_EQ(all[0].origin, c.origin);
  EXPECT_EQ(all[0].box[2], 11);
  EXPECT_FALSE(all[1].class_index.has_value());
  EXPECT_FALSE(all[0].created.empty());
  EXPECT_EQ(store.concepts(std::vector<int64_t>{second, 99}).size(), 1u);

  EXPECT_FALSE(store.remove_concept(first, ConceptKind::kRemember));
  EXPECT_TRUE(store.remove_concept(first, ConceptKind::kForbid));
  EXPECT_FALSE(store.remove_concept(first, ConceptKind::kForbid));
  ASSERT_EQ(store.concepts().size(), 1u);

  c.box[2] = 41;  // beyond the 40-pixel width
  EXPECT_THROW(store.add_concept(c), std::runtime_error);
  EXPECT_EQ(store.concepts().size(), 1u);
  EXPECT_THROW(store.database().exec("UPDATE concepts SET kind = 'ignore'"), std::runtime_error);  // the CHECK
  EXPECT_THROW(parse_concept_kind("ignore"), std::runtime_error);
}

}  // namespace
}  // namespace ppnet::db
