#include "db/run_store.h"

#include "base/log.h"
#include "base/names.h"

#include <algorithm>
#include <ctime>
#include <stdexcept>

namespace ppnet::db {

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

RunStore::RunStore(const std::string& path, bool read_only)
    : db_(path, run_migrations(), kRunApplicationId, read_only) {}

std::optional<RunRow> RunStore::run() {
  auto s = db_.prepare("SELECT created, ppnet_version, model_json, data_path, data_manifest FROM run");
  if (!s.step()) return std::nullopt;
  return RunRow{s.column_text(0), s.column_text(1), s.column_text(2), s.column_text(3), s.column_text(4)};
}

namespace {
// A file written without a known checksum forgets any earlier one of the same path.
void record_file(Database& db, const FileRow& f) {
  if (f.sha256.empty()) {
    db.prepare("DELETE FROM files WHERE path = ?").bind(1, f.path).run();
  } else {
    db.prepare("INSERT OR REPLACE INTO files (path, sha256) VALUES (?, ?)").bind(1, f.path).bind(2, f.sha256).run();
  }
}
}  // namespace

std::string RunStore::file_sha256(const std::string& path) {
  auto s = db_.prepare("SELECT sha256 FROM files WHERE path = ?");
  s.bind(1, path);
  return s.step() ? s.column_text(0) : std::string();
}

std::vector<FileRow> RunStore::files() {
  auto s = db_.prepare("SELECT path, sha256 FROM files ORDER BY path");
  std::vector<FileRow> out;
  while (s.step()) out.push_back({s.column_text(0), s.column_text(1)});
  return out;
}

namespace {
void insert_run(Database& db, const RunRow& r) {
  db.prepare("INSERT INTO run (id, created, ppnet_version, model_json, data_path, data_manifest) VALUES (1, ?, ?, ?, ?, ?)")
      .bind(1, r.created)
      .bind(2, r.ppnet_version)
      .bind(3, r.model_json)
      .bind(4, r.data_path)
      .bind(5, r.data_manifest)
      .run();
}
}  // namespace

void RunStore::create_run(const RunRow& r, const FileRow& init) {
  Transaction tx(db_);
  insert_run(db_, r);
  record_file(db_, init);
  tx.commit();
}

int64_t RunStore::create_imported_run(const RunRow& r, const StageRow& stage, const FileRow& checkpoint) {
  Transaction tx(db_);
  insert_run(db_, r);
  const std::string now = utc_now();
  db_.prepare("INSERT INTO stages (id, kind, status, started, finished, config_json, start_checkpoint) "
              "VALUES (1, 'import', 'done', ?, ?, ?, '')")
      .bind(1, stage.started.empty() ? now : stage.started)
      .bind(2, now)
      .bind(3, stage.config_json)
      .run();
  db_.prepare("INSERT INTO checkpoints (stage_id, epoch, batch, path, final, created) VALUES (1, 0, 0, ?, 1, ?)")
      .bind(1, checkpoint.path)
      .bind(2, now)
      .run();
  record_file(db_, checkpoint);
  tx.commit();
  return 1;
}

namespace {
constexpr const char* kKindNames[] = {"warm", "joint", "project", "last_layer", "prune", "import"};
constexpr const char* kStatusNames[] = {"running", "interrupted", "done", "failed"};

template <class Enum, size_t N>
Enum stored(const char* const (&names)[N], const std::string& name, const char* what) {
  try {
    return value_of<Enum>(names, name);
  } catch (const std::invalid_argument&) {
    throw std::runtime_error(std::string("run.sqlite: unknown stage ") + what + " '" + name + "'");
  }
}
}  // namespace

const char* to_string(StageKind kind) { return name_of(kKindNames, kind); }
const char* to_string(StageStatus status) { return name_of(kStatusNames, status); }
StageKind parse_stage_kind(const std::string& name) { return stored<StageKind>(kKindNames, name, "kind"); }
StageStatus parse_stage_status(const std::string& name) { return stored<StageStatus>(kStatusNames, name, "status"); }

namespace {
constexpr const char* kConceptKindNames[] = {"forbid", "remember"};
}  // namespace

const char* to_string(ConceptKind kind) { return name_of(kConceptKindNames, kind); }
ConceptKind parse_concept_kind(const std::string& name) {
  try {
    return value_of<ConceptKind>(kConceptKindNames, name);
  } catch (const std::invalid_argument&) {
    throw std::runtime_error("run.sqlite: unknown concept kind '" + name + "'");
  }
}

int64_t RunStore::begin_stage(StageKind kind, const std::string& config_json, const std::string& start_checkpoint,
                              const std::string& job) {
  db_.prepare("INSERT INTO stages (kind, status, started, config_json, start_checkpoint, job) "
              "VALUES (?, 'running', ?, ?, ?, ?)")
      .bind(1, to_string(kind))
      .bind(2, utc_now())
      .bind(3, config_json)
      .bind(4, start_checkpoint)
      .bind(5, job)
      .run();
  auto s = db_.prepare("SELECT last_insert_rowid()");
  s.step();
  const int64_t id = s.column_int(0);
  log::event("stage", {{"stage_id", id}, {"kind", to_string(kind)}, {"status", "running"}});
  return id;
}

void RunStore::set_stage_status(int64_t stage_id, StageStatus status) {
  db_.prepare("UPDATE stages SET status = ?, finished = CASE WHEN ? = 'done' THEN ? ELSE finished END "
              "WHERE id = ?")
      .bind(1, to_string(status))
      .bind(2, to_string(status))
      .bind(3, utc_now())
      .bind(4, stage_id)
      .run();
  log::event("stage", {{"stage_id", stage_id}, {"status", to_string(status)}});
}

namespace {
const char* const kStageColumns =
    "SELECT id, kind, status, started, COALESCE(finished, ''), config_json, start_checkpoint, job FROM stages ";
StageRow stage_of(const Statement& s) {
  return {s.column_int(0),  parse_stage_kind(s.column_text(1)), parse_stage_status(s.column_text(2)), s.column_text(3),
          s.column_text(4), s.column_text(5),                     s.column_text(6),                     s.column_text(7)};
}
const char* const kCheckpointColumns =
    "SELECT id, stage_id, epoch, batch, checkpoints.path, final, created, COALESCE(files.sha256, '') "
    "FROM checkpoints LEFT JOIN files ON files.path = checkpoints.path ";
CheckpointRow checkpoint_of(const Statement& s) {
  return {s.column_int(0),  s.column_int(1),       s.column_int(2),  s.column_int(3),
          s.column_text(4), s.column_int(5) != 0, s.column_text(6), s.column_text(7)};
}
}  // namespace

std::vector<StageRow> RunStore::stages() {
  auto s = db_.prepare(std::string(kStageColumns) + "ORDER BY id");
  std::vector<StageRow> out;
  while (s.step()) out.push_back(stage_of(s));
  return out;
}

std::optional<StageRow> RunStore::latest_stage() {
  auto s = db_.prepare(std::string(kStageColumns) + "ORDER BY id DESC LIMIT 1");
  if (!s.step()) return std::nullopt;
  return stage_of(s);
}

void RunStore::add_checkpoint(const CheckpointRow& c, const std::vector<int64_t>& superseded,
                              const std::optional<EpochRow>& e) {
  Transaction tx(db_);
  if (e) {
    db_.prepare("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(1, e->stage_id)
        .bind(2, e->epoch)
        .bind(3, e->train_loss)
        .bind(4, e->train_cross_entropy)
        .bind(5, e->train_cluster)
        .bind(6, e->train_separation)
        .bind(7, e->train_avg_separation)
        .bind(8, e->train_accuracy)
        .bind(9, e->eval_split)
        .bind(10, e->eval_cross_entropy)
        .bind(11, e->eval_cluster)
        .bind(12, e->eval_separation)
        .bind(13, e->eval_avg_separation)
        .bind(14, e->eval_accuracy)
        .bind(15, e->l1)
        .bind(16, e->prototype_distance)
        .bind(17, e->images_per_second)
        .bind(18, e->seconds)
        .run();
  }
  db_.prepare("INSERT OR REPLACE INTO checkpoints (stage_id, epoch, batch, path, final, created) "
              "VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, c.stage_id)
      .bind(2, c.epoch)
      .bind(3, c.batch)
      .bind(4, c.path)
      .bind(5, int64_t{c.final ? 1 : 0})
      .bind(6, utc_now())
      .run();
  record_file(db_, {c.path, c.sha256});
  auto forget_file = db_.prepare(
      "DELETE FROM files WHERE path = (SELECT path FROM checkpoints WHERE id = ?) AND path <> ?");
  auto forget = db_.prepare("DELETE FROM checkpoints WHERE id = ?");
  for (int64_t id : superseded) {
    forget_file.bind(1, id).bind(2, c.path).run();
    forget.bind(1, id).run();
  }
  tx.commit();
  if (e) {
    log::event("epoch", {{"stage_id", e->stage_id},
                         {"epoch", e->epoch + 1},
                         {"train_loss", e->train_loss},
                         {"train_accuracy", e->train_accuracy},
                         {"eval_split", e->eval_split},
                         {"eval_accuracy", e->eval_accuracy},
                         {"images_per_second", e->images_per_second},
                         {"seconds", e->seconds}});
  }
  log::event("checkpoint", {{"stage_id", c.stage_id},
                            {"path", c.path},
                            {"epoch", c.epoch},
                            {"batch", c.batch},
                            {"final", c.final},
                            {"sha256", c.sha256}});
}

std::vector<CheckpointRow> RunStore::checkpoints(int64_t stage_id) {
  auto s = db_.prepare(std::string(kCheckpointColumns) + "WHERE stage_id = ? ORDER BY id");
  s.bind(1, stage_id);
  std::vector<CheckpointRow> out;
  while (s.step()) out.push_back(checkpoint_of(s));
  return out;
}

std::optional<CheckpointRow> RunStore::latest_final_checkpoint() {
  auto s = db_.prepare(std::string(kCheckpointColumns) + "WHERE final = 1 ORDER BY id DESC LIMIT 1");
  if (!s.step()) return std::nullopt;
  return checkpoint_of(s);
}

std::vector<EpochRow> RunStore::epochs(std::optional<int64_t> stage_id) {
  auto s = db_.prepare(std::string("SELECT * FROM epochs ") + (stage_id ? "WHERE stage_id = ? " : "") +
                       "ORDER BY stage_id, epoch");
  if (stage_id) s.bind(1, *stage_id);
  std::vector<EpochRow> out;
  while (s.step()) {
    EpochRow e;
    e.stage_id = s.column_int(0);
    e.epoch = s.column_int(1);
    e.train_loss = s.column_double(2);
    e.train_cross_entropy = s.column_double(3);
    e.train_cluster = s.column_double(4);
    e.train_separation = s.column_double(5);
    e.train_avg_separation = s.column_double(6);
    e.train_accuracy = s.column_double(7);
    e.eval_split = s.column_text(8);
    e.eval_cross_entropy = s.column_double(9);
    e.eval_cluster = s.column_double(10);
    e.eval_separation = s.column_double(11);
    e.eval_avg_separation = s.column_double(12);
    e.eval_accuracy = s.column_double(13);
    e.l1 = s.column_double(14);
    e.prototype_distance = s.column_double(15);
    e.images_per_second = s.column_double(16);
    e.seconds = s.column_double(17);
    out.push_back(e);
  }
  return out;
}

namespace {
void insert_prototypes(Database& db, int64_t stage_id, const std::vector<PrototypeRow>& rows) {
  auto insert = db.prepare("INSERT INTO prototypes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  for (const auto& r : rows) {
    insert.bind(1, stage_id).bind(2, r.prototype).bind(3, r.class_index).bind(4, r.image_path).bind(5, r.image_id);
    insert.bind(6, r.image_width).bind(7, r.image_height).bind(8, r.cell_h).bind(9, r.cell_w);
    insert.bind(10, r.distance_before).bind(11, r.distance_after);
    for (int k = 0; k < 4; ++k) insert.bind(12 + k, r.rf[k]).bind(16 + k, r.box[k]);
    insert.run();
  }
}
}  // namespace

void RunStore::finish_projection(int64_t stage_id, const std::vector<PrototypeRow>& rows,
                                 const CheckpointRow& c) {
  Transaction tx(db_);
  db_.prepare("DELETE FROM prototypes WHERE stage_id = ?").bind(1, stage_id).run();
  insert_prototypes(db_, stage_id, rows);
  db_.prepare("INSERT OR REPLACE INTO checkpoints (stage_id, epoch, batch, path, final, created) VALUES (?, 0, 0, ?, 1, ?)")
      .bind(1, stage_id)
      .bind(2, c.path)
      .bind(3, utc_now())
      .run();
  record_file(db_, {c.path, c.sha256});
  db_.prepare("UPDATE stages SET status = 'done', finished = ? WHERE id = ?").bind(1, utc_now()).bind(2, stage_id).run();
  tx.commit();
}

std::vector<PrototypeRow> RunStore::prototypes(int64_t stage_id) {
  auto s = db_.prepare("SELECT * FROM prototypes WHERE stage_id = ? ORDER BY prototype");
  s.bind(1, stage_id);
  std::vector<PrototypeRow> out;
  while (s.step()) {
    PrototypeRow r;
    r.stage_id = s.column_int(0);
    r.prototype = s.column_int(1);
    r.class_index = s.column_int(2);
    r.image_path = s.column_text(3);
    r.image_id = s.column_text(4);
    r.image_width = s.column_int(5);
    r.image_height = s.column_int(6);
    r.cell_h = s.column_int(7);
    r.cell_w = s.column_int(8);
    r.distance_before = s.column_double(9);
    r.distance_after = s.column_double(10);
    for (int k = 0; k < 4; ++k) {
      r.rf[k] = s.column_int(11 + k);
      r.box[k] = s.column_int(15 + k);
    }
    out.push_back(r);
  }
  return out;
}

std::optional<int64_t> RunStore::latest_projection() {
  auto s = db_.prepare("SELECT id FROM stages WHERE kind IN ('project', 'prune') AND status = 'done' ORDER BY id DESC LIMIT 1");
  if (!s.step()) return std::nullopt;
  return s.column_int(0);
}

void RunStore::add_evaluation(const EvaluationRow& e) {
  db_.prepare("INSERT INTO evaluations (created, checkpoint, split, images, accuracy, top5_accuracy, details_json) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)")
      .bind(1, utc_now())
      .bind(2, e.checkpoint)
      .bind(3, e.split)
      .bind(4, e.images)
      .bind(5, e.accuracy)
      .bind(6, e.top5_accuracy)
      .bind(7, e.details_json)
      .run();
}

std::vector<EvaluationRow> RunStore::evaluations() {
  auto s = db_.prepare("SELECT id, created, checkpoint, split, images, accuracy, top5_accuracy, details_json "
                       "FROM evaluations ORDER BY id");
  std::vector<EvaluationRow> out;
  while (s.step()) {
    out.push_back({s.column_int(0), s.column_text(1), s.column_text(2), s.column_text(3), s.column_int(4),
                   s.column_double(5), s.column_double(6), s.column_text(7)});
  }
  return out;
}

int64_t RunStore::next_stage_id() {
  auto s = db_.prepare("SELECT COALESCE(MAX(id), 0) + 1 FROM stages");
  s.step();
  return s.column_int(0);
}

void RunStore::add_prune(const StageRow& stage, const std::vector<PrototypeRow>& kept,
                         const std::vector<PrunedRow>& removed, const FileRow& checkpoint) {
  Transaction tx(db_);
  const std::string now = utc_now();
  db_.prepare("INSERT INTO stages (id, kind, status, started, finished, config_json, start_checkpoint) "
              "VALUES (?, 'prune', 'done', ?, ?, ?, ?)")
      .bind(1, stage.id)
      .bind(2, stage.started.empty() ? now : stage.started)
      .bind(3, now)
      .bind(4, stage.config_json)
      .bind(5, stage.start_checkpoint)
      .run();
  insert_prototypes(db_, stage.id, kept);
  auto insert = db_.prepare("INSERT INTO pruned VALUES (?, ?, ?, ?, ?)");
  for (const auto& r : removed) {
    insert.bind(1, stage.id).bind(2, r.prototype).bind(3, r.class_index).bind(4, r.reason).bind(5, r.detail).run();
  }
  db_.prepare("INSERT INTO checkpoints (stage_id, epoch, batch, path, final, created) VALUES (?, 0, 0, ?, 1, ?)")
      .bind(1, stage.id)
      .bind(2, checkpoint.path)
      .bind(3, now)
      .run();
  record_file(db_, checkpoint);
  tx.commit();
}

std::vector<PrunedRow> RunStore::pruned(int64_t stage_id) {
  auto s = db_.prepare("SELECT prototype, class_index, reason, detail FROM pruned WHERE stage_id = ? ORDER BY prototype");
  s.bind(1, stage_id);
  std::vector<PrunedRow> out;
  while (s.step()) out.push_back({s.column_int(0), s.column_int(1), s.column_text(2), s.column_text(3)});
  return out;
}

int64_t RunStore::next_analysis_id() {
  auto s = db_.prepare("SELECT COALESCE(MAX(id), 0) + 1 FROM analyses");
  s.step();
  return s.column_int(0);
}

void RunStore::add_analysis(const AnalysisRow& a, const std::vector<NearestPatchRow>& rows) {
  Transaction tx(db_);
  auto insert = db_.prepare(
      "INSERT INTO analyses (id, created, checkpoint, projection, split, k, images, pictures, seconds, attribution) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, a.id).bind(2, utc_now()).bind(3, a.checkpoint);
  if (a.projection) {
    insert.bind(4, *a.projection);
  } else {
    insert.bind_null(4);
  }
  insert.bind(5, a.split).bind(6, a.k).bind(7, a.images).bind(8, a.pictures).bind(9, a.seconds).bind(10, a.attribution);
  insert.run();
  auto row = db_.prepare("INSERT INTO nearest_patches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  for (const auto& r : rows) {
    row.bind(1, a.id).bind(2, r.prototype).bind(3, r.rank).bind(4, r.image_path).bind(5, r.image_id);
    row.bind(6, r.class_index).bind(7, r.cell_h).bind(8, r.cell_w).bind(9, r.distance).bind(10, r.similarity);
    for (int k = 0; k < 4; ++k) row.bind(11 + k, r.box[k]);
    if (r.precision) {
      row.bind(15, *r.precision);
    } else {
      row.bind_null(15);
    }
    row.run();
  }
  tx.commit();
}

std::optional<AnalysisRow> RunStore::latest_analysis() {
  auto s = db_.prepare(
      "SELECT id, created, checkpoint, projection, split, k, images, pictures, seconds, attribution FROM analyses "
      "ORDER BY id DESC LIMIT 1");
  if (!s.step()) return std::nullopt;
  AnalysisRow a;
  a.id = s.column_int(0);
  a.created = s.column_text(1);
  a.checkpoint = s.column_text(2);
  if (!s.column_is_null(3)) a.projection = s.column_int(3);
  a.split = s.column_text(4);
  a.k = s.column_int(5);
  a.images = s.column_int(6);
  a.pictures = s.column_text(7);
  a.seconds = s.column_double(8);
  a.attribution = s.column_text(9);
  return a;
}

std::vector<NearestPatchRow> RunStore::nearest_patches(int64_t analysis_id) {
  auto s = db_.prepare(
      "SELECT prototype, rank, image_path, image_id, class_index, cell_h, cell_w, distance, similarity, "
      "box_x0, box_y0, box_x1, box_y1, mask_precision FROM nearest_patches WHERE analysis_id = ? ORDER BY prototype, rank");
  s.bind(1, analysis_id);
  std::vector<NearestPatchRow> out;
  while (s.step()) {
    NearestPatchRow r;
    r.prototype = s.column_int(0);
    r.rank = s.column_int(1);
    r.image_path = s.column_text(2);
    r.image_id = s.column_text(3);
    r.class_index = s.column_int(4);
    r.cell_h = s.column_int(5);
    r.cell_w = s.column_int(6);
    r.distance = s.column_double(7);
    r.similarity = s.column_double(8);
    for (int k = 0; k < 4; ++k) r.box[k] = s.column_int(9 + k);
    if (!s.column_is_null(13)) r.precision = s.column_double(13);
    out.push_back(std::move(r));
  }
  return out;
}

int64_t RunStore::add_concept(const ConceptRow& c) {
  Transaction tx(db_);
  auto s = db_.prepare(
      "INSERT INTO concepts (kind, class_index, created, origin, image_path, image_width, image_height, "
      "box_x0, box_y0, box_x1, box_y1, pixels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.bind(1, to_string(c.kind));
  if (c.class_index) {
    s.bind(2, *c.class_index);
  } else {
    s.bind_null(2);
  }
  s.bind(3, utc_now()).bind(4, c.origin).bind(5, c.image_path).bind(6, c.image_width).bind(7, c.image_height);
  for (int k = 0; k < 4; ++k) s.bind(8 + k, c.box[k]);
  s.bind_blob(12, c.pixels);
  s.run();
  auto id = db_.prepare("SELECT last_insert_rowid()");
  id.step();
  const int64_t out = id.column_int(0);
  tx.commit();
  return out;
}

std::vector<ConceptRow> RunStore::concepts(const std::optional<std::vector<int64_t>>& ids) {
  auto s = db_.prepare(
      "SELECT id, kind, class_index, created, origin, image_path, image_width, image_height, box_x0, box_y0, box_x1, "
      "box_y1, pixels FROM concepts ORDER BY id");
  std::vector<ConceptRow> out;
  while (s.step()) {
    ConceptRow c;
    c.id = s.column_int(0);
    if (ids && std::find(ids->begin(), ids->end(), c.id) == ids->end()) continue;
    c.kind = parse_concept_kind(s.column_text(1));
    if (!s.column_is_null(2)) c.class_index = s.column_int(2);
    c.created = s.column_text(3);
    c.origin = s.column_text(4);
    c.image_path = s.column_text(5);
    c.image_width = s.column_int(6);
    c.image_height = s.column_int(7);
    for (int k = 0; k < 4; ++k) c.box[k] = s.column_int(8 + k);
    c.pixels = s.column_blob(12);
    out.push_back(std::move(c));
  }
  return out;
}

bool RunStore::remove_concept(int64_t id, ConceptKind kind) {
  Transaction tx(db_);
  db_.prepare("DELETE FROM concepts WHERE id = ? AND kind = ?").bind(1, id).bind(2, to_string(kind)).run();
  auto changed = db_.prepare("SELECT changes()");
  changed.step();
  const bool removed = changed.column_int(0) > 0;
  tx.commit();
  return removed;
}

}  // namespace ppnet::db
