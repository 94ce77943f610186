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
#include "pipeline/stages/feature_batch.h"
#include "pipeline/stages/handover.h"
#include "pipeline/stages/image_data.h"
#include "pipeline/stages/part_metrics.h"
#include "pipeline/data/masks.h"
#include "pipeline/data/parts.h"
#include "pipeline/stages/attribution_maps.h"
#include "base/progress.h"
#include "pipeline/render/heatmap.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/runtime/runtime.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

// The metrics measured from attribution maps; precision (last) needs masks, the others parts.
const char* const kAuditMetrics[] = {"consistency", "stability", "pointing", "purity", "precision"};

// A CSV field as RFC 4180 quotes it: in double quotes, a quote inside doubled (class names and
// paths may hold commas and quotes).
std::string csv_field(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + '"';
}

// The interpretability metrics of one evaluation pass, from the attribution maps of each image:
// the boxes it gives the prototypes of its class (consistency, stability) and its top prototype
// (pointing) against the part annotations, its most similar prototypes' top pixels against its
// object mask (precision), and afterwards each prototype's nearest patches (purity) and its own
// projected patch (background prototypes).
class AuditPass {
 public:
  AuditPass(const EvaluateConfig& c, const fs::path& data, const std::vector<ListEntry>& list, model::ProtoPNetImpl& net,
            const ModelInput& input, torch::Device device)
      : c_(c),
        data_(data),
        list_(list),
        net_(net),
        input_(input),
        device_(device),
        metrics_(net.num_prototypes(), {c.consistency_threshold}),
        nearest_(net.num_prototypes(), c.purity_k),
        weights_(net.last_layer()->weight.detach().cpu()),
        precision_sum_(static_cast<size_t>(net.num_prototypes()), 0.0),
        precision_n_(static_cast<size_t>(net.num_prototypes()), 0) {
    if (wants_any({"consistency", "stability", "pointing", "purity"})) parts_ = read_data_parts(data);
    if (wants("precision") && !has_masks(data)) {
      throw std::runtime_error(data.string() + " has no object masks (masks/), which --metrics precision needs: prepare "
                               "the data with --masks DIR, --cub beside CUB's segmentations/, or --foreground-threshold T");
    }
    own_.resize(static_cast<size_t>(net.prototype_class_identity().size(1)));
    const auto classes = net.prototype_classes();
    for (size_t j = 0; j < classes.size(); ++j) own_[static_cast<size_t>(classes[j])].push_back(static_cast<int64_t>(j));
  }
  bool wants(const char* metric) const { return c_.metrics.count(metric) > 0; }
  bool wants_any(std::initializer_list<const char*> metrics) const {
    return std::any_of(metrics.begin(), metrics.end(), [&](const char* m) { return wants(m); });
  }

  /// `x`: the batch on the device; `d`: its B×P×H×W distances; `out`: what classify() made of `d`;
  /// `noisy_x`, `noisy_d`: the same with input noise (undefined without stability).
  void observe(const Batch& b, int64_t first, const torch::Tensor& x, const torch::Tensor& d,
               const model::ProtoPNetOutput& out, const torch::Tensor& noisy_x, const torch::Tensor& noisy_d) {
    const Needs needs = maps_needed(b, first, out);
    const auto maps = attribution_maps(net_, x, needs.wanted, c_.attribution, needs.seeds, d, kAttributionRows);
    const auto noisy = wants("stability")
                           ? attribution_maps(net_, noisy_x, needs.own, c_.attribution, needs.seeds, noisy_d, kAttributionRows)
                           : std::vector<std::vector<torch::Tensor>>();
    score(needs, maps, noisy);
    if (wants("purity") && !needs.annotated.empty()) {
      const auto rows = torch::tensor(needs.annotated, torch::kInt64);
      nearest_.add(d.index_select(0, rows.to(d.device())), rows + first);
    }
  }

  int64_t annotated_images() const { return annotated_images_; }

  PartMetricsResult finish_parts() {
    if (wants("purity")) measure_purity();
    return metrics_.result();
  }

  /// Precision over the pass, and each prototype's precision on its own projected patch.
  PrecisionResult finish_precision(RunFolder& run) {
    PrecisionResult& r = precision_;
    r.mean = r.pairs ? precision_total_ / static_cast<double>(r.pairs) : -1.0;
    for (size_t j = 0; j < precision_sum_.size(); ++j) {
      r.per_prototype.push_back(precision_n_[j] ? precision_sum_[j] / static_cast<double>(precision_n_[j]) : -1.0);
    }
    r.own_patch.assign(precision_sum_.size(), -1.0);
    const auto projection = run.store().latest_projection();
    if (!projection) return r;
    std::map<std::string, std::vector<int64_t>> of_image;  // push image → its prototypes
    for (const auto& row : run.store().prototypes(*projection)) {
      if (row.prototype < net_.num_prototypes()) of_image[row.image_path].push_back(row.prototype);
    }
    attribution_maps_of_files(net_, data_, input_, of_image, c_.attribution, c_.batch_size, device_, [&](const std::string& path, int64_t prototype, const torch::Tensor& map) {
      const cv::Mat mask = read_image_mask(data_, path);
      if (mask.empty()) return;
      const double p = precision_of(map, mask);
      if (p < 0) {  // a flat map: saliency at the very patch the prototype was projected onto
        ++r.flat_prototypes;
        return;
      }
      r.own_patch[static_cast<size_t>(prototype)] = p;
      ++r.projected_prototypes;
      r.background_prototypes += p < 0.5 ? 1 : 0;
    });
    if (r.projected_prototypes > 0) {
      r.background_share = static_cast<double>(r.background_prototypes) / static_cast<double>(r.projected_prototypes);
    }
    return r;
  }

 private:
  // What a batch's images need maps of: per image, the prototypes of its class (consistency,
  // stability), then its top prototype (pointing), then its most similar ones (precision).
  struct Needs {
    std::vector<std::vector<int64_t>> own, wanted;  // wanted: own, top, most similar, in that order
    std::vector<const ImageParts*> parts;           // null: not annotated
    std::vector<cv::Mat> masks;                     // empty: no mask (or precision not asked for)
    std::vector<uint64_t> seeds;                    // the image's place in the split
    std::vector<int64_t> annotated;                 // rows with part annotations
  };

  Needs maps_needed(const Batch& b, int64_t first, const model::ProtoPNetOutput& out) {
    const auto pred = out.logits.argmax(1).cpu();
    const auto similarity = net_.similarity(out.min_distances).cpu();  // B×P
    const auto top = (similarity * weights_.index_select(0, pred)).argmax(1);
    const int64_t B = b.labels.size(0);
    Needs n;
    n.own.resize(static_cast<size_t>(B));
    n.wanted.resize(static_cast<size_t>(B));
    n.parts.assign(static_cast<size_t>(B), nullptr);
    n.masks.resize(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i) {
      const auto k = static_cast<size_t>(i);
      const std::string& path = list_[static_cast<size_t>(first + i)].path;
      n.seeds.push_back(static_cast<uint64_t>(first + i));
      n.parts[k] = parts_.find(path);
      if (n.parts[k]) {
        n.annotated.push_back(i);
        ++annotated_images_;
        if (wants_any({"consistency", "stability"})) n.own[k] = own_[static_cast<size_t>(b.labels[i].item<int64_t>())];
        n.wanted[k] = n.own[k];
        if (wants("pointing")) n.wanted[k].push_back(top[i].item<int64_t>());
      }
      if (wants("precision")) {
        n.masks[k] = read_image_mask(data_, path);
        if (!n.masks[k].empty()) {
          ++precision_.masked_images;
          const auto most = std::get<1>(similarity[i].topk(std::min<int64_t>(c_.precision_k, similarity.size(1))));
          for (int64_t r = 0; r < most.size(0); ++r) n.wanted[k].push_back(most[r].item<int64_t>());
        }
      }
    }
    return n;
  }

  // Feeds the maps (in the order of Needs::wanted; `noisy` in the order of Needs::own) to the metrics.
  void score(const Needs& needs, const std::vector<std::vector<torch::Tensor>>& maps,
             const std::vector<std::vector<torch::Tensor>>& noisy) {
    for (size_t k = 0; k < maps.size(); ++k) {
      size_t n = 0;
      if (const ImageParts* parts = needs.parts[k]) {
        for (size_t q = 0; q < needs.own[k].size(); ++q, ++n) {
          const uint64_t clean = parts_in(maps[k][n], *parts);
          if (wants("consistency")) metrics_.add_own_class(needs.own[k][q], clean);
          if (wants("stability")) metrics_.add_stability(needs.own[k][q], clean, parts_in(noisy[k][q], *parts));
        }
        const bool any_visible =
            std::any_of(parts->parts.begin(), parts->parts.end(), [](const PartLocation& p) { return p.visible; });
        if (wants("pointing") && any_visible) metrics_.add_pointing(parts_in(maps[k][n], *parts) != 0);
        n += wants("pointing") ? 1 : 0;
      }
      for (; n < needs.wanted[k].size(); ++n) add_precision(needs.wanted[k][n], precision_of(maps[k][n], needs.masks[k]));
    }
  }

  // The parts inside the box a map gives on `img`.
  uint64_t parts_in(const torch::Tensor& map, const ImageParts& img) const {
    const cv::Mat m = tensor_to_mat(map);
    const auto box = c_.part_box > 0 ? peak_box(m, img.width, img.height, c_.part_box)
                                     : high_activation_box(m, img.width, img.height);
    return parts_in_box(img.parts, box.data());
  }

  static double precision_of(const torch::Tensor& map, const cv::Mat& mask) {
    return activation_precision(tensor_to_mat(map), mask);
  }

  void add_precision(int64_t prototype, double p) {
    if (p < 0) return;
    precision_total_ += p;
    ++precision_.pairs;
    precision_sum_[static_cast<size_t>(prototype)] += p;
    ++precision_n_[static_cast<size_t>(prototype)];
  }

  // Purity: the part sets of each prototype's nearest patches over the annotated images.
  void measure_purity() {
    const auto images_t = nearest_.image();
    const auto images = images_t.accessor<int64_t, 2>();
    std::vector<std::vector<uint64_t>> sets(static_cast<size_t>(images_t.size(0)));
    if (c_.attribution.method == Attribution::kUpsample) {
      const auto maps = net_.similarity(nearest_.maps());
      for (int64_t j = 0; j < images_t.size(0); ++j) {
        for (int64_t r = 0; r < images_t.size(1); ++r) {
          const int64_t i = images[j][r];
          if (i >= 0) sets[static_cast<size_t>(j)].push_back(parts_in(maps[j][r], *parts_.find(list_[static_cast<size_t>(i)].path)));
        }
      }
    } else {
      std::map<std::string, std::vector<int64_t>> of_image;
      for (int64_t j = 0; j < images_t.size(0); ++j) {
        for (int64_t r = 0; r < images_t.size(1); ++r) {
          if (images[j][r] >= 0) of_image[list_[static_cast<size_t>(images[j][r])].path].push_back(j);
        }
      }
      attribution_maps_of_files(net_, data_, input_, of_image, c_.attribution, c_.batch_size, device_, [&](const std::string& path, int64_t j, const torch::Tensor& map) {
        sets[static_cast<size_t>(j)].push_back(parts_in(map, *parts_.find(path)));
      });
    }
    for (size_t j = 0; j < sets.size(); ++j) metrics_.add_nearest(static_cast<int64_t>(j), sets[j]);
  }

  const EvaluateConfig& c_;
  fs::path data_;
  const std::vector<ListEntry>& list_;
  model::ProtoPNetImpl& net_;
  ModelInput input_;
  torch::Device device_;
  DataParts parts_;
  PartMetrics metrics_;
  model::NearestPatches nearest_;
  torch::Tensor weights_;
  std::vector<std::vector<int64_t>> own_;  // class → its prototypes
  int64_t annotated_images_ = 0;
  PrecisionResult precision_;
  double precision_total_ = 0;
  std::vector<double> precision_sum_;
  std::vector<int64_t> precision_n_;
};

// The metrics that need the attribution pass (all but sparsity).
bool wants_audit(const EvaluateConfig& c) {
  return std::any_of(std::begin(kAuditMetrics), std::end(kAuditMetrics), [&](const char* m) { return c.metrics.count(m) > 0; });
}
bool wants_parts(const EvaluateConfig& c) {
  return std::any_of(std::begin(kAuditMetrics), std::end(kAuditMetrics) - 1, [&](const char* m) { return c.metrics.count(m) > 0; });
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
torch::Tensor logits_with_audit(model::ProtoPNetImpl& net, const EvaluateConfig& c, const fs::path& data,
                                const std::vector<ListEntry>& list, const ModelInput& input, torch::Device device,
                                AuditPass& audit) {
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
    torch::Tensor noisy_x, noisy_d;
    if (audit.wants("stability")) {
      const auto noise = torch::randn(b.images.sizes(), noise_generator, torch::kFloat32) * c.noise;
      noisy_x = x + noise.to(device);
      noisy_d = net.activations(noisy_x).distances;
    }
    audit.observe(b, b.index * c.batch_size, x, d, out, noisy_x, noisy_d);
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
  const std::string checkpoint = run.model_checkpoint();
  auto net = load_latest_model(run, rt.device);
  net->eval();
  torch::NoGradGuard no_grad;
  for (const auto& output : {c.predictions_csv, c.confusion_csv}) {
    if (!output.empty()) run.check_output(output);  // before the pass, not after it
  }

  // The pass: with part metrics on this process alone, else shared with the other ranks.
  const auto list = read_list(data, c.split);
  std::optional<AuditPass> audit;
  if (wants_audit(c)) audit.emplace(c, data, list, *net, model_input(m), rt.device);
  EvaluateConfig sized = c;  // the batch within the memory budget, the logits (N×C) held besides
  sized.batch_size = feature_batch_size(*net, model_input(m), c.batch_size, rt,
                                        static_cast<int64_t>(list.size()) * m.num_classes * 4, "evaluate");
  if (dist && audit) hand_over_nothing(*dist, "evaluate plan");
  if (dist && !audit) hand_over(*dist, "evaluate plan", {{"batch_size", sized.batch_size}, {"split", c.split}}, m, *net);
  const auto logits = audit ? logits_with_audit(*net, sized, data, list, model_input(m), rt.device, *audit)
                            : logits_of(*net, dist, data, list, model_input(m), sized.batch_size, rt.device, c.split);

  EvaluateResult r;
  r.run = c.run;
  r.split = c.split;
  r.checkpoint = checkpoint;
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
  r.attribution = c.attribution.method;
  r.precision_k = c.precision_k;
  if (audit && c.metrics.count("precision")) {
    r.precision = audit->finish_precision(run);
    if (r.precision.masked_images == 0) {
      throw std::runtime_error(c.data + ": none of the " + c.split + " images has an object mask (" +
                               mask_path(data, list.empty() ? "…" : list.front().path).string() + ")");
    }
  }
  if (audit && wants_parts(c)) {
    r.parts = audit->finish_parts();
    r.annotated_images = audit->annotated_images();
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

EvaluateResult run_evaluate(const EvaluateConfig& config) {
  EvaluateConfig c = config;
  if (c.metrics.erase("all")) {
    c.metrics.insert("sparsity");
    if (has_data_parts(c.data)) c.metrics.insert({"consistency", "stability", "pointing", "purity"});
    if (has_masks(c.data)) c.metrics.insert("precision");
  }
  const Runtime rt = start_runtime(c.runtime);
  const auto dist = join_ranks(c.data);
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
  if (r.metrics.count("precision")) {
    const auto& q = r.precision;
    j["precision"] = {{"value", q.mean},
                      {"pairs", q.pairs},
                      {"masked_images", q.masked_images},
                      {"top_prototypes", r.precision_k},
                      {"per_prototype", q.per_prototype},
                      {"background_share", q.background_share},
                      {"background_prototypes", q.background_prototypes},
                      {"projected_prototypes", q.projected_prototypes},
                      {"flat_prototypes", q.flat_prototypes},
                      {"own_patch", q.own_patch}};
  }
  if (r.annotated_images > 0) {
    j["annotated_images"] = r.annotated_images;
    j["part_box"] = r.part_box;
  }
  if (!j.empty()) j["attribution"] = attribution_name(r.attribution);
  return j.dump();
}

}  // namespace ppnet::pipeline
