#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "model/loss.h"
#include "model/nearest_patches.h"
#include "base/atomic_file.h"
#include "pipeline/stages/evaluate.h"
#include "pipeline/stages/handover.h"
#include "pipeline/stages/image_data.h"
#include "pipeline/stages/part_metrics.h"
#include "pipeline/data/parts.h"
#include "base/progress.h"
#include "pipeline/render/heatmap.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/runtime/runtime.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

const char* const kPartMetrics[] = {"consistency", "stability", "pointing", "purity"};

// A CSV field as RFC 4180 quotes it: in double quotes, a quote inside doubled (class names and
// paths may hold commas and quotes).
std::string csv_field(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + '"';
}

// The part-based metrics of one evaluation pass: the boxes each image gives the prototypes of
// its class (consistency, stability), its top prototype (pointing), and each prototype's
// nearest patches over the annotated images (purity).
class PartPass {
 public:
  PartPass(const EvaluateConfig& c, DataParts parts, const std::vector<ListEntry>& list, model::ProtoPNetImpl& net)
      : c_(c),
        parts_(std::move(parts)),
        list_(list),
        metrics_(net.num_prototypes(), {c.consistency_threshold}),
        nearest_(net.num_prototypes(), c.purity_k),
        weights_(net.last_layer()->weight.detach().cpu()),
        activation_(net.options().activation) {
    own_.resize(static_cast<size_t>(net.prototype_class_identity().size(1)));
    const auto classes = net.prototype_classes();
    for (size_t j = 0; j < classes.size(); ++j) own_[static_cast<size_t>(classes[j])].push_back(static_cast<int64_t>(j));
  }
  bool wants(const char* metric) const { return c_.metrics.count(metric) > 0; }

  /// `d`, `noisy_d`: B×P×H×W distances of the batch (noisy_d undefined without stability);
  /// `out`: what classify() made of `d`.
  void observe(const Batch& b, int64_t first, const torch::Tensor& d, const model::ProtoPNetOutput& out,
               const torch::Tensor& noisy_d) {
    const auto sim = model::similarity(d, activation_).cpu();
    const auto noisy_sim = noisy_d.defined() ? model::similarity(noisy_d, activation_).cpu() : torch::Tensor();
    const auto pred = out.logits.argmax(1).cpu();
    const auto contribution =
        model::similarity(out.min_distances, activation_).cpu() * weights_.index_select(0, pred);  // B×P
    const auto top = contribution.argmax(1);
    std::vector<int64_t> annotated;
    for (int64_t i = 0; i < b.labels.size(0); ++i) {
      const ImageParts* img = parts_.find(list_[static_cast<size_t>(first + i)].path);
      if (!img) continue;
      annotated.push_back(i);
      ++annotated_images_;
      auto parts_of = [&](const torch::Tensor& maps, int64_t j) { return parts_in(maps[i][j], *img); };
      if (wants("consistency") || wants("stability")) {
        for (int64_t j : own_[static_cast<size_t>(b.labels[i].item<int64_t>())]) {
          const uint64_t clean = parts_of(sim, j);
          if (wants("consistency")) metrics_.add_own_class(j, clean);
          if (wants("stability")) metrics_.add_stability(j, clean, parts_of(noisy_sim, j));
        }
      }
      const bool any_visible = std::any_of(img->parts.begin(), img->parts.end(), [](const PartLocation& p) { return p.visible; });
      if (wants("pointing") && any_visible) metrics_.add_pointing(parts_of(sim, top[i].item<int64_t>()) != 0);
    }
    if (wants("purity") && !annotated.empty()) {
      const auto rows = torch::tensor(annotated, torch::kInt64);
      nearest_.add(d.index_select(0, rows.to(d.device())), rows + first);
    }
  }

  int64_t annotated_images() const { return annotated_images_; }

  PartMetricsResult finish() {
    if (wants("purity")) {
      const auto maps = model::similarity(nearest_.maps(), activation_);
      const auto images_t = nearest_.image();
      const auto images = images_t.accessor<int64_t, 2>();
      for (int64_t j = 0; j < images_t.size(0); ++j) {
        std::vector<uint64_t> sets;
        for (int64_t r = 0; r < images_t.size(1); ++r) {
          const int64_t i = images[j][r];
          if (i < 0) continue;
          sets.push_back(parts_in(maps[j][r], *parts_.find(list_[static_cast<size_t>(i)].path)));
        }
        metrics_.add_nearest(j, sets);
      }
    }
    return metrics_.result();
  }

 private:
  // The parts inside the box a similarity map (H×W) gives on `img`.
  uint64_t parts_in(const torch::Tensor& map, const ImageParts& img) const {
    const cv::Mat m = tensor_to_mat(map);
    const auto box = c_.part_box > 0 ? peak_box(m, img.width, img.height, c_.part_box)
                                     : high_activation_box(m, img.width, img.height);
    return parts_in_box(img.parts, box.data());
  }

  const EvaluateConfig& c_;
  DataParts parts_;
  const std::vector<ListEntry>& list_;
  PartMetrics metrics_;
  model::NearestPatches nearest_;
  torch::Tensor weights_;
  model::Activation activation_;
  std::vector<std::vector<int64_t>> own_;  // class → its prototypes
  int64_t annotated_images_ = 0;
};

bool wants_parts(const EvaluateConfig& c) {
  return std::any_of(std::begin(kPartMetrics), std::end(kPartMetrics), [&](const char* m) { return c.metrics.count(m) > 0; });
}

// The sparsity metric: how few last-layer weights and distinct source patches explain the model.
void measure_sparsity(RunFolder& run, const torch::Tensor& w, EvaluateResult& r) {
  r.zero_weights = w.eq(0).to(torch::kFloat64).mean().item<double>();
  r.nonzero_weights = w.abs().ge(1e-3).sum().item<int64_t>();
  if (const auto projection = run.store().latest_projection()) {
    std::set<std::tuple<std::string, int64_t, int64_t>> patches;
    for (const auto& p : run.store().prototypes(*projection)) patches.insert({p.image_path, p.cell_h, p.cell_w});
    r.distinct_patches = static_cast<int64_t>(patches.size());
  }
}

// The logits (N×C, CPU) of `list` in sequential batches, each also shown to `part_pass`.
torch::Tensor logits_with_parts(model::ProtoPNetImpl& net, const EvaluateConfig& c, const fs::path& data,
                                const std::vector<ListEntry>& list, const ModelInput& input, torch::Device device,
                                PartPass& part_pass) {
  auto noise_generator = at::detail::createCPUGenerator(c.runtime.seed);
  BatchLoader loader(data, list, sequential_order(list.size()), input, c.batch_size, 0);
  Progress progress("evaluate " + c.split, list.size());
  std::vector<torch::Tensor> logits;
  Batch b;
  while (loader.next(&b)) {
    const auto x = b.images.to(device);
    const auto d = net.activations(x).distances;
    const auto out = net.classify(d);
    logits.push_back(out.logits.cpu());
    torch::Tensor noisy_d;
    if (part_pass.wants("stability")) {
      const auto noise = torch::randn(b.images.sizes(), noise_generator, torch::kFloat32) * c.noise;
      noisy_d = net.activations(x + noise.to(device)).distances;
    }
    part_pass.observe(b, b.index * c.batch_size, d, out, noisy_d);
    progress.advance(static_cast<uint64_t>(b.labels.size(0)));
  }
  return logits.empty() ? torch::zeros({0, net.options().num_classes}) : torch::cat(logits);
}

// The logits (N×C, CPU) of `list`, split across the ranks of `dist` when given.
torch::Tensor logits_of(model::ProtoPNetImpl& net, Distributed* dist, const fs::path& data,
                        const std::vector<ListEntry>& list, const ModelInput& input, int batch_size, torch::Device device,
                        const std::string& split) {
  return rows_across_ranks(
      dist, data, list, input, batch_size, net.options().num_classes,
      [&](const torch::Tensor& images) { return net.forward(images.to(device)).logits; }, "evaluate " + split,
      "the evaluation");
}

// A rank other than 0: it receives the model, computes the logits of its batches, and is done.
// Part metrics need every distance map in one place: rank 0 computes them alone.
EvaluateResult evaluate_worker(const EvaluateConfig& c, const Runtime& rt, Distributed& dist) {
  EvaluateResult r;
  r.run = c.run;
  r.rank = dist.rank();
  auto given = take_over(dist, "evaluate plan", rt.device);
  if (!given) return r;
  const fs::path data(c.data);
  const std::string split = given->plan.at("split").get<std::string>();
  logits_of(*given->net, &dist, data, read_list(data, split), model_input(given->model),
            given->plan.at("batch_size").get<int>(), rt.device, split);
  return r;
}

// Accuracy, top-5, the confusion matrix and per-class accuracy of `logits` (one row per image of
// `list`); returns the predictions as CSV (path, label, predicted, logit).
std::string score_predictions(const std::vector<ListEntry>& list, const torch::Tensor& logits, int64_t C,
                              EvaluateResult& r) {
  r.confusion.assign(static_cast<size_t>(C), std::vector<int64_t>(static_cast<size_t>(C), 0));
  std::ostringstream predictions;
  predictions << "path,label,predicted,logit\n";
  int64_t top1 = 0, top5 = 0;
  const auto topk = std::get<1>(logits.topk(std::min<int64_t>(5, C), 1));
  for (size_t i = 0; i < list.size(); ++i) {
    const auto row = static_cast<int64_t>(i);
    const int64_t y = list[i].class_index, p = topk[row][0].item<int64_t>();
    ++r.confusion[static_cast<size_t>(y)][static_cast<size_t>(p)];
    top1 += y == p;
    top5 += topk[row].eq(y).any().item<bool>() ? 1 : 0;
    predictions << csv_field(list[i].path) << ',' << y << ',' << p << ',' << logits[row][p].item<double>() << '\n';
  }
  r.images = static_cast<int64_t>(list.size());
  r.accuracy = r.images ? static_cast<double>(top1) / static_cast<double>(r.images) : 0.0;
  r.top5_accuracy = r.images ? static_cast<double>(top5) / static_cast<double>(r.images) : 0.0;
  for (int64_t k = 0; k < C; ++k) {
    int64_t n = 0;
    for (auto v : r.confusion[static_cast<size_t>(k)]) n += v;
    r.per_class_accuracy.push_back(
        n ? static_cast<double>(r.confusion[static_cast<size_t>(k)][static_cast<size_t>(k)]) / static_cast<double>(n) : 0.0);
  }
  return predictions.str();
}

// The confusion matrix as CSV, class names as the first row and column.
std::string confusion_csv(const EvaluateResult& r) {
  std::ostringstream os;
  os << "true\\predicted";
  for (const auto& n : r.class_names) os << ',' << csv_field(n);
  os << '\n';
  for (size_t k = 0; k < r.class_names.size(); ++k) {
    os << csv_field(r.class_names[k]);
    for (auto v : r.confusion[k]) os << ',' << v;
    os << '\n';
  }
  return os.str();
}

// The evaluation as a row of run.sqlite, with the interpretability metrics when measured.
void record_evaluation(RunFolder& run, const EvaluateConfig& c, const EvaluateResult& r) {
  nlohmann::json details = {{"per_class_accuracy", r.per_class_accuracy},
                            {"confusion", r.confusion},
                            {"prototypes", r.prototypes},
                            {"off_class_sparsity", r.off_class_sparsity},
                            {"own_class_strongest", r.own_class_strongest}};
  if (!c.metrics.empty()) details["metrics"] = nlohmann::json::parse(metrics_json(r));
  run.store().add_evaluation({0, "", r.checkpoint, r.split, r.images, r.accuracy, r.top5_accuracy, details.dump()});
}

EvaluateResult evaluate_on_rank_zero(const EvaluateConfig& c, const Runtime& rt, Distributed* dist) {
  const auto start = std::chrono::steady_clock::now();
  const fs::path data(c.data);
  RunWithData opened = open_run_with_data(c.run, data);
  RunFolder& run = opened.run;
  const ModelConfig& m = opened.model;
  const auto final_checkpoint = run.store().latest_final_checkpoint();
  auto net = load_latest_model(run, rt.device);
  net->eval();
  torch::NoGradGuard no_grad;
  for (const auto& output : {c.predictions_csv, c.confusion_csv}) {
    if (!output.empty()) run.check_output(output);  // before the pass, not after it
  }

  // The pass: with part metrics on this process alone, else shared with the other ranks.
  const auto list = read_split_list(data, opened.manifest, c.split);
  std::optional<PartPass> part_pass;
  if (wants_parts(c)) part_pass.emplace(c, read_data_parts(data), list, *net);
  if (dist && part_pass) hand_over_nothing(*dist, "evaluate plan");
  if (dist && !part_pass) hand_over(*dist, "evaluate plan", {{"batch_size", c.batch_size}, {"split", c.split}}, m, *net);
  const auto logits = part_pass ? logits_with_parts(*net, c, data, list, model_input(m), rt.device, *part_pass)
                                : logits_of(*net, dist, data, list, model_input(m), c.batch_size, rt.device, c.split);

  EvaluateResult r;
  r.run = c.run;
  r.split = c.split;
  r.checkpoint = final_checkpoint ? final_checkpoint->path : run.checkpoint_name("init");
  for (const auto& cls : opened.manifest.classes) r.class_names.push_back(cls.name);
  const std::string predictions = score_predictions(list, logits, m.num_classes, r);
  const auto w = net->last_layer()->weight.cpu();
  const auto identity = net->prototype_class_identity().cpu();
  r.prototypes = net->num_prototypes();
  r.off_class_sparsity = model::off_class_sparsity(w, identity).item<double>();
  r.own_class_strongest = w.argmax(0).eq(identity.argmax(1)).to(torch::kFloat32).mean().item<double>();
  r.metrics = c.metrics;
  r.consistency_threshold = c.consistency_threshold;
  r.part_box = c.part_box;
  r.noise = c.noise;
  r.purity_k = c.purity_k;
  if (part_pass) {
    r.parts = part_pass->finish();
    r.annotated_images = part_pass->annotated_images();
    if (r.annotated_images == 0) {
      throw std::runtime_error(c.data + ": none of the " + c.split + " images has part annotations (" +
                               parts_locations_path(data).string() + ")");
    }
  }
  if (c.metrics.count("sparsity")) measure_sparsity(run, w, r);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.images_per_second = static_cast<double>(r.images) / std::max(r.seconds, 1e-9);

  if (!c.predictions_csv.empty()) write_output_file(c.predictions_csv, predictions);
  if (!c.confusion_csv.empty()) write_output_file(c.confusion_csv, confusion_csv(r));
  record_evaluation(run, c, r);
  return r;
}

}  // namespace

EvaluateResult run_evaluate(const EvaluateConfig& c) {
  const Runtime rt = start_runtime(c.runtime);
  const auto dist = Distributed::from_environment(kDistributedTimeout);
  return on_ranks(
      dist.get(), "evaluate plan", [&](Distributed* dist) { return evaluate_on_rank_zero(c, rt, dist); },
      [&](Distributed& dist) { return evaluate_worker(c, rt, dist); });
}

std::string metrics_json(const EvaluateResult& r) {
  nlohmann::json j;
  const auto& p = r.parts;
  if (r.metrics.count("consistency")) {
    j["consistency"] = {{"value", p.consistency},
                        {"consistent_prototypes", p.consistent_prototypes},
                        {"prototypes", p.consistency_prototypes},
                        {"threshold", r.consistency_threshold}};
  }
  if (r.metrics.count("stability")) j["stability"] = {{"value", p.stability}, {"noise", r.noise}};
  if (r.metrics.count("pointing")) {
    j["pointing"] = {{"value", p.pointing}, {"hits", p.pointing_hits}, {"images", p.pointing_images}};
  }
  if (r.metrics.count("purity")) j["purity"] = {{"value", p.purity}, {"k", r.purity_k}};
  if (r.metrics.count("sparsity")) {
    j["sparsity"] = {{"zero_weights", r.zero_weights},
                     {"nonzero_weights", r.nonzero_weights},
                     {"distinct_patches", r.distinct_patches},
                     {"prototypes", r.prototypes}};
  }
  if (r.annotated_images > 0) {
    j["annotated_images"] = r.annotated_images;
    j["part_box"] = r.part_box;
  }
  return j.dump();
}

}  // namespace ppnet::pipeline
