#include <oneapi/tbb/parallel_for.h>
#include <torch/torch.h>

#include <chrono>
#include <map>

#include "base/atomic_file.h"
#include "pipeline/stages/analyze.h"
#include "pipeline/data/image_file.h"
#include "pipeline/data/masks.h"
#include "pipeline/stages/attribution_maps.h"
#include "pipeline/stages/image_data.h"
#include "base/interrupt.h"
#include "pipeline/stages/nearest_search.h"
#include "base/progress.h"
#include "pipeline/render/heatmap.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/runtime/runtime.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Where a nearest patch lies in its image file: the top-5 % box of its attribution map, and the
// share of those pixels inside the object mask (−1 without one, or for a flat map).
struct Located {
  std::array<int, 4> box{};
  double precision = -1;
  bool done = false;
};

Located locate(const cv::Mat& map, const fs::path& data, const std::string& path, cv::Size size, bool masks) {
  Located l;
  l.box = high_activation_box(map, size.width, size.height);
  if (masks) l.precision = activation_precision(map, read_mask(data, path, size.width, size.height));
  l.done = true;
  return l;
}

// The slots (prototype j, rank r: index j·K + r) located from gradient attribution maps, computed
// a batch of images at a time before the pictures are drawn (maps are not kept).
std::vector<Located> locate_by_gradients(model::ProtoPNetImpl& net, const model::NearestPatches& nearest,
                                         const std::vector<ListEntry>& list, const fs::path& data, const ModelInput& input,
                                         const AnalyzeConfig& c, bool masks, torch::Device device) {
  const auto images_t = nearest.image();
  const auto images = images_t.accessor<int64_t, 2>();
  const int64_t P = images_t.size(0), K = images_t.size(1);
  std::map<std::string, std::vector<int64_t>> of_image;
  std::map<std::pair<std::string, int64_t>, int64_t> slot_of;  // (image, prototype) → slot
  for (int64_t j = 0; j < P; ++j) {
    for (int64_t r = 0; r < K; ++r) {
      if (images[j][r] < 0) continue;
      const std::string& path = list[static_cast<size_t>(images[j][r])].path;
      of_image[path].push_back(j);
      slot_of[{path, j}] = j * K + r;
    }
  }
  std::vector<Located> located(static_cast<size_t>(P * K));
  Progress progress("analyze: " + std::string(attribution_name(c.attribution.method)), of_image.size());
  std::string last;
  attribution_maps_of_files(net, data, input, of_image, c.attribution, c.batch_size, device,
                            [&](const std::string& path, int64_t j, const torch::Tensor& map) {
                              const cv::Size size = image_file_size(data / path);
                              located[static_cast<size_t>(slot_of.at({path, j}))] = locate(tensor_to_mat(map), data, path, size, masks);
                              if (path != last) {
                                stop_if_requested("interrupted; the run is unchanged");
                                progress.advance();
                                last = path;
                              }
                            });
  return located;
}

// The records of the nearest patches: boxes from each slot's attribution map (`located`, or the
// similarity map) at the image file's size, and (when asked) a patch and a boxed picture per
// slot. Images are decoded once each, in parallel.
std::vector<db::NearestPatchRow> describe(const model::NearestPatches& nearest, const std::vector<ListEntry>& list,
                                          const fs::path& data, const fs::path& pictures, model::Activation activation,
                                          const std::vector<Located>& located, bool masks) {
  const auto images_t = nearest.image(), cells_t = nearest.cell();
  const auto distances_t = nearest.distance().to(torch::kFloat64);
  const auto similarities_t = model::similarity(distances_t, activation);
  const auto images = images_t.accessor<int64_t, 2>(), cells = cells_t.accessor<int64_t, 2>();
  const auto distances = distances_t.accessor<double, 2>(), similarities = similarities_t.accessor<double, 2>();
  const auto maps = model::similarity(nearest.maps(), activation);
  const int64_t P = images_t.size(0), K = images_t.size(1), W = maps.size(3);
  std::map<int64_t, std::vector<std::pair<int64_t, int64_t>>> slots_of;  // image → (prototype, rank)
  for (int64_t j = 0; j < P; ++j) {
    for (int64_t r = 0; r < K; ++r) {
      if (images[j][r] >= 0) slots_of[images[j][r]].push_back({j, r});
    }
  }
  const std::vector<std::pair<int64_t, std::vector<std::pair<int64_t, int64_t>>>> work(slots_of.begin(), slots_of.end());
  std::vector<std::vector<db::NearestPatchRow>> rows_of(work.size());
  Progress progress("analyze: record", work.size());
  tbb::parallel_for(size_t{0}, work.size(), [&](size_t n) {
    if (InterruptScope::stop_requested()) return;
    const ListEntry& e = list[static_cast<size_t>(work[n].first)];
    const cv::Mat original = read_image_file(data / e.path);
    for (const auto& [j, r] : work[n].second) {
      db::NearestPatchRow row;
      row.prototype = j;
      row.rank = r;
      row.image_path = e.path;
      row.image_id = e.source_id;
      row.class_index = e.class_index;
      row.cell_h = cells[j][r] / W;
      row.cell_w = cells[j][r] % W;
      row.distance = distances[j][r];
      row.similarity = similarities[j][r];
      const auto slot = static_cast<size_t>(j * K + r);
      const Located l = !located.empty() && located[slot].done
                            ? located[slot]
                            : locate(tensor_to_mat(maps[j][r]), data, e.path, original.size(), masks);
      const auto& box = l.box;
      for (int q = 0; q < 4; ++q) row.box[q] = box[static_cast<size_t>(q)];
      if (l.precision >= 0) row.precision = l.precision;
      if (!pictures.empty()) {
        const std::string stem = (pictures / (std::to_string(j) + "-" + std::to_string(r))).string();
        write_file_atomic(stem + "-patch.png", encode_png(original(cv::Rect(box[0], box[1], box[2] - box[0], box[3] - box[1]))));
        write_file_atomic(stem + "-box.png", encode_png(draw_box(original, box)));
      }
      rows_of[n].push_back(std::move(row));
    }
    progress.advance();
  });
  stop_if_requested("interrupted; the run is unchanged");
  std::vector<db::NearestPatchRow> rows;
  for (auto& v : rows_of) rows.insert(rows.end(), v.begin(), v.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return std::tie(a.prototype, a.rank) < std::tie(b.prototype, b.rank); });
  return rows;
}

}  // namespace

AnalyzeResult run_analyze(const AnalyzeConfig& c) {
  const auto start = Clock::now();
  const Runtime rt = start_runtime(c.runtime);
  const fs::path data(c.data);
  RunWithData opened = open_run_with_data(c.run, data);
  RunFolder& run = opened.run;
  db::RunStore& store = run.store();
  const auto list = read_list(data, c.split);
  auto net = load_latest_model(run, rt.device);
  net->eval();
  InterruptScope interrupt_scope;

  // 1. One pass: each prototype's k nearest patches, one per image.
  const auto nearest = search_nearest_patches(*net, data, list, model_input(opened.model), c.batch_size, c.k, rt.device,
                                              "analyze: search " + c.split);
  const bool masks = has_masks(data);
  const auto located = c.attribution.method == Attribution::kUpsample
                           ? std::vector<Located>()
                           : locate_by_gradients(*net, nearest, list, data, model_input(opened.model), c, masks, rt.device);
  const double search_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  // 2. Boxes and pictures, into the folder the analysis will own (left over by an interrupted
  //    analysis with the same id, it is emptied first).
  db::AnalysisRow a;
  a.id = store.next_analysis_id();
  fs::path pictures;
  if (c.save_images) {
    a.pictures = "analysis/" + std::to_string(a.id);
    pictures = run.absolute(a.pictures);
    fs::remove_all(pictures);
    create_folders(pictures);
  }
  const auto rows = describe(nearest, list, data, pictures, net->options().activation, located, masks);

  // 3. One transaction records it.
  a.checkpoint = run.model_checkpoint();
  a.projection = store.latest_projection();
  a.split = c.split;
  a.k = c.k;
  a.images = static_cast<int64_t>(list.size());
  a.attribution = attribution_name(c.attribution.method);
  a.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  store.add_analysis(a, rows);

  AnalyzeResult r;
  r.run = c.run;
  r.split = c.split;
  r.analysis = a.id;
  r.k = c.k;
  r.images = a.images;
  r.attribution = c.attribution.method;
  r.masks = masks;
  for (const auto& cls : opened.manifest.classes) r.class_names.push_back(cls.name);
  const auto classes = net->prototype_classes();
  for (size_t j = 0; j < classes.size(); ++j) r.prototypes.push_back({static_cast<int64_t>(j), classes[j], 0, -1.0, {}});
  for (const auto& row : rows) {
    auto& p = r.prototypes[static_cast<size_t>(row.prototype)];
    p.own_class += row.class_index == p.class_index ? 1 : 0;
    p.nearest.push_back({row.rank, row.class_index, row.image_path, row.image_id, row.cell_h, row.cell_w, row.distance,
                         row.similarity, {row.box[0], row.box[1], row.box[2], row.box[3]},
                         a.pictures.empty() ? "" : a.pictures + "/" + std::to_string(row.prototype) + "-" +
                                                       std::to_string(row.rank) + "-patch.png",
                         row.precision.value_or(-1.0)});
  }
  for (auto& p : r.prototypes) {
    double sum = 0;
    int n = 0;
    for (const auto& near : p.nearest) {
      if (near.precision >= 0) sum += near.precision, ++n;
    }
    if (n > 0) p.precision = sum / n;
  }
  r.seconds = a.seconds;
  r.images_per_second = static_cast<double>(list.size()) / std::max(search_seconds, 1e-9);
  return r;
}

}  // namespace ppnet::pipeline
