#include <oneapi/tbb/parallel_for.h>
#include <torch/torch.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "model/receptive_field.h"
#include "pipeline/atomic_file.h"
#include "pipeline/commands.h"
#include "pipeline/image_file.h"
#include "pipeline/image_data.h"
#include "pipeline/interrupt.h"
#include "pipeline/progress.h"
#include "pipeline/render.h"
#include "pipeline/run_folder.h"
#include "pipeline/runtime.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

}  // namespace

ProjectReport run_project(const ProjectConfig& c) {
  const auto start = Clock::now();
  const Runtime rt = start_runtime(c.runtime);
  const fs::path data(c.data);
  RunWithData opened = open_run_with_data(c.run, data);
  RunFolder& run = opened.run;
  const ModelConfig& m = opened.model;
  db::RunStore& store = run.store();

  // A projection is a stage of its own; an unfinished one is simply done again.
  int64_t stage_id = 0;
  std::string start_checkpoint;
  const auto latest = store.latest_stage();
  if (c.resume && latest && latest->kind == "project" && latest->status == "done") {
    ProjectReport done;
    done.run = c.run;
    done.projection = latest->id;
    done.already_done = true;
    return done;
  }
  if (latest && latest->unfinished()) {
    if (latest->kind != "project") {
      throw std::runtime_error("stage " + latest->kind + " #" + std::to_string(latest->id) + " of run " + c.run +
                               " did not finish; continue it with --resume first");
    }
    stage_id = latest->id;
    start_checkpoint = latest->start_checkpoint;
  } else {
    const auto base = store.latest_final_checkpoint();
    start_checkpoint = base ? base->path : run.checkpoint_name("init");
    stage_id = store.begin_stage("project", nlohmann::json{{"batch_size", c.batch_size}}.dump(), start_checkpoint);
  }

  model::ProtoPNet net(to_model_options(m));
  load_checkpoint(run.absolute(start_checkpoint), *net, rt.device, nullptr, nullptr);
  net->eval();
  torch::NoGradGuard no_grad;
  InterruptScope interrupt_scope;

  // 1. Search: for every prototype, the nearest latent patch among push images of its class.
  const auto push = read_list(data, "push");
  const int64_t P = net->num_prototypes(), D = m.prototype_dim;
  const auto proto_class = net->prototype_class_identity().argmax(1);  // P
  auto best_d = torch::full({P}, std::numeric_limits<float>::infinity(), torch::TensorOptions().device(rt.device));
  auto best_image = torch::full({P}, -1, torch::TensorOptions().dtype(torch::kInt64).device(rt.device));
  auto best_cell = torch::zeros({P}, torch::TensorOptions().dtype(torch::kInt64).device(rt.device));
  auto best_z = torch::zeros({P, D}, torch::TensorOptions().device(rt.device));
  torch::Tensor best_latent;  // P×D×H×W: each prototype's source image, encoded (for its heatmap)
  int64_t grid_w = 0;
  {
    BatchLoader loader(data, push, sequential_order(push.size()), m.img_size, c.batch_size, 0);
    Progress progress("project: search", push.size());
    Batch b;
    int64_t offset = 0;
    while (loader.next(&b)) {
      const auto x = b.images.to(rt.device), y = b.labels.to(rt.device);
      const auto act = net->activations(x);
      const int64_t B = x.size(0), H = act.distances.size(2), W = act.distances.size(3);
      grid_w = W;
      // Other classes' images are out of reach: their distances become +inf.
      const auto own = y.view({B, 1}).eq(proto_class.view({1, P}));                       // B×P
      const auto d = act.distances.masked_fill(own.logical_not().view({B, P, 1, 1}), INFINITY);
      const auto flat = d.permute({1, 0, 2, 3}).reshape({P, B * H * W});
      const auto [val, idx] = flat.min(1);                                                    // P, P
      const auto better = val < best_d;
      const auto z = act.latent.permute({0, 2, 3, 1}).reshape({B * H * W, D}).index_select(0, idx);  // P×D
      best_d = torch::where(better, val, best_d);
      best_z = torch::where(better.view({P, 1}), z, best_z);
      const auto in_batch = idx.div(H * W, "floor");
      if (!best_latent.defined()) best_latent = torch::zeros({P, D, H, W}, act.latent.options());
      const auto improved = better.nonzero().view(-1);  // only those prototypes' maps change
      best_latent.index_copy_(0, improved, act.latent.index_select(0, in_batch.index_select(0, improved)));
      best_image = torch::where(better, in_batch + offset, best_image);
      best_cell = torch::where(better, idx.remainder(H * W), best_cell);
      offset += B;
      progress.advance(static_cast<uint64_t>(B));
      if (InterruptScope::stop_requested()) {
        throw Interrupted(InterruptScope::signal_number(), "interrupted; the run is unchanged: run 'ppnet project' again");
      }
    }
  }
  const double search_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const auto found = best_image.ge(0);
  auto& protos = net->prototype_vectors();
  protos.copy_(torch::where(found.view({P, 1, 1, 1}), best_z.view({P, D, 1, 1}), protos));

  // 2. Records and pictures. Each prototype's self-activation comes from the latent map of its
  //    source image kept during the search, so no image is run through the network twice.
  const auto best_image_cpu = best_image.cpu(), best_cell_cpu = best_cell.cpu();
  const auto best_d_cpu = best_d.cpu().to(torch::kFloat64);
  const std::vector<int64_t> best_cell_v(best_cell_cpu.data_ptr<int64_t>(), best_cell_cpu.data_ptr<int64_t>() + P);
  const std::vector<double> best_d_v(best_d_cpu.data_ptr<double>(), best_d_cpu.data_ptr<double>() + P);
  torch::Tensor self_d;  // P×H×W, the model's distance formula against the projected prototypes
  if (best_latent.defined()) {
    const auto p = protos.view({P, D, 1, 1});
    self_d = torch::relu((best_latent * best_latent).sum(1) + (-2 * (best_latent * p).sum(1) + (p * p).sum(1))).cpu();
  }
  const torch::Tensor self_sim = self_d.defined() ? model::similarity_from_distance(self_d) : torch::Tensor();
  std::map<int64_t, std::vector<int64_t>> users;  // push index → prototypes projected onto it
  for (int64_t j = 0; j < P; ++j) {
    const int64_t i = best_image_cpu.data_ptr<int64_t>()[j];
    if (i >= 0) users[i].push_back(j);
  }
  const std::vector<std::pair<int64_t, std::vector<int64_t>>> sources(users.begin(), users.end());
  const auto rf = net->receptive_field(m.img_size);
  const fs::path image_dir = run.dir() / "prototypes" / std::to_string(stage_id);
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
        const int64_t cell = best_cell_v[static_cast<size_t>(j)];
        r.cell_h = cell / grid_w;
        r.cell_w = cell % grid_w;
        r.distance_before = best_d_v[static_cast<size_t>(j)];
        r.distance_after = self_d[j][r.cell_h][r.cell_w].item<double>();
        const auto cb = model::cell_box(rf, m.img_size, r.cell_h, r.cell_w);
        const auto rf_box = scale_box({static_cast<int>(cb[0]), static_cast<int>(cb[1]), static_cast<int>(cb[2]),
                                       static_cast<int>(cb[3])},
                                      m.img_size, m.img_size, original.cols, original.rows);
        const cv::Mat sim = tensor_to_mat(self_sim[j]);
        const auto box = high_activation_box(sim, original.cols, original.rows);
        for (int q = 0; q < 4; ++q) {
          r.rf[q] = rf_box[static_cast<size_t>(q)];
          r.box[q] = box[static_cast<size_t>(q)];
        }
        if (c.save_images) {
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
  if (InterruptScope::stop_requested()) {
    throw Interrupted(InterruptScope::signal_number(), "interrupted; the run is unchanged: run 'ppnet project' again");
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.prototype < b.prototype; });

  // 3. The projected model and its records become visible together.
  const std::string rel = run.checkpoint_name("project" + std::to_string(stage_id));
  save_checkpoint(run.absolute(rel), *net, nullptr, nullptr);
  store.finish_projection(stage_id, rows, {0, stage_id, 0, 0, rel, true, ""});

  ProjectReport report;
  report.run = c.run;
  report.projection = stage_id;
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

}  // namespace ppnet::pipeline
