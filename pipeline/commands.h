#pragma once
// One run_<command>() per subcommand that is built. Each returns a plain report that cli/
// prints as text or JSON; progress goes to stderr. Errors are exceptions whose message names
// the file, option or value at fault. No LibTorch types here, so cli/ stays free of them.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "pipeline/config.h"
#include "pipeline/part_metrics.h"

namespace ppnet::pipeline {

/// "ppnet 0.1.0 (LibTorch 1.13.1, CPU)"-style line for --version.
std::string build_info();

struct WeightsReport {
  std::string arch;
  std::string file;
  std::string format;  // "safetensors" or "torch.save (zip)"
  int64_t tensors_loaded = 0;
  int64_t parameters = 0;
  std::vector<std::string> ignored;    // classification-head tensors left out
  std::vector<std::string> defaulted;  // optional buffers the file lacks
  int64_t out_channels = 0;            // backbone features at img_size: channels × grid × grid
  int64_t grid = 0;
  int64_t receptive_field = 0;  // pixels covered by one latent cell
  int img_size = 0;
  int threads = 0;
};

struct PrepareReport {
  std::string out;
  std::string source_kind;
  int classes = 0;
  std::map<std::string, int64_t> images;  // split → images listed (train: augmented outputs)
  int64_t source_images = 0;   // source images this run decoded
  int64_t files_written = 0;
  int64_t files_kept = 0;      // complete outputs of an earlier, interrupted run
  std::vector<std::string> part_names;  // with part annotations (DATA/parts/)
  int64_t annotated_images = 0;         // push/test/val images with part locations
  std::vector<std::string> failed;  // "path: reason", one per unreadable source image
  bool up_to_date = false;     // the same command had already finished: nothing to do
  double seconds = 0;
  int threads = 0;
};

/// Turns raw data into a prepared data folder (see shared/DESIGN.md §1). Metadata errors throw
/// before anything is written; unreadable images are reported in `failed` and the rest done.
/// Re-running the same command resumes; a different command on the same folder throws unless
/// config.force. Throws Interrupted after SIGINT/SIGTERM, leaving a resumable folder.
PrepareReport run_prepare(const PrepareConfig& config);

struct EpochSummary {
  int64_t epoch = 0;
  double train_loss = 0, train_accuracy = 0, eval_accuracy = 0, images_per_second = 0, seconds = 0;
  std::string eval_split;
};

struct TrainReport {
  std::string run;
  std::string stage;
  int64_t stage_id = 0;
  bool created_run = false;
  bool resumed = false;
  bool already_done = false;  // --resume on a finished stage: nothing to do
  int rank = 0, ranks = 1;    // data-parallel: this process and how many train together
  std::vector<EpochSummary> epochs;  // the epochs this invocation ran
  double seconds = 0;
};

/// Trains the stage into the run folder (created on first use), resumably; see
/// shared/DESIGN.md §3. Throws Interrupted after SIGINT/SIGTERM once a checkpoint is saved.
TrainReport run_train(const TrainConfig& config);

struct StageInfo {
  int64_t id = 0;
  std::string kind, status, started, finished;
  int64_t epochs_done = 0;
  double last_train_loss = 0, last_eval_accuracy = 0;
  std::string eval_split;
};

struct EpochInfo {
  int64_t stage_id = 0;
  std::string stage;
  int64_t epoch = 0;
  double train_loss = 0, train_cross_entropy = 0, train_cluster = 0, train_separation = 0,
         train_avg_separation = 0, train_accuracy = 0;
  std::string eval_split;
  double eval_cross_entropy = 0, eval_accuracy = 0, l1 = 0, prototype_distance = 0,
         images_per_second = 0, seconds = 0;
};

struct PrototypeInfo {
  int64_t prototype = 0, class_index = 0;
  std::string class_name, image_path, image_id;
  int64_t cell_h = 0, cell_w = 0;
  double distance_before = 0, distance_after = 0;
  std::vector<int64_t> rf, box;  // [x0, y0, x1, y1) in source-image pixels
  std::string patch_png, box_png, heatmap_png;  // relative to the run folder; empty if not written
};

struct InfoReport {
  std::string run;
  int64_t projection = 0;                // with --prototypes: the projection listed
  std::vector<PrototypeInfo> prototypes;
  std::string created;
  std::string ppnet_version;
  std::string model_json;
  std::string data_path;
  std::vector<StageInfo> stages;
  std::vector<EpochInfo> epochs;
};

/// What run.sqlite records about a run.
InfoReport run_info(const InfoConfig& config);

struct ProjectReport {
  std::string run;
  int rank = 0;  // data-parallel: ranks other than 0 only searched, and report nothing
  int64_t projection = 0;  // the projection's stage id: its images are in RUN/prototypes/<id>/
  int64_t prototypes = 0, projected = 0;  // projected: prototypes whose class has push images
  double mean_distance_before = 0;  // from a prototype to its nearest own-class patch
  double max_distance_after = 0;    // re-encoded source patch to the projected prototype (≈ 0)
  double images_per_second = 0;     // push images searched per second
  double seconds = 0;
  bool already_done = false;  // --resume found the latest stage a finished projection
};

/// Replaces every prototype by its nearest latent patch among the push images of its own class
/// and records where it came from (shared/DESIGN.md §4). The new prototypes and their records
/// commit together; an interrupted projection leaves the run as it was, and a re-run redoes it.
ProjectReport run_project(const ProjectConfig& config);

struct LastLayerReport {
  std::string run;
  int rank = 0;  // data-parallel: ranks other than 0 only computed features, and report nothing
  int64_t stage_id = 0;
  bool resumed = false, already_done = false;
  std::string solver;             // "prox" or "adam"
  std::vector<EpochSummary> epochs;
  // The convex objective F = mean CE + l1 · Σ|off-class w| on the cached training similarities,
  // before and after, and its first-order optimality residual (0 at the optimum); -1 with
  // --recompute, where there is no cache.
  double initial_objective = -1, objective = -1, residual = -1;
  int64_t iterations = 0;         // prox
  bool converged = false;         // prox: residual ≤ tolerance
  double off_class_sparsity = 0;  // share of off-class weights with |w| < 1e-3
  double off_class_zero = 0;      // share of off-class weights exactly 0
  double cache_seconds = 0;       // computing the similarity vectors once
  double solve_seconds = 0;       // the optimisation itself
  double seconds = 0;
};

/// Optimises the last layer alone (CE + l1 · off-class L1) with the features frozen, on
/// similarity vectors computed once: to the optimum by the proximal solver
/// (model/last_layer_solver.h), or by the reference's Adam epochs (which can also recompute the
/// similarities every epoch). Resumable.
LastLayerReport run_last_layer(const LastLayerConfig& config);

struct EvaluateReport {
  int rank = 0;  // data-parallel: ranks other than 0 only computed logits, and report nothing
  std::string run, split, checkpoint;
  int64_t images = 0;
  double accuracy = 0, top5_accuracy = 0;
  std::vector<std::string> class_names;
  std::vector<double> per_class_accuracy;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
  int64_t prototypes = 0;
  double off_class_sparsity = 0;       // share of off-class last-layer weights with |w| < 1e-3
  double own_class_strongest = 0;      // share of prototypes whose largest weight goes to their class
  std::set<std::string> metrics;       // the interpretability metrics measured, with their parameters
  double part_box = 0, consistency_threshold = 0, noise = 0;
  int purity_k = 0;
  PartMetricsResult parts;             // consistency, stability, pointing, purity
  int64_t annotated_images = 0;        // images of the split with part annotations
  // sparsity: last-layer weights exactly 0 and |w| ≥ 1e-3, and the distinct (image, cell)
  // patches the latest projection put prototypes on (−1 without a projection).
  double zero_weights = 0;
  int64_t nonzero_weights = 0, distinct_patches = -1;
  double images_per_second = 0, seconds = 0;
};

/// Evaluates the run's latest model on a split of the data, with the interpretability metrics
/// asked for; records the result in run.sqlite. Throws when part metrics are asked for and the
/// split has no part annotations.
EvaluateReport run_evaluate(const EvaluateConfig& config);
/// The interpretability metrics of `r` as a JSON object (text), as recorded with the evaluation.
std::string metrics_json(const EvaluateReport& r);

struct NearestPatchInfo {
  int64_t rank = 0, class_index = 0;
  std::string image_path, image_id;  // relative to the data folder; the source id
  int64_t cell_h = 0, cell_w = 0;
  double distance = 0, similarity = 0;
  std::vector<int64_t> box;  // high-activation box [x0, y0, x1, y1) in the image file's pixels
  std::string patch_png;     // relative to the run folder; empty when not written
};

struct PrototypeNeighbours {
  int64_t prototype = 0, class_index = 0;
  int64_t own_class = 0;  // how many of the nearest patches come from images of its class
  std::vector<NearestPatchInfo> nearest;
};

struct AnalyzeReport {
  std::string run, split;
  int64_t analysis = 0;  // its id in run.sqlite; pictures in RUN/analysis/<id>/
  int64_t k = 0, images = 0;
  std::vector<std::string> class_names;
  std::vector<PrototypeNeighbours> prototypes;
  double images_per_second = 0, seconds = 0;
};

/// For every prototype of the run's latest model, the k latent patches of the split nearest to
/// it, one per image, found in one batched pass; records them (with high-activation boxes and
/// pictures) in run.sqlite as one analysis. An interrupted analysis records nothing.
AnalyzeReport run_analyze(const AnalyzeConfig& config);

struct PrunedPrototype {
  int64_t prototype = 0, class_index = 0;  // index before the prune
  std::string reason, detail;              // "nearest" or "duplicate"; in words
};

struct PruneReport {
  std::string run;
  int64_t stage_id = 0;  // the prune stage recorded; 0 with --dry-run or when nothing was removed
  int64_t prototypes_before = 0, prototypes_after = 0;
  std::vector<PrunedPrototype> removed;
  std::vector<std::string> classes_left_without_prototypes;
  bool dry_run = false;
  double images_per_second = 0, seconds = 0;
};

/// Removes the prototypes whose k nearest push patches include fewer than `threshold` of their
/// own class (the reference's rule) and, with `duplicates`, prototypes projected onto the same
/// patch as another of their class: vectors, class identity and last-layer columns (a
/// duplicate's weights are added to the prototype it duplicates, so logits do not change). The
/// pruned model, its kept prototypes' records (renumbered) and the removed ones commit together
/// as a stage of kind "prune"; killed at any moment, the run stays as it was. Needs a projection.
PruneReport run_prune(const PruneConfig& config);

struct ExplainReport {
  std::string out;
  int64_t images = 0, explained = 0, kept = 0;  // kept: finished by an earlier run
  std::vector<std::string> failed;              // "path: reason"
  double images_per_second = 0, seconds = 0;
};

/// Explains every image under config.dir into config.out (shared/DESIGN.md §5).
ExplainReport run_explain(const ExplainConfig& config);

struct ReportResult {
  std::string path;
  double accuracy = -1;  // of the latest evaluation; -1 when there is none
  std::string split;
};

/// Writes one self-contained HTML page about a run: training curves (SVG), the latest
/// evaluation, and the prototype gallery grouped by class.
ReportResult run_report(const ReportConfig& config);

/// Loads `config.weights` into a fresh `config.arch` backbone; throws if it does not fit.
WeightsReport run_weights(const WeightsConfig& config);

}  // namespace ppnet::pipeline
