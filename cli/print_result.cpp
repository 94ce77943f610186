#include "cli/print_result.h"

#include <nlohmann/json.hpp>

namespace ppnet::cli {

// Text from run.sqlite or a user's files that is not valid UTF-8 (edited by hand: ppnet writes
// names escaped) is shown with U+FFFD rather than failing the whole output.
constexpr auto kInvalidUtf8 = nlohmann::json::error_handler_t::replace;

void print_result(std::ostream& out, const pipeline::WeightsResult& r, bool json) {
  if (json) {
    nlohmann::json j = {{"arch", r.arch},
                        {"file", r.file},
                        {"format", r.format},
                        {"tensors_loaded", r.tensors_loaded},
                        {"parameters", r.parameters},
                        {"ignored", r.ignored},
                        {"defaulted", r.defaulted},
                        {"img_size", r.img_size},
                        {"features", {r.out_channels, r.grid, r.grid}},
                        {"receptive_field", r.receptive_field},
                        {"threads", r.threads}};
    out << j.dump(2, ' ', false, kInvalidUtf8) << '\n';
    return;
  }
  out << r.file << ": " << r.format << ", fits " << r.arch << '\n'
      << "  loaded     " << r.tensors_loaded << " tensors, " << r.parameters << " parameters\n"
      << "  ignored    " << r.ignored.size() << " classification-head tensors\n";
  if (!r.defaulted.empty()) {
    out << "  defaulted  " << r.defaulted.size() << " optional buffers (num_batches_tracked)\n";
  }
  out << "  features   " << r.out_channels << "×" << r.grid << "×" << r.grid << " at "
      << r.img_size << "×" << r.img_size << " px, receptive field " << r.receptive_field
      << " px\n";
}

void print_result(std::ostream& out, const pipeline::PrepareResult& r, bool json) {
  if (json) {
    nlohmann::json j = {{"out", r.out},
                        {"source_kind", r.source_kind},
                        {"classes", r.classes},
                        {"images", r.images},
                        {"source_images_decoded", r.source_images},
                        {"files_written", r.files_written},
                        {"files_kept", r.files_kept},
                        {"part_names", r.part_names},
                        {"annotated_images", r.annotated_images},
                        {"masks_from", r.masks_from.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.masks_from)},
                        {"masked_images", r.masked_images},
                        {"failed", r.failed},
                        {"up_to_date", r.up_to_date},
                        {"seconds", r.seconds},
                        {"threads", r.threads}};
    out << j.dump(2, ' ', false, kInvalidUtf8) << '\n';
    return;
  }
  out << r.out << ": " << r.classes << " classes";
  for (const auto& [split, n] : r.images) out << ", " << split << " " << n;
  out << '\n';
  if (!r.part_names.empty()) {
    out << "  parts: " << r.part_names.size() << " named, on " << r.annotated_images << " images\n";
  }
  if (!r.masks_from.empty()) out << "  object masks (" << r.masks_from << "): " << r.masked_images << " images\n";
  if (r.up_to_date) {
    out << "  already complete: nothing to do\n";
    return;
  }
  out << "  wrote " << r.files_written << " files from " << r.source_images << " source images in "
      << r.seconds << " s (" << r.threads << " threads)";
  if (r.files_kept > 0) out << "; kept " << r.files_kept << " from an earlier run";
  out << '\n';
  if (!r.failed.empty()) {
    out << "  " << r.failed.size() << " source images failed (listed on stderr and in manifest.json)\n";
  }
}

void print_result(std::ostream& out, const pipeline::TrainResult& r, bool json) {
  if (r.rank != 0) return;  // data-parallel: rank 0 speaks for all
  if (json) {
    nlohmann::json epochs = nlohmann::json::array();
    for (const auto& e : r.epochs) {
      epochs.push_back({{"epoch", e.epoch},
                        {"train_loss", e.train_loss},
                        {"train_accuracy", e.train_accuracy},
                        {"eval_split", e.eval_split},
                        {"eval_accuracy", e.eval_accuracy},
                        {"images_per_second", e.images_per_second},
                        {"seconds", e.seconds},
                        {"learning_rate", e.learning_rate}});
    }
    out << nlohmann::json{{"run", r.run},          {"stage", r.stage},
                          {"stage_id", r.stage_id}, {"created_run", r.created_run},
                          {"resumed", r.resumed},   {"already_done", r.already_done},
                          {"epochs", epochs},       {"seconds", r.seconds}}
                .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  if (r.already_done) {
    out << r.run << ": stage " << r.stage << " #" << r.stage_id << " already finished: nothing to do\n";
    return;
  }
  out << r.run << ": stage " << r.stage << " #" << r.stage_id << (r.resumed ? " resumed" : "")
      << (r.created_run ? " (new run)" : "") << ", " << r.epochs.size() << " epochs in " << r.seconds << " s\n";
  if (!r.epochs.empty()) {
    const auto& e = r.epochs.back();
    out << "  last epoch: train loss " << e.train_loss << ", train accuracy " << e.train_accuracy << ", "
        << e.eval_split << " accuracy " << e.eval_accuracy << ", " << e.images_per_second << " images/s\n";
  }
}

namespace {
nlohmann::json prototypes_json(const pipeline::InfoResult& r) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& p : r.prototypes) {
    a.push_back({{"prototype", p.prototype}, {"class_index", p.class_index}, {"class_name", p.class_name},
                 {"image", p.image_path}, {"image_id", p.image_id}, {"cell", {p.cell_h, p.cell_w}},
                 {"distance_before", p.distance_before}, {"distance_after", p.distance_after},
                 {"receptive_field_box", p.rf}, {"box", p.box}, {"patch_png", p.patch_png},
                 {"box_png", p.box_png}, {"heatmap_png", p.heatmap_png}});
  }
  return a;
}

void print_concepts(std::ostream& out, const pipeline::InfoResult& r, bool json) {
  if (json) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& k : r.concepts) {
      a.push_back({{"id", k.id}, {"kind", k.kind},
                   {"class_index", k.class_index >= 0 ? nlohmann::json(k.class_index) : nlohmann::json(nullptr)},
                   {"class_name", k.class_name}, {"created", k.created}, {"origin", k.origin},
                   {"image", k.image_path}, {"box", k.box}});
    }
    out << nlohmann::json{{"run", r.run}, {"concepts", a}}.dump(2, ' ', false, kInvalidUtf8) << '\n';
    return;
  }
  out << r.run << ": " << r.concepts.size() << " concept(s)\n";
  if (r.concepts.empty()) return;
  char line[640];
  std::snprintf(line, sizeof line, "%4s  %-8s %-24s %-32s %-20s %s\n", "id", "kind", "class", "origin",
                "box [x0 y0 x1 y1)", "image");
  out << line;
  for (const auto& k : r.concepts) {
    const std::string box = std::to_string(k.box[0]) + " " + std::to_string(k.box[1]) + " " + std::to_string(k.box[2]) +
                            " " + std::to_string(k.box[3]);
    std::snprintf(line, sizeof line, "%4lld  %-8s %-24s %-32s %-20s %s\n", static_cast<long long>(k.id), k.kind.c_str(),
                  k.class_name.c_str(), k.origin.c_str(), box.c_str(), k.image_path.c_str());
    out << line;
  }
}
}  // namespace

void print_result(std::ostream& out, const pipeline::InfoResult& r, bool json) {
  if (r.listing_concepts) return print_concepts(out, r, json);
  if (!r.prototypes.empty() || r.projection > 0) {
    if (json) {
      out << nlohmann::json{{"run", r.run}, {"projection", r.projection}, {"prototypes", prototypes_json(r)}}.dump(2, ' ', false, kInvalidUtf8)
          << '\n';
      return;
    }
    out << "projection #" << r.projection << " of " << r.run << ": " << r.prototypes.size() << " prototypes\n";
    char line[512];
    std::snprintf(line, sizeof line, "%5s  %-24s %-40s %7s %10s %10s  %s\n", "proto", "class", "source image", "cell",
                  "d before", "d after", "box [x0 y0 x1 y1)");
    out << line;
    for (const auto& p : r.prototypes) {
      const std::string cell = std::to_string(p.cell_h) + "," + std::to_string(p.cell_w);
      const std::string box = std::to_string(p.box[0]) + " " + std::to_string(p.box[1]) + " " + std::to_string(p.box[2]) +
                              " " + std::to_string(p.box[3]);
      std::snprintf(line, sizeof line, "%5lld  %-24s %-40s %7s %10.4f %10.6f  %s\n", static_cast<long long>(p.prototype),
                    p.class_name.c_str(), p.image_path.c_str(), cell.c_str(), p.distance_before, p.distance_after,
                    box.c_str());
      out << line;
    }
    return;
  }
  if (json) {
    nlohmann::json stages = nlohmann::json::array(), epochs = nlohmann::json::array();
    for (const auto& s : r.stages) {
      stages.push_back({{"id", s.id}, {"kind", s.kind}, {"status", s.status}, {"started", s.started},
                        {"finished", s.finished}, {"epochs", s.epochs_done}, {"job", s.job}});
    }
    for (const auto& e : r.epochs) {
      epochs.push_back({{"stage_id", e.stage_id}, {"stage", e.stage}, {"epoch", e.epoch},
                        {"train_loss", e.train_loss}, {"train_cross_entropy", e.train_cross_entropy},
                        {"train_cluster", e.train_cluster}, {"train_separation", e.train_separation},
                        {"train_avg_separation", e.train_avg_separation}, {"train_accuracy", e.train_accuracy},
                        {"eval_split", e.eval_split}, {"eval_cross_entropy", e.eval_cross_entropy},
                        {"eval_accuracy", e.eval_accuracy}, {"l1", e.l1},
                        {"prototype_distance", e.prototype_distance},
                        {"images_per_second", e.images_per_second}, {"seconds", e.seconds}});
    }
    out << nlohmann::json{{"run", r.run},
                          {"created", r.created},
                          {"ppnet_version", r.ppnet_version},
                          {"model", nlohmann::json::parse(r.model_json)},
                          {"data", r.data_path},
                          {"stages", stages},
                          {"epochs", epochs}}
                .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  out << "run    " << r.run << " (created " << r.created << " by " << r.ppnet_version << ")\n"
      << "model  " << r.model_json << "\n"
      << "data   " << r.data_path << "\n\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-6s %-6s %-12s %5s %10s %9s %10s %10s %10s %8s %8s\n", "stage", "epoch", "",
                "", "loss", "CE", "cluster", "separation", "acc", "eval acc", "img/s");
  out << line;
  for (const auto& s : r.stages) {
    std::snprintf(line, sizeof line, "#%-5lld %-6s %-12s\n", static_cast<long long>(s.id), s.kind.c_str(),
                  s.status.c_str());
    out << line;
    for (const auto& e : r.epochs) {
      if (e.stage_id != s.id) continue;
      std::snprintf(line, sizeof line, "%-6s %-6lld %-12s %5s %10.4f %9.4f %10.4f %10.4f %10.4f %8.4f %8.1f\n", "",
                    static_cast<long long>(e.epoch + 1), "", "", e.train_loss, e.train_cross_entropy, e.train_cluster,
                    e.train_separation, e.train_accuracy, e.eval_accuracy, e.images_per_second);
      out << line;
    }
  }
}

void print_result(std::ostream& out, const pipeline::ProjectResult& r, bool json) {
  if (r.rank != 0) return;
  if (json) {
    out << nlohmann::json{{"run", r.run},
                          {"projection", r.projection},
                          {"prototypes", r.prototypes},
                          {"projected", r.projected},
                          {"mean_distance_before", r.mean_distance_before},
                          {"max_distance_after", r.max_distance_after},
                          {"forbidden_concepts", r.forbidden_concepts},
                          {"forbid_threshold", r.forbid_threshold},
                          {"images_per_second", r.images_per_second},
                          {"seconds", r.seconds},
                          {"already_done", r.already_done}}
                .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  if (r.already_done) {
    out << r.run << ": projection #" << r.projection << " already finished: nothing to do\n";
    return;
  }
  out << r.run << ": projection #" << r.projection << ", " << r.projected << " of " << r.prototypes
      << " prototypes projected in " << r.seconds << " s (" << r.images_per_second << " push images/s)\n"
      << "  mean distance to the nearest own-class patch before: " << r.mean_distance_before
      << ", largest re-encoded distance after: " << r.max_distance_after << '\n';
  if (r.forbidden_concepts > 0) {
    out << "  kept off patches with similarity above " << r.forbid_threshold << " to " << r.forbidden_concepts
        << " forbidden concept(s)\n";
  }
  out << "  pictures in " << r.run << "/prototypes/" << r.projection << "/; 'ppnet info --run " << r.run
      << " --prototypes' lists them\n";
}

void print_result(std::ostream& out, const pipeline::LastLayerResult& r, bool json) {
  if (r.rank != 0) return;
  const pipeline::EpochSummary last = r.epochs.empty() ? pipeline::EpochSummary{} : r.epochs.back();
  if (json) {
    out << nlohmann::json{{"run", r.run},
                          {"stage_id", r.stage_id},
                          {"resumed", r.resumed},
                          {"already_done", r.already_done},
                          {"solver", r.solver},
                          {"epochs", r.epochs.size()},
                          {"iterations", r.iterations},
                          {"converged", r.converged},
                          {"initial_objective", r.initial_objective},
                          {"objective", r.objective},
                          {"residual", r.residual},
                          {"off_class_zero", r.off_class_zero},
                          {"solve_seconds", r.solve_seconds},
                          {"train_accuracy", last.train_accuracy},
                          {"eval_split", last.eval_split},
                          {"eval_accuracy", last.eval_accuracy},
                          {"off_class_sparsity", r.off_class_sparsity},
                          {"cache_seconds", r.cache_seconds},
                          {"feature_batch", r.feature_batch},
                          {"cache_dtype", r.cache_dtype},
                          {"seconds", r.seconds}}
                .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  if (r.already_done) {
    out << r.run << ": last-layer stage #" << r.stage_id << " already finished: nothing to do\n";
    return;
  }
  out << r.run << ": last layer #" << r.stage_id << (r.resumed ? " resumed" : "") << ", ";
  if (r.solver == "prox") {
    out << "prox, " << r.iterations << " iterations" << (r.converged ? "" : " (not converged)");
  } else {
    out << "adam, " << r.epochs.size() << " epochs";
  }
  out << " in " << r.seconds << " s (features " << r.cache_seconds << " s, solver " << r.solve_seconds << " s)\n";
  if (r.objective >= 0) {
    out << "  objective " << r.initial_objective << " -> " << r.objective << ", optimality residual " << r.residual
        << '\n';
  }
  out << "  train accuracy " << last.train_accuracy << ", " << last.eval_split << " accuracy " << last.eval_accuracy
      << "; off-class weights exactly zero " << 100.0 * r.off_class_zero << "%, near zero (|w| < 1e-3) "
      << 100.0 * r.off_class_sparsity << "%\n";
}

void print_result(std::ostream& out, const pipeline::EvaluateResult& r, bool json) {
  if (r.rank != 0) return;
  if (json) {
    nlohmann::json j{{"run", r.run},
                          {"split", r.split},
                          {"checkpoint", r.checkpoint},
                          {"images", r.images},
                          {"accuracy", r.accuracy},
                          {"top5_accuracy", r.top5_accuracy},
                          {"class_names", r.class_names},
                          {"per_class_accuracy", r.per_class_accuracy},
                          {"confusion", r.confusion},
                          {"prototypes", r.prototypes},
                          {"off_class_sparsity", r.off_class_sparsity},
                          {"own_class_strongest", r.own_class_strongest},
                          {"images_per_second", r.images_per_second},
                          {"seconds", r.seconds}};
    if (!r.metrics.empty()) j["metrics"] = nlohmann::json::parse(pipeline::metrics_json(r));
    out << j.dump(2, ' ', false, kInvalidUtf8) << '\n';
    return;
  }
  char line[256];
  std::snprintf(line, sizeof line, "%s on %s (%lld images): accuracy %.4f, top-5 %.4f\n", r.run.c_str(), r.split.c_str(),
                static_cast<long long>(r.images), r.accuracy, r.top5_accuracy);
  out << line;
  std::snprintf(line, sizeof line,
                "  %lld prototypes; off-class weights near zero %.1f%%; prototypes strongest for their own class %.1f%%\n",
                static_cast<long long>(r.prototypes), 100 * r.off_class_sparsity, 100 * r.own_class_strongest);
  out << line << "  per class:\n";
  for (size_t k = 0; k < r.class_names.size(); ++k) {
    std::snprintf(line, sizeof line, "    %-32s %.4f\n", r.class_names[k].c_str(), r.per_class_accuracy[k]);
    out << line;
  }
  if (r.metrics.empty()) return;
  out << "  interpretability (" << pipeline::attribution_name(r.attribution) << " attribution";
  if (r.annotated_images > 0) out << "; " << r.annotated_images << " images with part annotations";
  out << "):\n";
  const auto& p = r.parts;
  auto row = [&](const char* name, double value, const std::string& detail) {
    std::snprintf(line, sizeof line, "    %-12s %6.4f  %s\n", name, value, detail.c_str());
    out << line;
  };
  if (r.metrics.count("consistency")) {
    row("consistency", p.consistency,
        std::to_string(p.consistent_prototypes) + " of " + std::to_string(p.consistency_prototypes) +
            " prototypes have one part in their box in ≥ " + std::to_string(static_cast<int>(100 * r.consistency_threshold + 0.5)) +
            "% of their class's images");
  }
  if (r.metrics.count("stability")) {
    char d[96];
    std::snprintf(d, sizeof d, "mean share of images whose part set survives noise σ = %g", r.noise);
    row("stability", p.stability, d);
  }
  if (r.metrics.count("pointing")) {
    row("pointing", p.pointing,
        std::to_string(p.pointing_hits) + " of " + std::to_string(p.pointing_images) +
            " images: the top prototype's box holds a part");
  }
  if (r.metrics.count("purity")) {
    row("purity", p.purity, "mean share of the " + std::to_string(r.purity_k) + " nearest patches holding the same part");
  }
  if (r.metrics.count("precision")) {
    const auto& q = r.precision;
    row("precision", q.mean,
        "mean share of the top 5 % of the top " + std::to_string(r.precision_k) + " prototypes' maps inside the object (" +
            std::to_string(q.masked_images) + " images with masks)");
    if (q.background_share >= 0) {
      row("background", q.background_share,
          std::to_string(q.background_prototypes) + " of " + std::to_string(q.projected_prototypes) +
              " prototypes: precision < 0.5 on their own projected patch");
    } else if (q.flat_prototypes > 0) {
      out << "    background   –       not measurable: the maps of " << q.flat_prototypes
          << " prototypes are flat on their own projected patch (a maximum of their similarity, where "
             "saliency is 0); use --attribution smoothgrad or upsample\n";
    } else {
      out << "    background   –       not measured: needs a projection and push images with masks\n";
    }
  }
  if (r.metrics.count("sparsity")) {
    row("sparsity", r.zero_weights,
        "of last-layer weights exactly 0; " + std::to_string(r.nonzero_weights) + " with |w| ≥ 1e-3; " +
            (r.distinct_patches < 0 ? std::string("no projection")
                                    : std::to_string(r.distinct_patches) + " distinct projected patches for " +
                                          std::to_string(r.prototypes) + " prototypes"));
  }
}

void print_result(std::ostream& out, const pipeline::ExplainResult& r, bool json) {
  if (json) {
    out << nlohmann::json{{"out", r.out},           {"images", r.images},
                          {"explained", r.explained}, {"kept", r.kept},
                          {"failed", r.failed},     {"images_per_second", r.images_per_second},
                          {"seconds", r.seconds}}
                .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  out << r.out << ": explained " << r.explained << " of " << r.images << " images in " << r.seconds << " s ("
      << r.images_per_second << " images/s)";
  if (r.kept) out << "; " << r.kept << " kept from an earlier run";
  out << "\n  open " << r.out << "/index.html\n";
}

void print_result(std::ostream& out, const pipeline::AnalyzeResult& r, bool json) {
  if (json) {
    nlohmann::json protos = nlohmann::json::array();
    for (const auto& p : r.prototypes) {
      nlohmann::json nearest = nlohmann::json::array();
      for (const auto& n : p.nearest) {
        nearest.push_back({{"rank", n.rank},
                           {"image", n.image_path},
                           {"source_id", n.image_id},
                           {"class_index", n.class_index},
                           {"cell", {n.cell_h, n.cell_w}},
                           {"distance", n.distance},
                           {"similarity", n.similarity},
                           {"box", n.box},
                           {"precision", n.precision >= 0 ? nlohmann::json(n.precision) : nlohmann::json(nullptr)},
                           {"patch_png", n.patch_png}});
      }
      protos.push_back({{"prototype", p.prototype},
                        {"class_index", p.class_index},
                        {"own_class", p.own_class},
                        {"precision", p.precision >= 0 ? nlohmann::json(p.precision) : nlohmann::json(nullptr)},
                        {"nearest", nearest}});
    }
    out << nlohmann::json{{"run", r.run},
                          {"analysis", r.analysis},
                          {"split", r.split},
                          {"k", r.k},
                          {"images", r.images},
                          {"attribution", pipeline::attribution_name(r.attribution)},
                          {"class_names", r.class_names},
                          {"prototypes", protos},
                          {"images_per_second", r.images_per_second},
                          {"seconds", r.seconds}}
                .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  int64_t all_own = 0, none_own = 0;
  for (const auto& p : r.prototypes) {
    all_own += p.own_class == static_cast<int64_t>(p.nearest.size()) ? 1 : 0;
    none_own += p.own_class == 0 ? 1 : 0;
  }
  out << r.run << ": analysis #" << r.analysis << ", the " << r.k << " nearest " << r.split << " patches of "
      << r.prototypes.size() << " prototypes over " << r.images << " images in " << r.seconds << " s ("
      << r.images_per_second << " images/s), " << pipeline::attribution_name(r.attribution) << " boxes\n  " << all_own << " prototypes with all of them from their own class, "
      << none_own << " with none\n";
  char line[256];
  for (const auto& p : r.prototypes) {
    std::snprintf(line, sizeof line, "  #%-5lld %-28s %lld/%zu own class;", static_cast<long long>(p.prototype),
                  r.class_names.at(static_cast<size_t>(p.class_index)).c_str(), static_cast<long long>(p.own_class),
                  p.nearest.size());
    out << line;
    if (p.precision >= 0) {
      std::snprintf(line, sizeof line, " precision %.2f;", p.precision);
      out << line;
    }
    for (const auto& n : p.nearest) {
      std::snprintf(line, sizeof line, " %s (%.3g)", n.image_path.c_str(), n.similarity);
      out << line;
    }
    out << '\n';
  }
}

void print_result(std::ostream& out, const pipeline::PruneResult& r, bool json) {
  if (json) {
    nlohmann::json removed = nlohmann::json::array();
    for (const auto& p : r.removed) {
      removed.push_back({{"prototype", p.prototype}, {"class_index", p.class_index}, {"reason", p.reason}, {"detail", p.detail}});
    }
    out << nlohmann::json{{"run", r.run},
                          {"stage_id", r.stage_id},
                          {"dry_run", r.dry_run},
                          {"prototypes_before", r.prototypes_before},
                          {"prototypes_after", r.prototypes_after},
                          {"removed", removed},
                          {"classes_left_without_prototypes", r.classes_left_without_prototypes},
                          {"images_per_second", r.images_per_second},
                          {"seconds", r.seconds}}
                .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  out << r.run << ": " << (r.dry_run ? "would remove " : "removed ") << r.removed.size() << " of " << r.prototypes_before
      << " prototypes (" << r.prototypes_after << " left)";
  if (r.stage_id > 0) out << " as stage #" << r.stage_id;
  out << " in " << r.seconds << " s\n";
  for (const auto& p : r.removed) out << "  #" << p.prototype << " (" << p.reason << "): " << p.detail << '\n';
  for (const auto& name : r.classes_left_without_prototypes) out << "  warning: class " << name << " has no prototype left\n";
  if (r.stage_id > 0) out << "  next: ppnet last-layer --run " << r.run << " --data DATA\n";
}

void print_result(std::ostream& out, const pipeline::ConceptResult& r, bool json) {
  const auto& k = r.concept_row;
  const std::vector<int64_t> box(k.box, k.box + 4);
  if (json) {
    out << nlohmann::json{{"run", r.run},          {"kind", db::to_string(r.kind)},
                          {"removed", r.removed},  {"id", k.id},
                          {"class_index", k.class_index ? nlohmann::json(*k.class_index) : nlohmann::json(nullptr)},
                          {"class_name", r.class_name}, {"origin", k.origin},
                          {"image", k.image_path}, {"box", box},
                          {"count", r.count}}
               .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  const std::string what = r.kind == db::ConceptKind::kForbid ? "forbidden" : "remembered";
  out << r.run << ": " << (r.removed ? "removed " : "") << what << " concept #" << k.id << " (class " << r.class_name
      << ", " << k.origin << ", box " << box[0] << "," << box[1] << "," << box[2] << "," << box[3] << " of "
      << k.image_path << "); " << r.count << " " << what << " concept(s) now\n";
  if (r.removed) return;
  out << (r.kind == db::ConceptKind::kForbid
              ? "  the next 'ppnet train' forgets it, and 'ppnet project' keeps prototypes off patches like it\n"
              : "  the next 'ppnet train' keeps prototypes of its class near it\n");
}

void print_result(std::ostream& out, const pipeline::ImportResult& r, bool json) {
  if (json) {
    out << nlohmann::json{{"run", r.run},
                          {"reference", r.reference},
                          {"sha256", r.sha256},
                          {"format", r.format},
                          {"arch", r.arch},
                          {"img_size", r.img_size},
                          {"classes", r.classes},
                          {"prototypes", r.prototypes},
                          {"prototype_dim", r.prototype_dim},
                          {"add_on", r.add_on},
                          {"activation", r.activation},
                          {"class_names_from", r.class_names_from},
                          {"found", r.found},
                          {"stage_id", r.stage_id},
                          {"checkpoint", r.checkpoint},
                          {"seconds", r.seconds}}
               .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  out << r.run << ": imported " << r.reference << " (" << r.format << ") as stage #" << r.stage_id << " in " << r.seconds
      << " s\n"
      << "  " << r.arch << ", " << r.img_size << " px, " << r.classes << " classes (names from " << r.class_names_from << "), "
      << r.prototypes << " prototypes of " << r.prototype_dim << " channels, " << r.add_on << " add-on layers, " << r.activation
      << " activation\n"
      << "  sha256 " << r.sha256 << "\n"
      << "  next: ppnet evaluate --run " << r.run << " --data DATA, or ppnet explain --run " << r.run << " --dir IMAGES\n";
}

void print_result(std::ostream& out, const pipeline::ExportResult& r, bool json) {
  if (json) {
    out << nlohmann::json{{"run", r.run},
                          {"out", r.out},
                          {"description", r.description},
                          {"format", r.format},
                          {"names", r.names},
                          {"checkpoint", r.checkpoint},
                          {"stage_id", r.stage_id},
                          {"tensors", r.tensors},
                          {"bytes", r.bytes},
                          {"sha256", r.sha256},
                          {"seconds", r.seconds}}
               .dump(2, ' ', false, kInvalidUtf8)
        << '\n';
    return;
  }
  out << r.out << ": " << r.tensors << " tensors (" << r.bytes << " bytes, " << r.format << ", " << r.names
      << " names) of " << r.run << "/" << r.checkpoint << " in " << r.seconds << " s\n"
      << "  " << r.description << ": architecture, image size, prototypes, classes, normalisation, projection\n"
      << "  sha256 " << r.sha256 << '\n';
}

}  // namespace ppnet::cli
