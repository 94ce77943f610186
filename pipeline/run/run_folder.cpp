#include "pipeline/run/run_folder.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>

#include "base/atomic_file.h"
#include "base/log.h"
#include "base/paths.h"
#include "base/sha256.h"

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

namespace {

// Sizes no model of ppnet has: a database edited by hand, not a model to allocate.
void check_model_config(const ModelConfig& m) {
  const auto in = [](const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) {
      throw std::runtime_error(std::string(name) + " " + std::to_string(v) + " is outside " + std::to_string(lo) +
                               "…" + std::to_string(hi));
    }
  };
  in("img_size", m.img_size, 1, 8192);
  in("num_classes", m.num_classes, 1, 1000000);
  in("prototypes_per_class", m.prototypes_per_class, 1, 10000);
  in("prototype_dim", m.prototype_dim, 1, 65536);
  in("prototypes in all", int64_t{m.num_classes} * m.prototypes_per_class, 1, 1000000);
}

}  // namespace

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
    check_model_config(m);
    return m;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("model configuration: ") + e.what());
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
  // A reader of a folder it cannot write (made read-only, on a read-only medium) opens the
  // database read-only: SQLite could not even create the files a WAL reader needs there.
  const bool read_only = access == Access::kRead && (::access(dir.c_str(), W_OK) != 0 || ::access(db.c_str(), W_OK) != 0);
  RunFolder r(dir, std::move(lock), std::make_unique<db::RunStore>(db.string(), read_only));
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
  if (r.has_run()) {
    r.remove_leftovers();
  } else if (!r.store().stages().empty()) {
    throw std::runtime_error((dir / "run.sqlite").string() + " records stages but no run (its row in table run is "
                             "gone): the database was edited; restore it from a copy, or use another --run");
  }
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
  for (const auto& f : store_->files()) referenced.insert(f.path);
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
  ModelConfig m;
  try {
    m = model_config_from_json(run->model_json);
  } catch (const std::exception& e) {
    throw std::runtime_error((dir_ / "run.sqlite").string() + ": " + e.what());
  }
  if (const auto classes = class_names().size(); static_cast<size_t>(m.num_classes) != classes) {
    throw std::runtime_error((dir_ / "run.sqlite").string() + ": the model has " + std::to_string(m.num_classes) +
                             " classes and the data recorded with the run " + std::to_string(classes) +
                             ": the database was edited");
  }
  return m;
}

std::string class_name_of(const std::vector<std::string>& names, int64_t index) {
  if (index >= 0 && static_cast<size_t>(index) < names.size()) return names[static_cast<size_t>(index)];
  return "class " + std::to_string(index) + " (not one of the run's classes)";
}

namespace {

// The data's manifest as recorded when the run in `dir` was created; throws naming run.sqlite
// when it lacks what check_data() and class_names() read.
nlohmann::json recorded_manifest(const fs::path& dir, db::RunStore& store) {
  const auto run = store.run();
  if (!run) throw std::runtime_error(dir.string() + ": holds no run yet");
  try {
    auto manifest = nlohmann::json::parse(run->data_manifest);
    for (const char* key : {"classes", "source", "options", "counts"}) {
      if (!manifest.is_object() || !manifest.contains(key)) throw std::runtime_error(std::string("no ") + key);
    }
    for (const auto& c : manifest.at("classes")) c.at("name").get<std::string>();
    return manifest;
  } catch (const std::exception& e) {
    throw std::runtime_error((dir / "run.sqlite").string() + ": the data manifest recorded with the run: " + e.what());
  }
}

}  // namespace

std::vector<std::string> RunFolder::class_names() {
  const auto manifest = recorded_manifest(dir_, *store_);
  std::vector<std::string> names;
  for (const auto& c : manifest.at("classes")) names.push_back(c.at("name").get<std::string>());
  return names;
}

void RunFolder::check_data(const fs::path& data, const Manifest& manifest) {
  const auto run = store_->run();
  const auto then = recorded_manifest(dir_, *store_);
  const auto now = nlohmann::json::parse(manifest_to_json(manifest));
  if (then.at("source").value("kind", "") == kNoData) {  // imported without data: its classes only
    const bool named = then.at("options").value("class_names", "") == "given";
    bool same = then.at("classes").size() == manifest.classes.size();
    for (size_t k = 0; same && named && k < manifest.classes.size(); ++k) {
      same = then.at("classes")[k].value("name", "") == manifest.classes[k].name;
    }
    if (!same) {
      throw std::runtime_error("run " + dir_.string() + " was imported with " + std::to_string(then.at("classes").size()) +
                               " classes" + (named ? " named by --class-names" : "") + "; the classes of " + data.string() +
                               " differ (" + std::to_string(manifest.classes.size()) + ": " +
                               (manifest.classes.empty() ? std::string() : manifest.classes[0].name) + ", …)");
    }
    return;
  }
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

std::string RunFolder::model_checkpoint() {
  const auto latest = store_->latest_final_checkpoint();
  return latest ? latest->path : checkpoint_name("init");
}

fs::path RunFolder::absolute(const std::string& relative) const {
  if (!stays_inside(relative)) {
    throw std::runtime_error((dir_ / "run.sqlite").string() + " names '" + relative +
                             "' as one of the run's files, which is not a path inside " + dir_.string() +
                             " (was the database edited?); ppnet reads and writes only inside the run folder");
  }
  return dir_ / relative;
}

std::string RunFolder::read_kept(const std::string& relative) {
  const fs::path path = absolute(relative);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw std::runtime_error(path.string() + ": " + (fs::exists(path, ec) ? "not a regular file" : "missing") +
                             "; run " + dir_.string() + " records it as one of its files: restore it from a copy of the run");
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes(static_cast<size_t>(fs::file_size(path, ec)), '\0');  // read in one go: checkpoints are large
  if (ec || !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    throw std::runtime_error(path.string() + ": cannot be read" + (ec ? " (" + ec.message() + ")" : std::string()));
  }
  const std::string recorded = store_->file_sha256(relative);
  if (!recorded.empty()) {
    const std::string actual = sha256_hex(bytes);
    if (actual != recorded) {
      throw std::runtime_error(path.string() + " is damaged: its SHA-256 is " + actual + ", not the " + recorded +
                               " recorded when ppnet wrote it (" + std::to_string(bytes.size()) +
                               " bytes now); restore it from a copy of the run, or train into a new --run");
    }
  }
  return bytes;
}

RunWithData open_run_with_data(const fs::path& run_dir, const fs::path& data) {
  Manifest manifest = read_manifest(data);
  RunFolder run = RunFolder::open(run_dir, Access::kWrite);
  run.check_data(data, manifest);
  ModelConfig model = run.model_config();
  return {std::move(run), std::move(manifest), std::move(model)};
}

ElasticJob ElasticJob::from_environment() {
  ElasticJob job;
  if (const char* id = std::getenv("TORCHELASTIC_RUN_ID")) job.id = id;
  if (const char* count = std::getenv("TORCHELASTIC_RESTART_COUNT"); count && *count) {
    char* end = nullptr;
    const long n = std::strtol(count, &end, 10);
    if (*end != '\0' || n < 0 || n > 1000000) {
      throw std::runtime_error(std::string("TORCHELASTIC_RESTART_COUNT='") + count + "': expected a count of restarts (0 or more)");
    }
    job.restarts = static_cast<int>(n);
  }
  return job;
}

StageStart resolve_stage(RunFolder& run, db::StageKind kind, bool resume, const std::string& settings_json,
                         const std::string& resume_hint, const ElasticJob& job) {
  auto& store = run.store();
  const auto latest = store.latest_stage();
  StageStart s;
  if (latest && latest->kind == kind && job.restarted(*latest)) {
    if (latest->status == db::StageStatus::kFailed) {
      throw std::runtime_error("stage " + std::string(db::to_string(kind)) + " #" + std::to_string(latest->id) + " of run " +
                               run.dir().string() + " failed in this torchrun job (" + job.id +
                               "); its restart does not begin it again");
    }
    log::info("torchrun restart " + std::to_string(job.restarts) + " of job " + job.id + ": stage " +
              db::to_string(kind) + " #" + std::to_string(latest->id) + " began in this job; continuing it");
    resume = true;
  }
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
  s.start_checkpoint = run.model_checkpoint();
  run.absolute(s.start_checkpoint);  // throws, before the stage begins, when it is not inside the run
  s.settings_json = settings_json;
  s.stage_id = store.begin_stage(kind, settings_json, s.start_checkpoint, job.id);
  return s;
}

std::string mark_stage_failed(RunFolder& run, int64_t stage_id, const std::exception& error) {
  std::string message = error.what();
  // LibTorch's errors carry a C++ backtrace after their message: not for the user.
  if (const auto trace = message.find("\nException raised from "); trace != std::string::npos) message.resize(trace);
  const std::string stage = "stage #" + std::to_string(stage_id);
  try {
    for (const auto& row : run.store().stages()) {
      if (row.id == stage_id && row.status == db::StageStatus::kFailed) return message;  // it said so already
    }
    run.store().set_stage_status(stage_id, db::StageStatus::kFailed);
    return message + "\n" + stage + " is marked failed; the next command goes on from the run's last finished stage";
  } catch (const std::exception& e) {
    return message + "\n" + stage + " could not be marked failed either (" + e.what() + ")";
  }
}

}  // namespace ppnet::pipeline
