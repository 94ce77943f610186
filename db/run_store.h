#pragma once
// run.sqlite: the run, its stages, one row per epoch, and the checkpoints written. Plain row
// structs in and out; all SQL of a run lives here.

#include <optional>
#include <string>
#include <vector>

#include "db/database.h"

namespace ppnet::db {

struct RunRow {
  std::string created;        // ISO 8601 UTC
  std::string ppnet_version;
  std::string model_json;     // the model configuration every command of the run uses
  std::string data_path;      // the prepared data folder the run was created with
  std::string data_manifest;  // its manifest.json, as it was then
};

/// What a stage of a run does; stored as its name ("warm", "joint", "project", "last_layer",
/// "prune", "import": a model made elsewhere, the first stage of a run `ppnet import` creates).
enum class StageKind { kWarm, kJoint, kProject, kLastLayer, kPrune, kImport };
/// Where a stage stands; stored as its name ("running", "interrupted", "done", "failed": diverged).
enum class StageStatus { kRunning, kInterrupted, kDone, kFailed };

const char* to_string(StageKind kind);
const char* to_string(StageStatus status);
/// The kind or status a stored name stands for; throws std::runtime_error naming the value when
/// it is none of them (a database edited by hand, or written by a newer ppnet).
StageKind parse_stage_kind(const std::string& name);
StageStatus parse_stage_status(const std::string& name);

struct StageRow {
  int64_t id = 0;
  StageKind kind = StageKind::kWarm;
  StageStatus status = StageStatus::kRunning;
  std::string started, finished;
  std::string config_json;       // the options this stage ran with
  std::string start_checkpoint;  // the weights it started from (path relative to the run)
  std::string job;               // the torchrun job that began it ('' outside torchrun)
  /// Running or interrupted: it must be resumed before another stage begins. A failed stage
  /// holds up nothing.
  bool unfinished() const { return status == StageStatus::kRunning || status == StageStatus::kInterrupted; }
  /// A stage that trained the prototypes (warm or joint).
  bool trains() const { return kind == StageKind::kWarm || kind == StageKind::kJoint; }
};

/// One epoch of one stage: training means over the epoch and an evaluation afterwards.
struct EpochRow {
  int64_t stage_id = 0;
  int64_t epoch = 0;  // 0-based within the stage
  double train_loss = 0, train_cross_entropy = 0, train_cluster = 0, train_separation = 0,
         train_avg_separation = 0, train_accuracy = 0;
  std::string eval_split;  // "val" or "test"
  double eval_cross_entropy = 0, eval_cluster = 0, eval_separation = 0, eval_avg_separation = 0,
         eval_accuracy = 0;
  double l1 = 0;                  // off-class last-layer weights
  double prototype_distance = 0;  // mean pairwise squared distance between prototypes
  double images_per_second = 0;   // training images
  double seconds = 0;             // wall time of the epoch, evaluation included
};

struct CheckpointRow {
  int64_t id = 0;
  int64_t stage_id = 0;
  int64_t epoch = 0;  // epochs completed when it was written
  int64_t batch = 0;  // batches of the next epoch already done (0 at an epoch's end)
  std::string path;   // relative to the run folder
  bool final = false; // the stage's last checkpoint
  std::string created;
  std::string sha256;  // of the file, recorded with the row (empty: written before ppnet recorded it)
};

/// A file the run keeps (a checkpoint) and the SHA-256 of its bytes as written, so that damage
/// on disk is noticed when it is read (table `files`).
struct FileRow {
  std::string path;  // relative to the run folder
  std::string sha256;
};

/// Where projection put one prototype: its source patch and the boxes around it, in pixels
/// of the source image file ([x0, y0, x1, y1), exclusive ends).
struct PrototypeRow {
  int64_t stage_id = 0;  // the projection
  int64_t prototype = 0;
  int64_t class_index = 0;
  std::string image_path;  // relative to the data folder
  std::string image_id;    // the source id in the data's lists
  int64_t image_width = 0, image_height = 0;
  int64_t cell_h = 0, cell_w = 0;
  double distance_before = 0, distance_after = 0;
  int64_t rf[4] = {0, 0, 0, 0};
  int64_t box[4] = {0, 0, 0, 0};  // high-activation box
};

struct EvaluationRow {
  int64_t id = 0;
  std::string created;
  std::string checkpoint;  // the model evaluated
  std::string split;
  int64_t images = 0;
  double accuracy = 0, top5_accuracy = 0;
  std::string details_json;  // per-class accuracy, confusion matrix, last-layer statistics
};

/// A prototype a prune stage removed, by its index before the prune.
struct PrunedRow {
  int64_t prototype = 0, class_index = 0;
  std::string reason;  // "nearest": too few of its nearest push patches from its class; "duplicate"
  std::string detail;  // in words, with the numbers
};

/// One global analysis (ppnet analyze): the model it looked at and the split it searched.
struct AnalysisRow {
  int64_t id = 0;
  std::string created;
  std::string checkpoint;
  std::optional<int64_t> projection;  // the latest projection when it ran
  std::string split;
  int64_t k = 0, images = 0;
  std::string pictures;  // folder of its PNGs, relative to the run; empty when none were written
  double seconds = 0;
  std::string attribution = "upsample";  // how the boxes were found (pipeline/stages/attribution.h)
};

/// One of a prototype's k nearest patches in an analysis (rank 0 is the nearest).
struct NearestPatchRow {
  int64_t prototype = 0, rank = 0;
  std::string image_path;  // relative to the data folder
  std::string image_id;
  int64_t class_index = 0;
  int64_t cell_h = 0, cell_w = 0;
  double distance = 0, similarity = 0;
  int64_t box[4] = {0, 0, 0, 0};  // high-activation box in the image file's pixels
  std::optional<double> precision;  // share of the map's top 5 % inside the object mask
};

/// What a user marked a concept as (ppnet forbid / remember); stored by name.
enum class ConceptKind { kForbid, kRemember };
const char* to_string(ConceptKind kind);
/// Throws std::runtime_error naming the value when it is neither "forbid" nor "remember".
ConceptKind parse_concept_kind(const std::string& name);

/// A concept: a region of an image whose look the prototypes of a class (or of every class)
/// must not match (forbid) or must keep matching (remember). The region's pixels are kept, so
/// the concept outlives the data folder and re-training of the backbone.
struct ConceptRow {
  int64_t id = 0;
  ConceptKind kind = ConceptKind::kForbid;
  std::optional<int64_t> class_index;  // empty: every class's prototypes
  std::string created;
  std::string origin;      // in words: "prototype 3 of projection #4", or the image file given
  std::string image_path;  // the image it was cut from, as given (relative to the data folder for a prototype)
  int64_t image_width = 0, image_height = 0;  // that image's size
  int64_t box[4] = {0, 0, 0, 0};  // the region in that image's pixels, [x0, y0, x1, y1)
  std::string pixels;      // the region as a PNG file's bytes (box size)
};

/// Owns run.sqlite. Every method is one transaction; errors throw std::runtime_error.
class RunStore {
 public:
  /// Opens or creates `path`, migrating the schema to the latest version.
  /// `read_only`: see Database (a run folder that cannot be written, opened to be read).
  explicit RunStore(const std::string& path, bool read_only = false);

  std::optional<RunRow> run();
  /// Creates the run with the file its model starts from (checkpoints/init.pt).
  void create_run(const RunRow& run, const FileRow& init);
  /// Creates the run from a model made elsewhere, in one transaction: the run, its first stage
  /// (kind import, done, `stage.config_json` saying what was imported) and that stage's final
  /// checkpoint. Returns the stage's id.
  int64_t create_imported_run(const RunRow& run, const StageRow& stage, const FileRow& checkpoint);

  /// The SHA-256 recorded for kept file `path` (relative to the run); empty when none is.
  std::string file_sha256(const std::string& path);
  /// Every file with a recorded checksum.
  std::vector<FileRow> files();

  /// A new running stage of `kind`, begun by torchrun job `job` ('' outside torchrun).
  int64_t begin_stage(StageKind kind, const std::string& config_json, const std::string& start_checkpoint,
                      const std::string& job = "");
  void set_stage_status(int64_t stage_id, StageStatus status);
  std::vector<StageRow> stages();
  std::optional<StageRow> latest_stage();

  /// Records a checkpoint (and its file's checksum) and forgets `superseded` (earlier non-final
  /// checkpoints of the same stage, and their files' checksums), in one transaction; with
  /// `epoch_row` the epoch's metrics go in the same one.
  void add_checkpoint(const CheckpointRow& checkpoint, const std::vector<int64_t>& superseded,
                      const std::optional<EpochRow>& epoch_row);
  std::vector<CheckpointRow> checkpoints(int64_t stage_id);
  /// The final checkpoint of the most recent finished stage, if any.
  std::optional<CheckpointRow> latest_final_checkpoint();

  std::vector<EpochRow> epochs(std::optional<int64_t> stage_id = std::nullopt);

  /// Commits a projection: its prototype rows, its final checkpoint (with its checksum) and the
  /// stage's "done", all in one transaction (rows of an earlier attempt at the same stage are
  /// replaced).
  void finish_projection(int64_t stage_id, const std::vector<PrototypeRow>& rows, const CheckpointRow& checkpoint);
  std::vector<PrototypeRow> prototypes(int64_t stage_id);
  /// The stage id of the latest record of where the prototypes came from: the most recent
  /// finished projection or prune (a prune re-records the prototypes it keeps, renumbered).
  std::optional<int64_t> latest_projection();

  /// The id the next stage will get.
  int64_t next_stage_id();
  /// Records a whole prune stage in one transaction: the stage (id `stage.id`, done), the kept
  /// prototypes' rows (with that stage id), the removed ones, and its final checkpoint.
  void add_prune(const StageRow& stage, const std::vector<PrototypeRow>& kept, const std::vector<PrunedRow>& removed,
                 const FileRow& checkpoint);
  std::vector<PrunedRow> pruned(int64_t stage_id);

  void add_evaluation(const EvaluationRow& row);
  std::vector<EvaluationRow> evaluations();

  /// The id the next analysis will get (its pictures folder is named before it commits).
  int64_t next_analysis_id();
  /// Records an analysis (with `analysis.id`) and its rows in one transaction.
  void add_analysis(const AnalysisRow& analysis, const std::vector<NearestPatchRow>& rows);
  std::optional<AnalysisRow> latest_analysis();
  std::vector<NearestPatchRow> nearest_patches(int64_t analysis_id);

  /// Records a concept; returns its id.
  int64_t add_concept(const ConceptRow& concept_row);
  /// All concepts, by id; with `ids`, only those (missing ids are left out).
  std::vector<ConceptRow> concepts(const std::optional<std::vector<int64_t>>& ids = std::nullopt);
  /// Removes concept `id` when it is of `kind`; false when there is no such concept.
  bool remove_concept(int64_t id, ConceptKind kind);

  Database& database() { return db_; }

 private:
  Database db_;
};

/// The current time as "2026-11-26T14:32:50Z".
std::string utc_now();

}  // namespace ppnet::db
