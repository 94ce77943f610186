#include "pipeline/stages/export_model.h"

#include <torch/torch.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/sha256.h"
#include "base/version.h"
#include "pipeline/formats/safetensors.h"
#include "pipeline/formats/torch_pickle.h"
#include "pipeline/runtime/runtime.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/stages/image_data.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The model's tensors under the chosen names, parameters then buffers.
Tensors named_tensors(model::ProtoPNetImpl& net, bool reference) {
  Tensors out;
  for (const auto& p : net.named_parameters()) out.emplace_back(p.key(), p.value());
  if (reference) out.emplace_back("ones", torch::ones_like(net.prototype_vectors()));  // the reference's constant
  for (const auto& b : net.named_buffers()) {
    if (reference && b.key() == "prototype_class_identity") continue;  // an attribute there, not in its state dict
    out.emplace_back(b.key(), b.value());
  }
  return out;
}

// What the model is, for whoever loads the tensors: everything the reference's constructor and
// ppnet's model configuration take, the classes, the input's normalisation, where the
// prototypes came from.
nlohmann::ordered_json description(RunFolder& run, const ModelConfig& m, model::ProtoPNetImpl& net, const ExportConfig& c,
                                   const ExportResult& r) {
  auto& store = run.store();
  nlohmann::ordered_json prototypes = nullptr;
  if (const auto projection = store.latest_projection()) {
    prototypes = {{"stage", *projection}, {"prototypes", nlohmann::ordered_json::array()}};
    for (const auto& p : store.prototypes(*projection)) {
      prototypes["prototypes"].push_back({{"prototype", p.prototype},
                                          {"class_index", p.class_index},
                                          {"image", p.image_path},
                                          {"image_id", p.image_id},
                                          {"image_size", {p.image_width, p.image_height}},
                                          {"cell", {p.cell_h, p.cell_w}},
                                          {"distance", p.distance_after},
                                          {"receptive_field", {p.rf[0], p.rf[1], p.rf[2], p.rf[3]}},
                                          {"box", {p.box[0], p.box[1], p.box[2], p.box[3]}}});
    }
  }
  const auto& v = net.prototype_vectors();
  return {{"ppnet_export", 1},
          {"created_by", std::string("ppnet ") + kVersion},
          {"run", fs::absolute(c.run).lexically_normal().string()},
          {"checkpoint", r.checkpoint},
          {"stage", r.stage_id},
          {"file", fs::path(c.out).filename().string()},
          {"format", c.format},
          {"names", c.names},
          {"sha256", r.sha256},
          {"arch", m.arch},
          {"img_size", m.img_size},
          {"prototype_shape", {v.size(0), v.size(1), v.size(2), v.size(3)}},
          {"num_classes", m.num_classes},
          {"prototype_activation_function", model::to_string(m.activation)},
          {"epsilon", 1e-4},
          {"add_on_layers_type", model::to_string(m.add_on)},
          {"prototype_classes", net.prototype_classes()},
          {"class_names", run.class_names()},
          {"mean", {kImageMean[0], kImageMean[1], kImageMean[2]}},
          {"std", {kImageStd[0], kImageStd[1], kImageStd[2]}},
          {"resize", resize_name(m.resize)},
          {"projection", prototypes}};
}

}  // namespace

ExportResult run_export(const ExportConfig& c) {
  const auto start = std::chrono::steady_clock::now();
  start_runtime(c.runtime);
  if (c.format != "safetensors" && c.format != "pth") throw std::invalid_argument("--format '" + c.format + "': expected safetensors or pth");
  if (c.names != "reference" && c.names != "ppnet") throw std::invalid_argument("--names '" + c.names + "': expected reference or ppnet");
  ExportResult r;
  r.run = c.run;
  r.out = c.out;
  r.format = c.format;
  r.names = c.names;
  r.description = fs::path(c.out).replace_extension(".json").string();
  if (fs::path(c.out).extension() == ".json") throw std::invalid_argument("--out " + c.out + ": the JSON beside it would have its name");
  auto run = RunFolder::open(c.run, Access::kRead);
  run.check_output(c.out);
  run.check_output(r.description);
  const ModelConfig m = run.model_config();
  r.checkpoint = run.model_checkpoint();
  if (const auto latest = run.store().latest_final_checkpoint()) r.stage_id = latest->stage_id;
  auto net = load_latest_model(run, torch::kCPU);
  const Tensors tensors = named_tensors(*net, c.names == "reference");
  const std::string bytes = c.format == "pth" ? torch_save_bytes(tensors)
                                              : safetensors_bytes(tensors, {{"format", "pt"}, {"ppnet_names", c.names}});
  r.tensors = static_cast<int64_t>(tensors.size());
  r.bytes = static_cast<int64_t>(bytes.size());
  r.sha256 = sha256_hex(bytes);
  create_folders(fs::absolute(c.out).parent_path());
  write_file_atomic(c.out, bytes);
  write_file_atomic(r.description, description(run, m, *net, c, r).dump(1) + "\n");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace ppnet::pipeline
