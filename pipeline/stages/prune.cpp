#include <torch/torch.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "pipeline/stages/prune.h"

#include "base/atomic_file.h"
#include "base/interrupt.h"
#include "pipeline/stages/nearest_search.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/runtime/runtime.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A prune starts from a finished run with a projection, never in the middle of another stage.
int64_t require_projection(RunFolder& run, const std::string& run_name) {
  const auto latest = run.store().latest_stage();
  if (latest && latest->unfinished()) {
    throw std::runtime_error(std::string("stage ") + db::to_string(latest->kind) + " #" + std::to_string(latest->id) + " of run " + run_name +
                             " did not finish; continue it with --resume first");
  }
  const auto projection = run.store().latest_projection();
  if (!projection) throw std::runtime_error(run_name + ": nothing to prune before the prototypes are projected (ppnet project)");
  return *projection;
}

// The reference's rule: fewer than `threshold` of the k nearest push patches from the class.
void by_nearest_patches(const model::NearestPatches& nearest, const std::vector<ListEntry>& push,
                        const std::vector<int64_t>& classes, const PruneConfig& c, std::map<int64_t, PrunedPrototype>& out) {
  const auto images_t = nearest.image();
  const auto images = images_t.accessor<int64_t, 2>();
  for (int64_t j = 0; j < images_t.size(0); ++j) {
    int64_t own = 0, found = 0;
    for (int64_t r = 0; r < images_t.size(1); ++r) {
      const int64_t i = images[j][r];
      if (i < 0) continue;
      ++found;
      own += push[static_cast<size_t>(i)].class_index == classes[static_cast<size_t>(j)] ? 1 : 0;
    }
    if (own < c.threshold) {
      out[j] = {j, classes[static_cast<size_t>(j)], "nearest",
                std::to_string(own) + " of its " + std::to_string(found) + " nearest push patches are of its class (threshold " +
                    std::to_string(c.threshold) + ")"};
    }
  }
}

// Two prototypes of a class projected onto the same image and cell are the same vector: the
// later one goes, its weights merged into the first (`merge_into` later → first).
void duplicates(const std::vector<db::PrototypeRow>& rows, std::map<int64_t, PrunedPrototype>& out,
                std::map<int64_t, int64_t>& merge_into) {
  std::map<std::tuple<int64_t, std::string, int64_t, int64_t>, int64_t> first;
  for (const auto& r : rows) {
    const auto key = std::make_tuple(r.class_index, r.image_path, r.cell_h, r.cell_w);
    const auto [it, fresh] = first.emplace(key, r.prototype);
    if (fresh || out.count(r.prototype)) continue;
    if (out.count(it->second)) {  // the first one goes by the other rule: this one takes its place
      it->second = r.prototype;
      continue;
    }
    out[r.prototype] = {r.prototype, r.class_index, "duplicate",
                        "projected onto the same patch as prototype " + std::to_string(it->second) + " (" + r.image_path +
                            ", cell " + std::to_string(r.cell_h) + "," + std::to_string(r.cell_w) + ")"};
    merge_into[r.prototype] = it->second;
  }
}

// What a prune removes, and why; the duplicates whose last-layer columns merge into another.
struct PrunePlan {
  std::map<int64_t, PrunedPrototype> removed;
  std::map<int64_t, int64_t> merge_into;
  std::vector<int64_t> keep;
};

// 1. The reference's nearest-patch rule and the duplicates, and what that leaves of each class.
PrunePlan plan_prune(const PruneConfig& c, const RunWithData& opened, model::ProtoPNetImpl& net,
                     const std::vector<db::PrototypeRow>& rows, torch::Device device, Clock::time_point start,
                     PruneResult& report) {
  const fs::path data(c.data);
  const std::vector<int64_t> classes = net.prototype_classes();
  PrunePlan plan;
  if (c.threshold > 0) {
    const auto push = read_list(data, "push");
    const auto nearest = search_nearest_patches(net, data, push, model_input(opened.model), c.batch_size, c.k, device,
                                                "prune: search push");
    report.images_per_second =
        static_cast<double>(push.size()) / std::max(std::chrono::duration<double>(Clock::now() - start).count(), 1e-9);
    by_nearest_patches(nearest, push, classes, c, plan.removed);
  }
  if (c.duplicates) duplicates(rows, plan.removed, plan.merge_into);
  std::vector<bool> class_kept(opened.manifest.classes.size(), false);
  for (int64_t j = 0; j < net.num_prototypes(); ++j) {
    if (plan.removed.count(j)) continue;
    plan.keep.push_back(j);
    class_kept[static_cast<size_t>(classes[static_cast<size_t>(j)])] = true;
  }
  for (const auto& [j, p] : plan.removed) report.removed.push_back(p);
  for (size_t k = 0; k < class_kept.size(); ++k) {
    if (!class_kept[k]) report.classes_left_without_prototypes.push_back(opened.manifest.classes[k].name);
  }
  report.prototypes_after = static_cast<int64_t>(plan.keep.size());
  return plan;
}

// 2. The pruned model: duplicates' weights merged, then only the kept prototypes.
void prune_model(model::ProtoPNetImpl& net, const PrunePlan& plan) {
  {
    torch::NoGradGuard no_grad;
    auto& w = net.last_layer()->weight;
    for (const auto& [from, to] : plan.merge_into) w.select(1, to).add_(w.select(1, from));
  }
  net.keep_prototypes(plan.keep);
}

// 3. Files first (named after the stage id the commit will use; leftovers of a prune killed
//    before its commit are replaced), then one transaction makes them the run's. Returns the
//    stage's id.
int64_t commit_prune(const PruneConfig& c, RunFolder& run, model::ProtoPNetImpl& net, const PrunePlan& plan,
                     int64_t projection, const std::vector<db::PrototypeRow>& rows, const PruneResult& report) {
  db::RunStore& store = run.store();
  db::StageRow stage;
  stage.id = store.next_stage_id();
  stage.started = db::utc_now();
  stage.start_checkpoint = run.model_checkpoint();
  stage.config_json = nlohmann::json{{"k", c.k},
                                     {"threshold", c.threshold},
                                     {"duplicates", c.duplicates},
                                     {"projection", projection},
                                     {"kept", plan.keep}}
                          .dump();
  const std::string checkpoint = run.checkpoint_name("prune" + std::to_string(stage.id));
  const std::string sha256 = save_checkpoint(run.absolute(checkpoint), net, nullptr, nullptr);
  const fs::path from_pics = run.dir() / "prototypes" / std::to_string(projection);
  const fs::path to_pics = run.dir() / "prototypes" / std::to_string(stage.id);
  fs::remove_all(to_pics);
  create_folders(to_pics);
  std::map<int64_t, const db::PrototypeRow*> row_of;
  for (const auto& r : rows) row_of[r.prototype] = &r;
  std::vector<db::PrototypeRow> kept_rows;
  for (size_t n = 0; n < plan.keep.size(); ++n) {
    stop_if_requested("interrupted; the run is unchanged");
    const int64_t j = plan.keep[n];
    const auto row = row_of.find(j);
    if (row == row_of.end()) continue;  // never projected (no push image of its class)
    db::PrototypeRow r = *row->second;
    r.stage_id = stage.id;
    r.prototype = static_cast<int64_t>(n);
    kept_rows.push_back(r);
    for (const char* picture : {"-patch.png", "-box.png", "-heatmap.png"}) {
      const fs::path src = from_pics / (std::to_string(j) + picture);
      if (fs::exists(src)) fs::copy_file(src, to_pics / (std::to_string(n) + picture));
    }
  }
  std::vector<db::PrunedRow> removed_rows;
  for (const auto& p : report.removed) removed_rows.push_back({p.prototype, p.class_index, p.reason, p.detail});
  store.add_prune(stage, kept_rows, removed_rows, {checkpoint, sha256});
  return stage.id;
}

}  // namespace

PruneResult run_prune(const PruneConfig& c) {
  const auto start = Clock::now();
  const Runtime rt = start_runtime(c.runtime);
  RunWithData opened = open_run_with_data(c.run, fs::path(c.data));
  RunFolder& run = opened.run;
  const int64_t projection = require_projection(run, c.run);
  const auto rows = run.store().prototypes(projection);
  auto net = load_latest_model(run, rt.device);
  net->eval();
  InterruptScope interrupt_scope;

  PruneResult report;
  report.run = c.run;
  report.dry_run = c.dry_run;
  report.prototypes_before = net->num_prototypes();
  const PrunePlan plan = plan_prune(c, opened, *net, rows, rt.device, start, report);
  if (!c.dry_run && !plan.removed.empty()) {
    if (plan.keep.empty()) throw std::runtime_error("every prototype would be removed; lower --threshold");
    prune_model(*net, plan);
    report.stage_id = commit_prune(c, run, *net, plan, projection, rows, report);
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

}  // namespace ppnet::pipeline
