#include "pipeline/run/run_folder.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>

#include "base/atomic_file.h"

namespace ppnet::pipeline {

namespace fs = std::filesystem;

std::string model_config_json(const ModelConfig& m) {
  return nlohmann::json{{"arch", m.arch},
                        {"img_size", m.img_size},
                        {"num_classes", m.num_classes},
                        {"prototypes_per_class", m.prototypes_per_class},
                        {"prototype_dim", m.prototype_dim},
                        {"add_on", model::to_string(m.add_on)},
                        {"activation", model::to_string(m.activation)},
                        {"resize", resize_name(m.resize)},
                        {"pretrained", m.pretrained}}
      .dump();
}

ModelConfig model_config_from_json(const std::string& json) {
  try {
    const auto j = nlohmann::json::parse(json);
    ModelConfig m;
    m.arch = j.at("arch").get<std::string>();
    m.img_size = j.at("img_size").get<int>();
    m.num_classes = j.at("num_classes").get<int>();
    m.prototypes_per_class = j.at("prototypes_per_class").get<int>();
    m.prototype_dim = j.at("prototype_dim").get<int>();
    m.add_on = model::parse_add_on_type(j.at("add_on").get<std::string>());
    m.pretrained = j.value("pretrained", false);  // absent in runs made before 0.2
    m.activation = model::parse_activation(j.value("activation", std::string("log")));  // absent before --activation
    m.resize = parse_resize(j.value("resize", std::string("bilinear")));  // absent in runs made before 0.2
    return m;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("model configuration in run.sqlite: ") + e.what());
  }
}

RunFolder::RunFolder(fs::path dir, std::unique_ptr<RunLock> lock, std::unique_ptr<db::RunStore> store)
    : dir_(std::move(dir)), lock_(std::move(lock)), store_(std::move(store)) {}

RunFolder RunFolder::open(const fs::path& dir, Access access) {
  const fs::path db = dir / "run.sqlite";
  if (!fs::exists(db)) {
    throw std::runtime_error(dir.string() + ": no run here (no run.sqlite); 'ppnet train' creates one");
  }
  auto lock = access == Access::kWrite ? std::make_unique<RunLock>(dir) : nullptr;
  RunFolder r(dir, std::move(lock), std::make_unique<db::RunStore>(db.string()));
  if (!r.has_run()) throw std::runtime_error(db.string() + ": holds no run yet; 'ppnet train' creates one");
  if (access == Access::kWrite) r.remove_leftovers();
  return r;
}

RunFolder RunFolder::open_or_create(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir / "checkpoints", ec);
  if (ec) throw std::runtime_error(dir.string() + ": cannot create the run folder: " + ec.message());
  auto lock = std::make_unique<RunLock>(dir);
  RunFolder r(dir, std::move(lock), std::make_unique<db::RunStore>((dir / "run.sqlite").string()));
  if (r.has_run()) r.remove_leftovers();
  return r;
}

size_t RunFolder::remove_leftovers() {
  size_t removed = 0;
  for (const char* sub : {"checkpoints", "prototypes", "analysis"}) removed += remove_temporary_files(dir_ / sub);

  std::set<std::string> referenced;
  for (const auto& stage : store_->stages()) {
    referenced.insert(stage.start_checkpoint);
    for (const auto& ck : store_->checkpoints(stage.id)) referenced.insert(ck.path);
  }
  static const std::regex kOwnCheckpoint(R"((stage\d+-e\d+-b\d+|project\d+|prune\d+)\.pt)");
  std::error_code ec;
  std::vector<fs::path> doomed;
  for (auto it = fs::directory_iterator(dir_ / "checkpoints", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (std::regex_match(name, kOwnCheckpoint) && !referenced.count("checkpoints/" + name)) doomed.push_back(it->path());
  }
  // Pictures written under the id of a stage or analysis whose commit never came.
  const auto numbered_from = [&](const char* sub, int64_t first_unused) {
    for (auto it = fs::directory_iterator(dir_ / sub, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.empty() && name.size() < 18 && std::all_of(name.begin(), name.end(), ::isdigit) &&
          std::stoll(name) >= first_unused) {
        doomed.push_back(it->path());
      }
    }
    ec.clear();
  };
  ec.clear();
  numbered_from("prototypes", store_->next_stage_id());
  numbered_from("analysis", store_->next_analysis_id());
  for (const auto& p : doomed) removed += fs::remove_all(p, ec) > 0 ? 1 : 0;
  return removed;
}

bool RunFolder::has_run() { return store_->run().has_value(); }

ModelConfig RunFolder::model_config() {
  const auto run = store_->run();
  if (!run) throw std::runtime_error(dir_.string() + ": holds no run yet");
  return model_config_from_json(run->model_json);
}

std::vector<std::string> RunFolder::class_names() {
  const auto run = store_->run();
  if (!run) throw std::runtime_error(dir_.string() + ": holds no run yet");
  std::vector<std::string> names;
  const auto manifest = nlohmann::json::parse(run->data_manifest);
  for (const auto& c : manifest.at("classes")) names.push_back(c.at("name").get<std::string>());
  return names;
}

void RunFolder::check_data(const fs::path& data, const Manifest& manifest) {
  const auto run = store_->run();
  const auto then = nlohmann::json::parse(run->data_manifest);
  const auto now = nlohmann::json::parse(manifest_to_json(manifest));
  for (const char* key : {"classes", "source", "options", "counts"}) {
    if (then.at(key) != now.at(key)) {
      throw std::runtime_error("run " + dir_.string() + " was created with the data in " + run->data_path +
                               "; " + data.string() + " differs in its " + key +
                               " (use the same data, or another --run)");
    }
  }
}

void RunFolder::check_output(const fs::path& output) const {
  std::error_code ec;
  const fs::path file = fs::weakly_canonical(fs::absolute(output), ec);
  const fs::path run = fs::weakly_canonical(fs::absolute(dir_), ec);
  const fs::path inside = file.lexically_relative(run);
  if (inside.empty() || *inside.begin() == "..") return;
  const std::string first = inside.begin()->string();
  static const char* const kKept[] = {"run.sqlite", "run.sqlite-wal", "run.sqlite-shm", "run.sqlite-journal", ".lock"};
  const bool kept_file = std::find(std::begin(kKept), std::end(kKept), inside.generic_string()) != std::end(kKept);
  if (kept_file || first == "checkpoints" || first == "prototypes" || first == "analysis") {
    throw std::runtime_error(output.string() + ": is one of the files of run " + dir_.string() +
                             " (its database, lock, checkpoints or pictures); choose another path");
  }
}

std::string RunFolder::checkpoint_name(const std::string& tag) const { return "checkpoints/" + tag + ".pt"; }

RunWithData open_run_with_data(const fs::path& run_dir, const fs::path& data) {
  Manifest manifest = read_manifest(data);
  RunFolder run = RunFolder::open(run_dir, Access::kWrite);
  run.check_data(data, manifest);
  ModelConfig model = run.model_config();
  return {std::move(run), std::move(manifest), std::move(model)};
}

StageStart resolve_stage(RunFolder& run, db::StageKind kind, bool resume, const std::string& settings_json,
                         const std::string& resume_hint) {
  auto& store = run.store();
  const auto latest = store.latest_stage();
  StageStart s;
  if (latest && latest->unfinished()) {
    if (!resume || latest->kind != kind) {
      throw std::runtime_error(std::string("stage ") + db::to_string(latest->kind) + " #" + std::to_string(latest->id) + " of run " +
                               run.dir().string() + " did not finish; continue it first" +
                               (latest->kind == kind ? " with " + resume_hint : std::string()));
    }
    s.stage_id = latest->id;
    s.settings_json = latest->config_json;
    s.start_checkpoint = latest->start_checkpoint;
    s.resumed = true;
    return s;
  }
  if (resume && latest && latest->kind == kind && latest->status == db::StageStatus::kDone) {
    s.stage_id = latest->id;
    s.settings_json = latest->config_json;
    s.already_done = true;
    return s;
  }
  const auto base = store.latest_final_checkpoint();
  s.start_checkpoint = base ? base->path : run.checkpoint_name("init");
  s.settings_json = settings_json;
  s.stage_id = store.begin_stage(kind, settings_json, s.start_checkpoint);
  return s;
}

}  // namespace ppnet::pipeline
