#include <oneapi/tbb/parallel_for.h>
#include <torch/torch.h>

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "model/receptive_field.h"
#include "base/atomic_file.h"
#include "pipeline/stages/project.h"
#include "pipeline/data/masks.h"
#include "pipeline/stages/handover.h"
#include "pipeline/data/image_file.h"
#include "pipeline/stages/image_data.h"
#include "pipeline/stages/concept_inputs.h"
#include "base/interrupt.h"
#include "base/progress.h"
#include "pipeline/render/heatmap.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/stages/feature_batch.h"
#include "pipeline/runtime/runtime.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const char* const kStopped = "interrupted; the run is unchanged: run 'ppnet project' again";

// Each prototype's nearest latent patch among the push images of its class, so far.
struct Nearest {
  torch::Tensor distance;  // P, +inf where none yet
  torch::Tensor key;       // P int64: push index × H·W + cell (the order of a sequential pass), or kNone
  torch::Tensor z;         // P×D: the patch
  torch::Tensor latent;    // P×D×H×W: the encoded source image (for its heatmap)
};
constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

// 1. The search over the push images `mine` (indices into `push`, in whole batches). Ties go to
//    the first patch of a sequential pass, as torch::min does within a batch.
// With PushRegion::kObject, `region` is B×G×G: true where a cell's receptive-field centre lies
// on the image's object mask, or the image has no mask.
torch::Tensor push_region_of(const Batch& b, const model::ReceptiveField& rf, int64_t img_size) {
  const auto centre = model::cell_centres(rf, img_size);
  const auto at = torch::tensor(centre, torch::kInt64);
  const auto on_object = b.masks.index_select(1, at).index_select(2, at).gt(0.5);  // B×G×G
  return on_object.logical_or(b.has_mask.logical_not().view({-1, 1, 1}));
}

// The latent cells of the run's forbidden concepts (pipeline/stages/concept_inputs.h) that push
// candidates must not resemble: M×D vectors, the class each concerns (−1: all) and the
// similarity above which a candidate is too like one. Empty vectors: none.
struct Forbidden {
  torch::Tensor cells;    // M×D float
  torch::Tensor classes;  // M int64
  double threshold = 0;
  int64_t concepts = 0;

  nlohmann::json to_json() const {
    const auto c = cells.cpu().contiguous(), k = classes.cpu().contiguous();
    return {{"cells", std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel())},
            {"dim", cells.size(1)},
            {"classes", std::vector<int64_t>(k.data_ptr<int64_t>(), k.data_ptr<int64_t>() + k.numel())},
            {"threshold", threshold},
            {"concepts", concepts}};
  }
  static Forbidden from_json(const nlohmann::json& j) {
    Forbidden f;
    const auto cells = j.at("cells").get<std::vector<float>>();
    const auto classes = j.at("classes").get<std::vector<int64_t>>();
    f.cells = torch::tensor(cells).view({static_cast<int64_t>(classes.size()), j.at("dim").get<int64_t>()});
    f.classes = torch::tensor(classes, torch::kInt64);
    f.threshold = j.at("threshold").get<double>();
    f.concepts = j.at("concepts").get<int64_t>();
    return f;
  }
};

// The cells of the forbidden concepts under the model being projected.
Forbidden forbidden_cells(model::ProtoPNetImpl& net, const std::vector<db::ConceptRow>& concepts, const ModelInput& input,
                          std::optional<double> threshold, torch::Device device) {
  Forbidden f;
  std::vector<db::ConceptRow> forbidden;
  for (const auto& k : concepts) {
    if (k.kind == db::ConceptKind::kForbid) forbidden.push_back(k);
  }
  f.concepts = static_cast<int64_t>(forbidden.size());
  f.threshold = threshold ? *threshold : net.similarity(torch::ones({1}, torch::kFloat)).item<double>();
  const int64_t D = net.options().prototype_dim;
  if (forbidden.empty()) {
    f.cells = torch::zeros({0, D});
    f.classes = torch::zeros({0}, torch::kInt64);
    return f;
  }
  const auto k = concept_inputs(forbidden, input, net.receptive_field(input.size));
  const auto latent = net.latent(k.images.to(device)).to(torch::kFloat);
  const auto region = concept_region(latent, net.latent(k.occluded.to(device)), k.centred).cpu();  // N×G×G
  const auto at = region.nonzero();  // rows: concept, h, w
  const auto cells = latent.cpu().permute({0, 2, 3, 1});  // N×G×G×D
  f.cells = cells.index({at.select(1, 0), at.select(1, 1), at.select(1, 2)}).contiguous();
  f.classes = k.classes.index_select(0, at.select(1, 0)).contiguous();
  return f;
}

// B×P×G×G: true where a cell of a batch is too like a forbidden concept of the prototype's class.
torch::Tensor too_like_forbidden(const Forbidden& f, const torch::Tensor& latent, const torch::Tensor& proto_class,
                                 model::ProtoPNetImpl& net) {
  const int64_t B = latent.size(0), D = latent.size(1), G = latent.size(2), P = proto_class.size(0);
  const auto device = latent.device();
  const auto z = latent.permute({0, 2, 3, 1}).reshape({B * G * G, D});
  const auto cells = f.cells.to(device);
  const auto d2 = (z.pow(2).sum(1, true) - 2 * z.matmul(cells.t()) + cells.pow(2).sum(1).view({1, -1})).clamp_min(0);
  const auto near = net.similarity(d2).gt(f.threshold).to(torch::kFloat);  // (B·G·G)×M
  const auto k = f.classes.to(device).view({-1, 1});
  const auto applies = k.lt(0).logical_or(k.eq(proto_class.view({1, P}))).to(torch::kFloat);  // M×P
  return near.matmul(applies).gt(0).view({B, G, G, P}).permute({0, 3, 1, 2});
}

Nearest search(model::ProtoPNetImpl& net, const fs::path& data, const std::vector<ListEntry>& push,
               const std::vector<int64_t>& mine, const ModelInput& input, int batch_size, torch::Device device,
               bool show_progress, PushRegion region, const Forbidden& forbidden) {
  const int64_t P = net.num_prototypes(), D = net.options().prototype_dim;
  const auto rf = net.receptive_field(input.size);
  const int64_t G = rf.n, HW = G * G;
  const auto on = torch::TensorOptions().device(device);
  Nearest n{torch::full({P}, std::numeric_limits<float>::infinity(), on), torch::full({P}, kNone, on.dtype(torch::kInt64)),
            torch::zeros({P, D}, on), torch::zeros({P, D, G, G}, on)};
  const auto proto_class = net.prototype_class_identity().argmax(1);  // P
  const auto index_of = torch::tensor(mine, torch::kInt64).to(device);  // local position → push index
  BatchLoader loader(data, push, mine, input, batch_size, 0, 3, false, {},
                     region == PushRegion::kObject ? std::vector<bool>(push.size(), true) : std::vector<bool>());
  auto progress = show_progress ? std::make_unique<Progress>("project: search", mine.size()) : nullptr;
  Batch b;
  int64_t at = 0;
  while (loader.next(&b)) {
    const auto x = b.images.to(device), y = b.labels.to(device);
    const auto act = net.activations(x);
    const auto latent = act.latent.to(torch::kFloat);  // bfloat16/half under --amp
    const int64_t B = x.size(0);
    // Other classes' images are out of reach: their distances become +inf; so do cells off the
    // object with --push-region object.
    const auto own = y.view({B, 1}).eq(proto_class.view({1, P}));  // B×P
    auto d = act.distances.masked_fill(own.logical_not().view({B, P, 1, 1}), INFINITY);
    if (region == PushRegion::kObject) {
      d = d.masked_fill(push_region_of(b, rf, input.size).logical_not().to(device).view({B, 1, G, G}), INFINITY);
    }
    if (forbidden.cells.size(0) > 0) d = d.masked_fill(too_like_forbidden(forbidden, latent, proto_class, net), INFINITY);
    const auto [val, idx] = d.permute({1, 0, 2, 3}).reshape({P, B * HW}).min(1);  // P, P
    const auto better = val < n.distance;
    const auto in_batch = idx.div(HW, "floor");
    n.distance = torch::where(better, val, n.distance);
    n.key = torch::where(better, index_of.index_select(0, in_batch + at) * HW + idx.remainder(HW), n.key);
    n.z = torch::where(better.view({P, 1}),
                       latent.permute({0, 2, 3, 1}).reshape({B * HW, D}).index_select(0, idx), n.z);
    const auto improved = better.nonzero().view(-1);  // only those prototypes' maps change
    n.latent.index_copy_(0, improved, latent.index_select(0, in_batch.index_select(0, improved)));
    at += B;
    if (progress) progress->advance(static_cast<uint64_t>(B));
    stop_if_requested(kStopped);
  }
  return n;
}

// The ranks' searches as one: the smallest distance, among equals the smallest key (the one a
// single process finds first), and that rank's patch and map. Exact: the others add zeros.
void merge_across_ranks(Distributed& dist, Nearest& n) {
  const auto own_distance = n.distance.cpu(), own_key = n.key.cpu();
  std::vector<torch::Tensor> d = {own_distance.clone()};  // reduced in place: not this rank's own
  dist.all_reduce_min(d, "the projection's search");
  std::vector<torch::Tensor> key = {torch::where(own_distance == d[0], own_key, kNone)};
  dist.all_reduce_min(key, "the projection's search");
  const auto mine = own_key.eq(key[0]).logical_and(key[0].ne(kNone)).to(n.z.device());
  const int64_t P = n.z.size(0);
  std::vector<torch::Tensor> found = {torch::where(mine.view({P, 1}), n.z, torch::zeros_like(n.z)),
                                      torch::where(mine.view({P, 1, 1, 1}), n.latent, torch::zeros_like(n.latent))};
  dist.all_reduce_sum(found, "the projection's search");
  n.distance = d[0].to(n.z.device());
  n.key = key[0].to(n.z.device());
  n.z = found[0].to(n.z.device());
  n.latent = found[1].to(n.z.device());
}

// A rank other than 0: it receives the model, searches its batches, and is done.
ProjectResult search_worker(const ProjectConfig& c, const Runtime& rt, Distributed& dist) {
  ProjectResult report;
  report.run = c.run;
  report.rank = dist.rank();
  auto given = take_over(dist, "project plan", rt.device);
  if (!given) return report;
  torch::NoGradGuard no_grad;
  InterruptScope interrupt_scope;
  const fs::path data(c.data);
  const auto push = read_list(data, "push");
  const int batch = given->plan.at("batch_size").get<int>();
  const PushRegion region = parse_push_region(given->plan.value("push_region", std::string("all")));
  const Forbidden forbidden = Forbidden::from_json(given->plan.at("forbidden"));
  auto n = search(*given->net, data, push, round_robin_batches(push.size(), batch, {dist.rank(), dist.size()}),
                  model_input(given->model), batch, rt.device, false, region, forbidden);
  merge_across_ranks(dist, n);
  return report;
}

// Where a projection stage starts: an unfinished projection is simply done again, a new one
// begins from the latest finished stage. Empty with --resume (or in a torchrun restart of the job
// that made it) when the latest stage is a finished projection (nothing to do).
struct ProjectionStage {
  int64_t id = 0;
  std::string start_checkpoint;
};

std::optional<ProjectionStage> begin_projection(const ProjectConfig& c, RunFolder& run,
                                                const std::vector<db::ConceptRow>& concepts) {
  std::vector<int64_t> forbidden;
  for (const auto& k : concepts) {
    if (k.kind == db::ConceptKind::kForbid) forbidden.push_back(k.id);
  }
  db::RunStore& store = run.store();
  const auto latest = store.latest_stage();
  const ElasticJob job = ElasticJob::from_environment();
  // A torchrun restart of the job that made the latest projection finds it done, as --resume does.
  const bool resume = c.resume || (latest && job.restarted(*latest));
  if (resume && latest && latest->kind == db::StageKind::kProject && latest->status == db::StageStatus::kDone) {
    return std::nullopt;
  }
  if (latest && latest->unfinished()) {
    if (latest->kind != db::StageKind::kProject) {
      throw std::runtime_error(std::string("stage ") + db::to_string(latest->kind) + " #" + std::to_string(latest->id) + " of run " + c.run +
                               " did not finish; continue it with --resume first");
    }
    return ProjectionStage{latest->id, latest->start_checkpoint};
  }
  ProjectionStage s;
  s.start_checkpoint = run.model_checkpoint();
  run.absolute(s.start_checkpoint);  // throws, before the stage begins, when it is not inside the run
  nlohmann::json config{{"batch_size", c.batch_size},
                        {"push_region", push_region_name(c.push_region)},
                        {"forbidden_concepts", forbidden}};
  if (c.forbid_threshold) config["forbid_threshold"] = *c.forbid_threshold;
  s.id = store.begin_stage(db::StageKind::kProject, config.dump(), s.start_checkpoint, job.id);
  return s;
}

// Each projected prototype's record (source image, cell, boxes, distances) and, unless
// --no-images, its pictures in `image_dir`. The self-activation comes from the latent map of its
// source image kept during the search, so no image is run through the network twice. Sorted by
// prototype; throws Interrupted when asked to stop.
std::vector<db::PrototypeRow> record_prototypes(model::ProtoPNetImpl& net, const Nearest& nearest,
                                                const std::vector<ListEntry>& push, const fs::path& data, int img_size,
                                                int64_t stage_id, const fs::path& image_dir, bool save_images) {
  const int64_t P = net.num_prototypes();
  const auto rf = net.receptive_field(img_size);
  const int64_t grid_w = rf.n, HW = grid_w * grid_w;
  const auto key_cpu = nearest.key.cpu();
  const auto best_d_cpu = nearest.distance.cpu().to(torch::kFloat64);
  const std::vector<int64_t> keys(key_cpu.data_ptr<int64_t>(), key_cpu.data_ptr<int64_t>() + P);
  const std::vector<double> best_d_v(best_d_cpu.data_ptr<double>(), best_d_cpu.data_ptr<double>() + P);
  const torch::Tensor self_d = net.paired_distances(nearest.latent).cpu();  // against the projected prototypes
  const torch::Tensor self_sim = net.similarity(self_d);
  std::map<int64_t, std::vector<int64_t>> users;  // push index → prototypes projected onto it
  for (int64_t j = 0; j < P; ++j) {
    if (keys[static_cast<size_t>(j)] != kNone) users[keys[static_cast<size_t>(j)] / HW].push_back(j);
  }
  const std::vector<std::pair<int64_t, std::vector<int64_t>>> sources(users.begin(), users.end());
  std::vector<db::PrototypeRow> rows;
  rows.reserve(static_cast<size_t>(P));
  std::mutex rows_mutex;
  {
    Progress progress("project: record", sources.size());
    tbb::parallel_for(size_t{0}, sources.size(), [&](size_t s) {
      if (InterruptScope::stop_requested()) return;
      const ListEntry& e = push[static_cast<size_t>(sources[s].first)];
      const cv::Mat original = read_image_file(data / e.path);
      for (int64_t j : sources[s].second) {
        db::PrototypeRow r;
        r.stage_id = stage_id;
        r.prototype = j;
        r.class_index = e.class_index;
        r.image_path = e.path;
        r.image_id = e.source_id;
        r.image_width = original.cols;
        r.image_height = original.rows;
        const int64_t cell = keys[static_cast<size_t>(j)] % HW;
        r.cell_h = cell / grid_w;
        r.cell_w = cell % grid_w;
        r.distance_before = best_d_v[static_cast<size_t>(j)];
        r.distance_after = self_d[j][r.cell_h][r.cell_w].item<double>();
        const auto cb = model::cell_box(rf, img_size, r.cell_h, r.cell_w);
        const auto rf_box = scale_box({static_cast<int>(cb[0]), static_cast<int>(cb[1]), static_cast<int>(cb[2]),
                                       static_cast<int>(cb[3])},
                                      img_size, img_size, original.cols, original.rows);
        const cv::Mat sim = tensor_to_mat(self_sim[j]);
        const auto box = high_activation_box(sim, original.cols, original.rows);
        for (int q = 0; q < 4; ++q) {
          r.rf[q] = rf_box[static_cast<size_t>(q)];
          r.box[q] = box[static_cast<size_t>(q)];
        }
        if (save_images) {
          const std::string stem = (image_dir / std::to_string(j)).string();
          write_file_atomic(stem + "-patch.png", encode_png(original(cv::Rect(box[0], box[1], box[2] - box[0], box[3] - box[1]))));
          write_file_atomic(stem + "-box.png", encode_png(draw_box(original, box)));
          write_file_atomic(stem + "-heatmap.png", encode_png(overlay_heatmap(original, sim)));
        }
        std::lock_guard<std::mutex> lock(rows_mutex);
        rows.push_back(r);
      }
      progress.advance();
    });
  }
  stop_if_requested(kStopped);
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.prototype < b.prototype; });
  return rows;
}

// Projection stage `stage` of `run`, begun: the search, the records and pictures, the commit.
ProjectResult project_stage(const ProjectConfig& c, const Runtime& rt, Distributed* dist, RunFolder& run,
                            const ModelConfig& m, const std::vector<db::ConceptRow>& concepts,
                            const ProjectionStage& stage, Clock::time_point start) {
  const fs::path data(c.data);
  ProjectResult report;
  report.run = c.run;
  model::ProtoPNet net(to_model_options(m));
  load_checkpoint(run, stage.start_checkpoint, *net, rt.device, nullptr, nullptr);
  net->eval();
  torch::NoGradGuard no_grad;
  const Forbidden forbidden = forbidden_cells(*net, concepts, model_input(m), c.forbid_threshold, rt.device);
  const int batch = feature_batch_size(*net, model_input(m), c.batch_size, rt, 0, "project: search");
  if (dist) {
    hand_over(*dist, "project plan",
              {{"batch_size", batch}, {"push_region", push_region_name(c.push_region)}, {"forbidden", forbidden.to_json()}},
              m, *net);
  }
  InterruptScope interrupt_scope;

  // 1. Search: for every prototype, the nearest latent patch among push images of its class;
  //    the prototypes become those patches.
  const auto push = read_list(data, "push");
  const int64_t P = net->num_prototypes(), D = m.prototype_dim;
  const Shard shard{dist ? dist->rank() : 0, dist ? dist->size() : 1};
  auto nearest = search(*net, data, push, round_robin_batches(push.size(), batch, shard), model_input(m), batch,
                        rt.device, true, c.push_region, forbidden);
  if (dist) merge_across_ranks(*dist, nearest);
  const double search_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  auto& protos = net->prototype_vectors();
  protos.copy_(torch::where(nearest.key.ne(kNone).view({P, 1, 1, 1}), nearest.z.view({P, D, 1, 1}), protos));

  // 2. Records and pictures.
  const auto rows = record_prototypes(*net, nearest, push, data, m.img_size, stage.id,
                                      run.dir() / "prototypes" / std::to_string(stage.id), c.save_images);

  // 3. The projected model and its records become visible together.
  const std::string rel = run.checkpoint_name("project" + std::to_string(stage.id));
  const std::string sha256 = save_checkpoint(run.absolute(rel), *net, nullptr, nullptr);
  run.store().finish_projection(stage.id, rows, {0, stage.id, 0, 0, rel, true, "", sha256});

  report.projection = stage.id;
  report.forbidden_concepts = forbidden.concepts;
  report.forbid_threshold = forbidden.threshold;
  report.prototypes = P;
  report.projected = static_cast<int64_t>(rows.size());
  for (const auto& r : rows) {
    report.mean_distance_before += r.distance_before / static_cast<double>(rows.size());
    report.max_distance_after = std::max(report.max_distance_after, r.distance_after);
  }
  report.images_per_second = static_cast<double>(push.size()) / std::max(search_seconds, 1e-9);
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

ProjectResult project_on_rank_zero(const ProjectConfig& c, const Runtime& rt, Distributed* dist, Clock::time_point start) {
  const fs::path data(c.data);
  RunWithData opened = open_run_with_data(c.run, data);
  RunFolder& run = opened.run;
  const ModelConfig& m = opened.model;
  if (c.push_region == PushRegion::kObject && !has_masks(data)) {
    throw std::runtime_error(c.data + " has no object masks (masks/), which --push-region object needs: prepare the "
                             "data with --masks DIR, --cub beside CUB's segmentations/, or --foreground-threshold T");
  }
  ProjectResult report;
  report.run = c.run;
  const auto concepts = run.store().concepts();
  const auto stage = begin_projection(c, run, concepts);
  if (!stage) {
    if (dist) hand_over_nothing(*dist, "project plan");
    report.projection = run.store().latest_stage()->id;
    report.already_done = true;
    return report;
  }
  return within_stage(&run, stage->id, [&] { return project_stage(c, rt, dist, run, m, concepts, *stage, start); });
}

}  // namespace

ProjectResult run_project(const ProjectConfig& c) {
  const auto start = Clock::now();
  const Runtime rt = start_runtime(c.runtime);
  const auto dist = join_ranks(c.data);
  return on_ranks(
      dist.get(), "project plan", [&](Distributed* dist) { return project_on_rank_zero(c, rt, dist, start); },
      [&](Distributed& dist) { return search_worker(c, rt, dist); });
}

}  // namespace ppnet::pipeline
