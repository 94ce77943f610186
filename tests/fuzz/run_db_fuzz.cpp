// run.sqlite as ppnet reads it back. A small valid run database is changed by the input at the
// SQL level — rows deleted or duplicated, any column of any row set to an integer, a real, text
// (any bytes), a blob or NULL, the schema version changed — and then read the way the commands
// do: `info` (stages, prototypes, concepts), `report`, and the stage
// resolution every writer does before it begins. A refusal (an exception) is right; a crash, a
// sanitizer report or a hang is a finding.
#include <sqlite3.h>

#include <cstring>

#include "db/run_store.h"
#include "pipeline/render/report.h"
#include "pipeline/run/info.h"
#include "pipeline/run/run_folder.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace ppnet;
namespace fs = std::filesystem;

// The bytes of a finished run's database: two training stages, a projection with its
// prototypes, a last layer, an evaluation, an analysis and two concepts.
std::string seed_database() {
  const fs::path dir = fuzz::scratch() / "seed";
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    db::RunStore s((dir / "run.sqlite").string());
    const std::string manifest =
        R"({"classes":[{"index":0,"name":"a","folder":"a"},{"index":1,"name":"b","folder":"b"}],)"
        R"("source":{"kind":"folder","path":"/x"},"options":{},"counts":{"push":[2,2],"train":[2,2],"test":[1,1]},)"
        R"("failed":[],"created_by":"fuzz","ppnet_data_version":1})";
    s.create_run({"2026-01-01T00:00:00Z", "ppnet fuzz",
                  R"({"arch":"small","img_size":28,"num_classes":2,"prototypes_per_class":1,"prototype_dim":8,)"
                  R"("add_on":"regular","activation":"log","resize":"bilinear","pretrained":false})",
                  "/data", manifest},
                 {"checkpoints/init.pt", std::string(64, 'a')});
    const std::string sha(64, 'b');
    const int64_t warm = s.begin_stage(db::StageKind::kWarm, R"({"epochs":1,"batch_size":8})", "checkpoints/init.pt");
    db::EpochRow e;
    e.stage_id = warm;
    e.eval_split = "test";
    s.add_checkpoint({0, warm, 1, 0, "checkpoints/stage1-e001-b00000.pt", true, "", sha}, {}, e);
    s.set_stage_status(warm, db::StageStatus::kDone);
    const int64_t joint = s.begin_stage(db::StageKind::kJoint, R"({"epochs":1})", "checkpoints/stage1-e001-b00000.pt");
    s.add_checkpoint({0, joint, 0, 1, "checkpoints/stage2-e000-b00001.pt", false, "", sha}, {}, std::nullopt);
    s.set_stage_status(joint, db::StageStatus::kInterrupted);
    s.set_stage_status(joint, db::StageStatus::kDone);
    const int64_t project = s.begin_stage(db::StageKind::kProject, R"({"batch_size":8})", "checkpoints/stage2-e000-b00001.pt");
    std::vector<db::PrototypeRow> rows(2);
    for (int64_t j = 0; j < 2; ++j) {
      rows[j].stage_id = project;
      rows[j].prototype = j;
      rows[j].class_index = j;
      rows[j].image_path = "push/a/x.png";
      rows[j].image_id = "a/x.png";
      rows[j].image_width = rows[j].image_height = 28;
      rows[j].box[2] = rows[j].box[3] = rows[j].rf[2] = rows[j].rf[3] = 14;
    }
    s.finish_projection(project, rows, {0, project, 0, 0, "checkpoints/project3.pt", true, "", sha});
    const int64_t last = s.begin_stage(db::StageKind::kLastLayer, R"({"solver":"prox"})", "checkpoints/project3.pt");
    s.add_checkpoint({0, last, 1, 0, "checkpoints/stage4-e001-b00000.pt", true, "", sha}, {}, std::nullopt);
    s.set_stage_status(last, db::StageStatus::kDone);
    s.add_evaluation({0, "", "checkpoints/stage4-e001-b00000.pt", "test", 2, 0.5, 1.0,
                      R"({"per_class_accuracy":[1,0],"confusion":[[1,0],[1,0]]})"});
    db::AnalysisRow a;
    a.id = s.next_analysis_id();
    a.checkpoint = "checkpoints/stage4-e001-b00000.pt";
    a.projection = project;
    a.split = "push";
    a.k = 1;
    a.images = 4;
    a.pictures = "analysis/1";
    db::NearestPatchRow n;
    n.image_path = "push/b/y.png";
    s.add_analysis(a, {n});
    db::ConceptRow k;
    k.image_path = "push/a/x.png";
    k.image_width = k.image_height = 28;
    k.box[2] = k.box[3] = 10;
    k.pixels = "png";
    s.add_concept(k);
    k.kind = db::ConceptKind::kRemember;
    k.class_index = 1;
    s.add_concept(k);
  }
  std::ifstream in(dir / "run.sqlite", std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Reads the input a few bytes at a time; zeros once it runs out.
struct Input {
  const uint8_t* p;
  size_t left;
  uint8_t byte() { return left ? (--left, *p++) : 0; }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | byte();
    return v;
  }
  std::string bytes(size_t n) {
    std::string s;
    while (n-- && left) s += static_cast<char>(byte());
    return s;
  }
};

std::vector<std::string> column_of(sqlite3* db, const std::string& sql) {
  std::vector<std::string> out;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK) {
    while (sqlite3_step(s) == SQLITE_ROW) {
      const auto* t = sqlite3_column_text(s, 0);
      out.push_back(t ? reinterpret_cast<const char*>(t) : "");
    }
  }
  sqlite3_finalize(s);
  return out;
}

// Up to 12 changes the input chooses; a change SQLite refuses (a type a STRICT table does not
// take, a duplicate key) is simply not made.
void mutate(const fs::path& file, Input& in) {
  sqlite3* db = nullptr;
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    return;
  }
  sqlite3_exec(db, "PRAGMA ignore_check_constraints = ON", nullptr, nullptr, nullptr);
  const auto tables = column_of(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  for (int op = 0, ops = in.byte() % 13; op < ops && !tables.empty(); ++op) {
    const std::string table = tables[in.byte() % tables.size()];
    const auto rowids = column_of(db, "SELECT rowid FROM \"" + table + "\"");
    const auto columns = column_of(db, "SELECT name FROM pragma_table_info('" + table + "')");
    const std::string row = rowids.empty() ? "0" : rowids[in.byte() % rowids.size()];
    sqlite3_stmt* s = nullptr;
    switch (in.byte() % 4) {
      case 0:
        sqlite3_exec(db, ("DELETE FROM \"" + table + "\" WHERE rowid = " + row).c_str(), nullptr, nullptr, nullptr);
        break;
      case 1:
        sqlite3_exec(db, ("INSERT INTO \"" + table + "\" SELECT * FROM \"" + table + "\" WHERE rowid = " + row).c_str(),
                     nullptr, nullptr, nullptr);
        break;
      case 2:
        sqlite3_exec(db, ("PRAGMA user_version = " + std::to_string(in.byte() % 13)).c_str(), nullptr, nullptr, nullptr);
        break;
      default: {
        if (columns.empty()) break;
        const std::string sql = "UPDATE \"" + table + "\" SET \"" + columns[in.byte() % columns.size()] +
                                "\" = ? WHERE rowid = " + row;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) break;
        switch (in.byte() % 5) {
          case 0: sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(in.u64())); break;
          case 1: {
            const uint64_t bits = in.u64();
            double d;
            std::memcpy(&d, &bits, sizeof d);
            sqlite3_bind_double(s, 1, d);
            break;
          }
          case 2: {
            const std::string t = in.bytes(in.byte() % 64);
            sqlite3_bind_text(s, 1, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
            break;
          }
          case 3: {
            const std::string b = in.bytes(in.byte() % 64);
            sqlite3_bind_blob(s, 1, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
            break;
          }
          default: sqlite3_bind_null(s, 1);
        }
        sqlite3_step(s);
        sqlite3_finalize(s);
      }
    }
  }
  sqlite3_close(db);
}

template <class F>
void refused_or_done(F f) {
  try {
    f();
  } catch (const std::exception&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string seed = seed_database();
  fuzz::reset_scratch();
  const fs::path run = fuzz::scratch() / "run";
  fuzz::write(run / "run.sqlite", seed);
  Input in{data, size};
  mutate(run / "run.sqlite", in);
  // run_info gathers the same values for text and --json (cli/ formats them): one call per listing.
  refused_or_done([&] { pipeline::run_info({run.string(), false, false, false}); });
  refused_or_done([&] { pipeline::run_info({run.string(), false, true, false}); });
  refused_or_done([&] { pipeline::run_info({run.string(), false, false, true}); });
  refused_or_done([&] { pipeline::run_report({run.string(), (fuzz::scratch() / "report.html").string()}); });
  for (const auto kind : {db::StageKind::kJoint, db::StageKind::kLastLayer}) {
    refused_or_done([&] {
      auto folder = pipeline::RunFolder::open(run, pipeline::Access::kWrite);
      folder.model_config();
      folder.class_names();
      const bool resume = in.byte() % 2 == 1;
      const pipeline::ElasticJob job{in.byte() % 2 ? "fuzz" : "", in.byte() % 3};  // braces: in order
      const auto stage = pipeline::resolve_stage(folder, kind, resume, "{}", "--resume", job);
      folder.absolute(stage.start_checkpoint);
    });
  }
  return 0;
}
