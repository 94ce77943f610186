#include <filesystem>
#include <nlohmann/json.hpp>

#include "pipeline/run/concepts.h"
#include "pipeline/run/info.h"
#include "pipeline/run/run_folder.h"

namespace ppnet::pipeline {

namespace fs = std::filesystem;

InfoResult run_info(const InfoConfig& c) {
  RunFolder run = RunFolder::open(c.run);
  const auto r = *run.store().run();
  InfoResult info;
  info.run = c.run;
  info.created = r.created;
  info.ppnet_version = r.ppnet_version;
  // The configuration every command uses: what an earlier release left out, with its default.
  try {
    info.model_json = model_config_json(model_config_from_json(r.model_json));
  } catch (const std::exception&) {
    info.model_json = r.model_json;  // shown as recorded; the commands that need it say what is wrong
  }
  info.data_path = r.data_path;
  if (c.concepts) {
    const auto names = run.class_names();
    info.listing_concepts = true;
    for (const auto& k : run.store().concepts()) {
      ConceptInfo ci;
      ci.id = k.id;
      ci.kind = db::to_string(k.kind);
      ci.class_index = k.class_index.value_or(-1);
      ci.class_name = concept_class_name(k, names);
      ci.created = k.created;
      ci.origin = k.origin;
      ci.image_path = k.image_path;
      ci.box.assign(k.box, k.box + 4);
      info.concepts.push_back(ci);
    }
    return info;
  }
  if (c.prototypes) {
    const auto projection = run.store().latest_projection();
    if (!projection) throw std::runtime_error(c.run + ": no projection yet; run 'ppnet project' first");
    info.projection = *projection;
    const auto names = run.class_names();
    for (const auto& p : run.store().prototypes(*projection)) {
      PrototypeInfo pi;
      pi.prototype = p.prototype;
      pi.class_index = p.class_index;
      pi.class_name = class_name_of(names, p.class_index);
      pi.image_path = p.image_path;
      pi.image_id = p.image_id;
      pi.cell_h = p.cell_h;
      pi.cell_w = p.cell_w;
      pi.distance_before = p.distance_before;
      pi.distance_after = p.distance_after;
      pi.rf.assign(p.rf, p.rf + 4);
      pi.box.assign(p.box, p.box + 4);
      const std::string stem = "prototypes/" + std::to_string(*projection) + "/" + std::to_string(p.prototype);
      if (fs::exists(run.dir() / (stem + "-patch.png"))) {
        pi.patch_png = stem + "-patch.png";
        pi.box_png = stem + "-box.png";
        pi.heatmap_png = stem + "-heatmap.png";
      }
      info.prototypes.push_back(pi);
    }
  }
  const auto epochs = run.store().epochs();
  for (const auto& s : run.store().stages()) {
    StageInfo si{s.id, db::to_string(s.kind), db::to_string(s.status), s.started, s.finished, 0, 0, 0, "", s.job};
    for (const auto& e : epochs) {
      if (e.stage_id != s.id) continue;
      ++si.epochs_done;
      si.last_train_loss = e.train_loss;
      si.last_eval_accuracy = e.eval_accuracy;
      si.eval_split = e.eval_split;
      info.epochs.push_back({e.stage_id, db::to_string(s.kind), e.epoch, e.train_loss, e.train_cross_entropy, e.train_cluster,
                             e.train_separation, e.train_avg_separation, e.train_accuracy, e.eval_split,
                             e.eval_cross_entropy, e.eval_accuracy, e.l1, e.prototype_distance, e.images_per_second,
                             e.seconds});
    }
    info.stages.push_back(si);
  }
  return info;
}

}  // namespace ppnet::pipeline
