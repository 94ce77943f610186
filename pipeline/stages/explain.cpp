#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_group.h>
#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "base/atomic_file.h"
#include "pipeline/stages/explain.h"
#include "pipeline/data/image_file.h"
#include "pipeline/data/resize.h"
#include "pipeline/render/html.h"
#include "pipeline/render/pages.h"
#include "pipeline/stages/attribution_maps.h"
#include "pipeline/stages/image_data.h"
#include "base/interrupt.h"
#include "base/paths.h"
#include "base/progress.h"
#include "pipeline/render/heatmap.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/runtime/runtime.h"
#include "pipeline/data/sources.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// `img` scaled to fit a side×side tile, centred on white.
cv::Mat tile(const cv::Mat& img, int side) {
  cv::Mat out(side, side, CV_8UC3, cv::Scalar(255, 255, 255));
  if (img.empty()) return out;
  const double s = std::min(static_cast<double>(side) / img.cols, static_cast<double>(side) / img.rows);
  cv::Mat r;
  cv::resize(img, r, cv::Size(std::max(1, static_cast<int>(img.cols * s)), std::max(1, static_cast<int>(img.rows * s))), 0, 0,
             cv::INTER_AREA);
  r.copyTo(out(cv::Rect((side - r.cols) / 2, (side - r.rows) / 2, r.cols, r.rows)));
  return out;
}

cv::Mat text_panel(const std::vector<std::string>& lines, int width, int height) {
  cv::Mat out(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  for (size_t i = 0; i < lines.size(); ++i) {
    cv::putText(out, lines[i], cv::Point(8, 22 + 22 * static_cast<int>(i)), cv::FONT_HERSHEY_SIMPLEX, 0.5,
                cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  return out;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

struct Context {
  ExplainConfig config;
  fs::path dir, out, run_dir, data_dir;
  int64_t projection = 0;
  ModelInput input;
  model::Activation activation = model::Activation::kLog;
  std::vector<std::string> class_names;
  std::map<int64_t, db::PrototypeRow> sources;
};

// The prototype's own patch from its projection: the saved picture, or (projected with
// --no-images) cropped from the data; empty when it has no source.
cv::Mat prototype_source_patch(const Context& ctx, int64_t p, json* source) {
  const auto it = ctx.sources.find(p);
  if (it == ctx.sources.end()) return {};
  const auto& row = it->second;
  *source = {{"image", row.image_path}, {"image_id", row.image_id}, {"cell", {row.cell_h, row.cell_w}},
             {"box", {row.box[0], row.box[1], row.box[2], row.box[3]}}};
  const fs::path saved = ctx.run_dir / "prototypes" / std::to_string(ctx.projection) / (std::to_string(p) + "-patch.png");
  std::error_code ec;
  cv::Mat patch;
  if (fs::is_regular_file(saved, ec)) patch = cv::imread(saved.string(), cv::IMREAD_COLOR);
  if (patch.empty() && stays_inside(row.image_path)) {  // never a file outside DATA, whatever run.sqlite says
    const cv::Mat src = cv::imread((ctx.data_dir / row.image_path).string(), cv::IMREAD_COLOR);
    if (!src.empty() && 0 <= row.box[0] && row.box[0] < row.box[2] && row.box[2] <= src.cols && 0 <= row.box[1] &&
        row.box[1] < row.box[3] && row.box[3] <= src.rows) {
      patch = src(cv::Rect(static_cast<int>(row.box[0]), static_cast<int>(row.box[1]),
                           static_cast<int>(row.box[2] - row.box[0]), static_cast<int>(row.box[3] - row.box[1])))
                  .clone();
    }
  }
  return patch;
}

// One shown prototype of an image: its pictures written beside the page (NN-heatmap, -box,
// -patch, -prototype), its entry of explanation.json and its row of the composite.
struct ShownPrototype {
  json entry;
  cv::Mat composite_row;
};

// `attribution`: where the prototype looks (its similarity map, or a gradient map); `dmap`:
// its distance map, whose minimum names the cell.
ShownPrototype show_prototype(const Context& ctx, const cv::Mat& original, const fs::path& folder, int64_t rank,
                              int64_t p, int64_t cls, const torch::Tensor& dmap, const torch::Tensor& attribution,
                              double s, double w) {
  const cv::Mat smap = tensor_to_mat(attribution);
  const auto box = high_activation_box(smap, original.cols, original.rows);
  const int64_t cell = std::get<1>(dmap.flatten().min(0)).item<int64_t>();
  char stem_buf[32];
  std::snprintf(stem_buf, sizeof stem_buf, "%02lld", static_cast<long long>(rank));
  const std::string stem = stem_buf;
  const cv::Mat heat = overlay_heatmap(original, smap);
  const cv::Mat boxed = draw_box(original, box);
  const cv::Mat patch = original(cv::Rect(box[0], box[1], box[2] - box[0], box[3] - box[1]));
  write_file_atomic(folder / (stem + "-heatmap.png"), encode_png(heat));
  write_file_atomic(folder / (stem + "-box.png"), encode_png(boxed));
  write_file_atomic(folder / (stem + "-patch.png"), encode_png(patch));
  json source = nullptr;
  const cv::Mat source_patch = prototype_source_patch(ctx, p, &source);
  if (!source_patch.empty()) write_file_atomic(folder / (stem + "-prototype.png"), encode_png(source_patch));

  ShownPrototype shown;
  shown.entry = {{"rank", rank},
                 {"index", p},
                 {"class_index", cls},
                 {"class_name", ctx.class_names[static_cast<size_t>(cls)]},
                 {"similarity", s},
                 {"weight", w},
                 {"contribution", s * w},
                 {"cell", {cell / dmap.size(1), cell % dmap.size(1)}},
                 {"box", {box[0], box[1], box[2], box[3]}},
                 {"attribution", attribution_name(ctx.config.attribution.method)},
                 {"heatmap", stem + "-heatmap.png"},
                 {"box_image", stem + "-box.png"},
                 {"patch", stem + "-patch.png"},
                 {"prototype_patch", source_patch.empty() ? json(nullptr) : json(stem + "-prototype.png")},
                 {"source", source}};
  const std::vector<cv::Mat> parts = {
      tile(boxed, 160), tile(heat, 160), tile(source_patch, 160),
      text_panel({"#" + std::to_string(rank) + " prototype " + std::to_string(p) + " (" +
                      ctx.class_names[static_cast<size_t>(cls)] + ")",
                  "similarity " + fmt(s) + " x weight " + fmt(w), "= contribution " + fmt(s * w)},
                 420, 160)};
  cv::hconcat(parts, shown.composite_row);
  return shown;
}

// The prediction part of explanation.json: the predicted class and the top classes' logits.
json prediction_json(const Context& ctx, const std::string& rel, const torch::Tensor& logits) {
  const int64_t predicted = logits.argmax().item<int64_t>();
  json j;
  j["image"] = printable(rel);  // the folder keeps the name's bytes; JSON and pages show them escaped
  j["predicted"] = {{"class_index", predicted}, {"class_name", ctx.class_names[static_cast<size_t>(predicted)]},
                    {"logit", logits[predicted].item<double>()}};
  const auto top_classes = std::get<1>(logits.topk(std::min<int64_t>(ctx.config.top_classes, logits.size(0))));
  j["top_classes"] = json::array();
  for (int64_t k = 0; k < top_classes.size(0); ++k) {
    const int64_t cls = top_classes[k].item<int64_t>();
    j["top_classes"].push_back({{"class_index", cls}, {"class_name", ctx.class_names[static_cast<size_t>(cls)]},
                                {"logit", logits[cls].item<double>()}});
  }
  j["prototypes"] = json::array();
  return j;
}

// The image's page (its template is pipeline/render/templates/explanation.html.mustache).
ExplanationPage explanation_page(const std::string& rel, const json& j) {
  ExplanationPage page;
  page.image = printable(rel);
  for (size_t k = 0; k < static_cast<size_t>(std::count(rel.begin(), rel.end(), '/')) + 1; ++k) page.up += "../";
  page.predicted = j["predicted"]["class_name"].get<std::string>();
  page.logit = fmt(j["predicted"]["logit"].get<double>());
  for (const auto& tc : j["top_classes"]) page.top_classes.push_back({tc["class_name"], fmt(tc["logit"].get<double>())});
  for (const auto& pj : j["prototypes"]) {
    page.prototypes.push_back({pj["rank"], pj["index"], pj["class_name"], pj["box_image"], pj["heatmap"], pj["patch"],
                               pj["prototype_patch"].is_null() ? "" : pj["prototype_patch"].get<std::string>(),
                               fmt(pj["similarity"]), fmt(pj["weight"]), fmt(pj["contribution"])});
  }
  return page;
}

// Everything about one image: its model input, the pictures of its most activated prototypes,
// the composite, its page, and explanation.json (last: it marks the image done).
// `top`: the prototypes to show, most similar first; `maps`: where each looks.
void explain_one(const Context& ctx, const std::string& rel, const torch::Tensor& logits, const torch::Tensor& distances,
                 const std::vector<int64_t>& top, const std::vector<torch::Tensor>& maps, const torch::Tensor& weight,
                 const torch::Tensor& proto_class) {
  const cv::Mat original = read_image_file(ctx.dir / rel);
  const fs::path folder = ctx.out / rel;
  write_file_atomic(folder / "input.png",
                    encode_png(resize_image(original, ctx.input.size, ctx.input.size, ctx.input.resize)));

  json j = prediction_json(ctx, rel, logits);
  const int64_t predicted = j["predicted"]["class_index"];
  const auto sim = model::similarity(std::get<0>(distances.flatten(1).min(1)), ctx.activation);  // P
  std::vector<cv::Mat> rows = {text_panel({"predicted: " + ctx.class_names[static_cast<size_t>(predicted)] + "  (logit " +
                                               fmt(logits[predicted].item<double>()) + ")",
                                           "this part of the image | looks like | that prototypical part"},
                                          3 * 160 + 420, 56)};
  for (size_t r = 0; r < top.size(); ++r) {
    const int64_t p = top[r];
    auto shown = show_prototype(ctx, original, folder, static_cast<int64_t>(r) + 1, p, proto_class[p].item<int64_t>(),
                                distances[p], maps[r], sim[p].item<double>(), weight[predicted][p].item<double>());
    j["prototypes"].push_back(std::move(shown.entry));
    rows.push_back(shown.composite_row);
  }
  cv::Mat composite;
  cv::vconcat(rows, composite);
  write_file_atomic(folder / "composite.png", encode_png(composite));
  write_file_atomic(folder / "index.html", render_explanation_page(explanation_page(rel, j)));
  write_file_atomic(folder / "explanation.json", j.dump(1) + "\n");
}

// What every image's explanation needs from the run: its latest projection (refused when a
// later training stage moved the prototypes), the prototypes' sources and the class names.
Context explain_context(const ExplainConfig& c, RunFolder& run) {
  db::RunStore& store = run.store();
  const ModelConfig m = run.model_config();
  Context ctx;
  ctx.config = c;
  ctx.dir = c.dir;
  ctx.out = c.out;
  ctx.run_dir = run.dir();
  ctx.input = model_input(m);
  ctx.activation = m.activation;
  // Where the prototypes were last placed: a projection (with its source patches), or an
  // import (projected where the model was trained; shown without sources until `ppnet project`).
  const auto projection = store.latest_projection();
  std::optional<db::StageRow> placed;
  for (const auto& s : store.stages()) {
    const bool places = s.kind == db::StageKind::kImport || (projection && s.id == *projection);
    if (places && s.status == db::StageStatus::kDone) placed = s;
  }
  if (!placed) {
    throw std::runtime_error("run " + c.run + " has not been projected, so its prototypes have no source patches; run "
                             "'ppnet project --data DATA --run " + c.run + "' first");
  }
  const std::string what = std::string(placed->kind == db::StageKind::kImport ? "import" : "projection") + " #" + std::to_string(placed->id);
  for (const auto& s : store.stages()) {
    if (s.id > placed->id && s.status == db::StageStatus::kDone && s.trains()) {
      throw std::runtime_error(std::string("stage ") + db::to_string(s.kind) + " #" + std::to_string(s.id) +
                               " changed the prototypes after " + what + "; run 'ppnet project' (and 'ppnet last-layer') again");
    }
  }
  if (placed->kind != db::StageKind::kImport) {
    ctx.projection = placed->id;
    for (const auto& row : store.prototypes(placed->id)) ctx.sources[row.prototype] = row;
  }
  const auto run_row = *store.run();
  ctx.data_dir = run_row.data_path;
  ctx.class_names = run.class_names();
  return ctx;
}

// The images of --dir (relative paths, sorted) in this --shard; what the walk could not read goes
// to `unreadable` ("path: reason"). An --out inside --dir is left out: its pictures are not
// images to explain (they would grow with every run).
std::vector<std::string> images_of_shard(const ExplainConfig& c, std::vector<std::string>* unreadable) {
  if (!fs::is_directory(c.dir)) throw std::runtime_error(c.dir + ": not a folder");
  std::error_code ec;
  const fs::path out_dir = fs::weakly_canonical(fs::absolute(c.out), ec);
  const auto images = find_images(
      c.dir, [&](const fs::path& folder) { return fs::weakly_canonical(folder, ec) == out_dir; }, unreadable);
  std::vector<std::string> mine;
  for (size_t i = 0; i < images.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(c.shard_count)) == c.shard_index) mine.push_back(images[i]);
  }
  return mine;
}

// The output folder: resumed when made by the same command (`record`), replaced with --force,
// refused when it holds anything else.
void claim_output(const ExplainConfig& c, const json& record) {
  const fs::path out(c.out), marker = out / ".explain.json";
  if (fs::exists(out)) {
    if (!fs::exists(marker)) {
      if (fs::directory_iterator(out) != fs::directory_iterator()) {
        throw std::runtime_error(c.out + ": exists, is not empty and was not made by ppnet explain; choose another --out");
      }
    } else {
      std::ifstream in(marker);
      const json before = json::parse(in, nullptr, false);
      if (before != record) {
        if (!c.force) {
          throw std::runtime_error(c.out + " holds explanations made by a different command (other run, model, folder "
                                   "or options); use --force to replace them, or another --out");
        }
        fs::remove_all(out);
      }
    }
  }
  create_folders(out);
  write_file_atomic(marker, record.dump(1));
  remove_temporary_files(out);
}

// Images go through the network in fixed batches of the shard's list, so that an image resumed
// after an interruption is computed in the same company, hence to the same bits, as in an
// uninterrupted run: a batch with any unfinished image runs whole, and only its unfinished
// images are written.
struct Batches {
  std::vector<ListEntry> entries;  // the shard's images
  std::vector<bool> finished;      // explained by an earlier run
  std::vector<int64_t> order;      // the entries of the batches that run
  int64_t todo = 0;                // unfinished images
};

Batches plan_batches(const Context& ctx, const std::vector<std::string>& mine, int batch_size) {
  Batches p;
  for (const auto& rel : mine) {
    p.entries.push_back({rel, 0, rel});
    p.finished.push_back(fs::exists(ctx.out / rel / "explanation.json"));
  }
  for (size_t first = 0; first < mine.size(); first += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(mine.size(), first + static_cast<size_t>(batch_size));
    const auto open = static_cast<int64_t>(std::count(p.finished.begin() + static_cast<std::ptrdiff_t>(first),
                                                      p.finished.begin() + static_cast<std::ptrdiff_t>(end), false));
    if (open == 0) continue;
    p.todo += open;
    for (size_t i = first; i < end; ++i) p.order.push_back(static_cast<int64_t>(i));
  }
  return p;
}

// Runs the planned batches through the network and renders each unfinished image's explanation
// (batch b's pictures while the network runs batch b + 1); counts into `report`.
void explain_batches(const Context& ctx, model::ProtoPNetImpl& net, const std::vector<std::string>& mine,
                     const Batches& plan, torch::Device device, ExplainResult& report) {
  const int batch_size = ctx.config.batch_size;
  torch::NoGradGuard no_grad;
  const auto weight = net.last_layer()->weight.detach().cpu();
  const auto proto_class = net.prototype_class_identity().argmax(1).cpu();
  std::mutex report_mutex;
  BatchLoader loader(ctx.dir, plan.entries, plan.order, ctx.input, batch_size, 0, 2, /*tolerate_errors=*/true);
  Progress progress("explain", static_cast<uint64_t>(plan.todo));
  tbb::task_group rendering;
  Batch b;
  while (loader.next(&b)) {
    const auto images = b.images.to(device);
    const auto act = net.activations(images);
    const auto out = net.classify(act.distances);
    const auto logits = out.logits.cpu();
    const auto distances = act.distances.cpu();
    // The most similar prototypes of each image, and where each looks.
    const int64_t first = b.index * batch_size;
    const auto similarity = net.similarity(out.min_distances).cpu();
    const auto top_t = std::get<1>(similarity.topk(std::min<int64_t>(ctx.config.top_k, similarity.size(1)), 1));
    std::vector<std::vector<int64_t>> top(static_cast<size_t>(top_t.size(0)));
    std::vector<uint64_t> seeds;
    for (int64_t i = 0; i < top_t.size(0); ++i) {
      for (int64_t r = 0; r < top_t.size(1); ++r) top[static_cast<size_t>(i)].push_back(top_t[i][r].item<int64_t>());
      seeds.push_back(std::hash<std::string>{}(mine[static_cast<size_t>(plan.order[static_cast<size_t>(first + i)])]));
    }
    const auto maps = attribution_maps(net, images, top, ctx.config.attribution, seeds, act.distances, batch_size);
    rendering.wait();
    const auto errors = b.errors;
    rendering.run([&, logits, distances, errors, first, top, maps] {
      tbb::parallel_for(size_t{0}, errors.size(), [&](size_t k) {
        const auto index = static_cast<size_t>(plan.order[static_cast<size_t>(first) + k]);
        if (plan.finished[index]) return;
        const std::string& rel = mine[index];
        try {
          if (!errors[k].empty()) throw std::runtime_error(errors[k]);
          explain_one(ctx, rel, logits[static_cast<int64_t>(k)], distances[static_cast<int64_t>(k)], top[k], maps[k], weight,
                      proto_class);
          std::lock_guard<std::mutex> lock(report_mutex);
          ++report.explained;
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(report_mutex);
          report.failed.push_back(printable(e.what()));
        }
        progress.advance();
      });
    });
    if (InterruptScope::stop_requested()) break;
  }
  rendering.wait();
}

// explanations.jsonl and the gallery of the whole shard, from the per-image files, one at a time.
void write_gallery(const Context& ctx, const std::vector<std::string>& mine) {
  std::ostringstream jsonl;
  GalleryPage gallery{ctx.config.run, ctx.projection, {}};
  for (const auto& rel : mine) {
    std::ifstream in(ctx.out / rel / "explanation.json");
    if (!in) continue;
    const json j = json::parse(in, nullptr, false);  // discarded when edited into something else
    if (!j.is_object()) continue;
    const json predicted = j.value("predicted", json::object());
    jsonl << j.dump() << '\n';
    gallery.cards.push_back({url_path(rel + "/index.html"), url_path(rel + "/input.png"), printable(rel),
                             predicted.is_object() ? predicted.value("class_name", std::string()) : std::string()});
  }
  write_file_atomic(ctx.out / "explanations.jsonl", jsonl.str());
  write_file_atomic(ctx.out / "index.html", render_gallery_page(gallery));
}

}  // namespace

ExplainResult run_explain(const ExplainConfig& c) {
  const auto start = std::chrono::steady_clock::now();
  const Runtime rt = start_runtime(c.runtime);
  RunFolder run = RunFolder::open(c.run);
  const Context ctx = explain_context(c, run);
  std::vector<std::string> unreadable;
  const std::vector<std::string> mine = images_of_shard(c, &unreadable);
  claim_output(c, {{"run", printable(fs::absolute(c.run).lexically_normal().string())},
                   {"dir", printable(fs::absolute(c.dir).lexically_normal().string())},
                   {"projection", ctx.projection},
                   {"checkpoint", run.model_checkpoint()},
                   {"top_k", c.top_k},
                   {"top_classes", c.top_classes},
                   {"attribution", attribution_name(c.attribution.method)},
                   {"samples", c.attribution.method == Attribution::kSmoothGrad ? c.attribution.samples : 0},
                   {"noise", c.attribution.method == Attribution::kSmoothGrad ? c.attribution.noise : 0.0},
                   {"shard", std::to_string(c.shard_index) + "/" + std::to_string(c.shard_count)}});

  ExplainResult report;
  report.out = c.out;
  report.images = static_cast<int64_t>(mine.size());
  const Batches plan = plan_batches(ctx, mine, c.batch_size);
  report.kept = static_cast<int64_t>(std::count(plan.finished.begin(), plan.finished.end(), true));
  auto net = load_latest_model(run, rt.device);
  net->eval();
  InterruptScope interrupt_scope;
  explain_batches(ctx, *net, mine, plan, rt.device, report);
  stop_if_requested("interrupted; finished images are kept: run the same command again to resume");
  report.failed.insert(report.failed.end(), unreadable.begin(), unreadable.end());
  std::sort(report.failed.begin(), report.failed.end());
  write_gallery(ctx, mine);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.images_per_second = static_cast<double>(report.explained) / std::max(report.seconds, 1e-9);
  return report;
}

}  // namespace ppnet::pipeline
