#include "pipeline/stages/import_model.h"

#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "base/paths.h"
#include "base/sha256.h"
#include "base/version.h"
#include "pipeline/formats/reference_model.h"
#include "pipeline/runtime/runtime.h"
#include "pipeline/stages/checkpoint.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

// The file's class names, one per line in class order (blank lines at the end ignored).
std::vector<std::string> read_class_names(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open file");
  std::vector<std::string> names;
  std::set<std::string> seen;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  for (size_t k = 0; k < names.size(); ++k) {
    const std::string where = path + " line " + std::to_string(k + 1);
    if (names[k].empty()) throw std::runtime_error(where + ": an empty class name");
    if (!seen.insert(names[k]).second) throw std::runtime_error(where + ": class name '" + printable(names[k]) + "' appears twice");
  }
  return names;
}

// The classes the run records: the data's (with its manifest, for later commands to check
// against), the file's, or numbers.
Manifest run_classes(const ImportConfig& c, const ReferenceModel& ref, ImportResult& result) {
  const int64_t classes = ref.options.num_classes;
  const auto count_error = [&](const std::string& from, size_t n) {
    return std::runtime_error(from + " has " + std::to_string(n) + " classes but the model in " + c.reference + " has " +
                              std::to_string(classes));
  };
  if (!c.data.empty()) {
    Manifest m = read_manifest(c.data);
    if (static_cast<int64_t>(m.classes.size()) != classes) throw count_error(manifest_path(c.data).string(), m.classes.size());
    for (size_t k = 0; k < ref.class_names.size(); ++k) {
      if (ref.class_names[k] != m.classes[k].name) {
        throw std::runtime_error(c.reference + " was exported with class " + std::to_string(k) + " named '" +
                                 printable(ref.class_names[k]) + "'; " + manifest_path(c.data).string() + " names it '" +
                                 printable(m.classes[k].name) + "'");
      }
    }
    result.class_names_from = "data";
    return m;
  }
  Manifest m;
  m.source_kind = kNoData;
  m.created_by = std::string("ppnet ") + kVersion + " import";
  std::vector<std::string> names;
  if (!c.class_names.empty()) {
    names = read_class_names(c.class_names);
    if (static_cast<int64_t>(names.size()) != classes) throw count_error(c.class_names, names.size());
    m.options["class_names"] = "given";
    result.class_names_from = "file";
  } else if (!ref.class_names.empty()) {
    names = ref.class_names;
    m.options["class_names"] = "given";
    result.class_names_from = "description";
  } else {
    for (int64_t k = 0; k < classes; ++k) names.push_back(std::to_string(k));
    m.options["class_names"] = "numbered";
    result.class_names_from = "numbers";
  }
  for (size_t k = 0; k < names.size(); ++k) m.classes.push_back({static_cast<int>(k), names[k], std::to_string(k)});
  return m;
}

// A ppnet model holding exactly the file's tensors: the prototype count may be any (a pruned
// model's), every other shape is the architecture's.
model::ProtoPNet imported_model(const ReferenceModel& ref, const std::string& path) {
  model::ProtoPNet net(ref.options);
  try {
    net->receptive_field(ref.img_size);  // throws when the image is too small for the backbone
    torch::NoGradGuard no_grad;
    net->prototype_vectors().set_data(torch::empty_like(ref.state.at("prototype_vectors")));
    net->last_layer()->weight.set_data(torch::empty_like(ref.state.at("last_layer.weight")));
    for (auto& b : net->named_buffers(false)) {
      if (b.key() == "prototype_class_identity") b.value().set_data(torch::empty_like(ref.state.at("prototype_class_identity")));
    }
    model::load_torchvision_state(*net, ref.state);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": as a " + ref.options.arch + " ProtoPNet: " + e.what());
  }
  return net;
}

}  // namespace

ImportResult run_import(const ImportConfig& c) {
  const auto start = std::chrono::steady_clock::now();
  start_runtime(c.runtime);
  if (!c.data.empty() && !c.class_names.empty()) {
    throw std::invalid_argument("--class-names is for a run without --data (the data names its classes)");
  }
  ImportResult result;
  result.run = c.run;
  result.reference = c.reference;
  // 1. Read and check everything before the run folder is touched.
  ReferenceModel ref = read_reference_model(c.reference, {c.arch, c.img_size, c.activation});
  result.sha256 = sha256_of_file(c.reference);
  const Manifest manifest = run_classes(c, ref, result);
  model::ProtoPNet net = imported_model(ref, c.reference);

  // 2. The run: the model as stage 1's checkpoint, then one transaction makes it the run's.
  RunFolder run = RunFolder::open_or_create(c.run);
  if (run.has_run()) throw std::runtime_error(c.run + " already holds a run; import into a new folder");
  ModelConfig m;
  m.arch = ref.options.arch;
  m.img_size = ref.img_size;
  m.num_classes = static_cast<int>(ref.options.num_classes);
  m.prototypes_per_class = static_cast<int>(ref.options.prototypes_per_class);
  m.prototype_dim = static_cast<int>(ref.options.prototype_dim);
  m.add_on = ref.options.add_on;
  m.activation = ref.options.activation;
  m.pretrained = true;  // a trained model: later stages take the reference's settings
  result.checkpoint = run.checkpoint_name("import1");
  const std::string sha256 = save_checkpoint(run.absolute(result.checkpoint), *net, nullptr, nullptr);
  db::StageRow stage;
  stage.started = db::utc_now();
  stage.config_json = nlohmann::json{{"source", fs::absolute(c.reference).lexically_normal().string()},
                                     {"sha256", result.sha256},
                                     {"format", ref.format},
                                     {"found", ref.found},
                                     {"class_names", result.class_names_from}}
                          .dump();
  const std::string data_path = c.data.empty() ? std::string() : fs::absolute(c.data).lexically_normal().string();
  result.stage_id = run.store().create_imported_run(
      {db::utc_now(), std::string("ppnet ") + kVersion, model_config_json(m), data_path, manifest_to_json(manifest)}, stage,
      {result.checkpoint, sha256});

  result.format = ref.format;
  result.found = ref.found;
  result.arch = m.arch;
  result.add_on = model::to_string(m.add_on);
  result.activation = model::to_string(m.activation);
  result.img_size = m.img_size;
  result.classes = m.num_classes;
  result.prototypes = ref.num_prototypes;
  result.prototype_dim = m.prototype_dim;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace ppnet::pipeline
