#include "pipeline/data/manifest.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "base/atomic_file.h"
#include "base/parse_number.h"
#include "base/paths.h"

namespace ppnet::pipeline {

namespace fs = std::filesystem;

fs::path prepare_record_path(const fs::path& data) { return data / "prepare.json"; }
fs::path manifest_path(const fs::path& data) { return data / "manifest.json"; }
fs::path list_path(const fs::path& data, const std::string& split) {
  return data / "lists" / (split + ".tsv");
}

std::string manifest_to_json(const Manifest& m) {
  nlohmann::json classes = nlohmann::json::array();
  for (const auto& c : m.classes) classes.push_back({{"index", c.index}, {"name", c.name}, {"folder", c.folder}});
  nlohmann::json j = {{"ppnet_data_version", m.version},
                      {"source", {{"kind", m.source_kind}, {"path", m.source_path}}},
                      {"options", m.options},
                      {"classes", classes},
                      {"counts", m.counts},
                      {"failed", m.failed},
                      {"created_by", m.created_by}};
  return j.dump(1) + "\n";
}

namespace {

// What later commands rely on: classes numbered 0…n−1 in order, distinct names and folders that
// are plain names, and per split one count per class.
void check_manifest(const Manifest& m) {
  if (m.classes.empty()) throw std::runtime_error("no classes");
  std::set<std::string> names, folders;
  for (size_t i = 0; i < m.classes.size(); ++i) {
    const ClassInfo& c = m.classes[i];
    const std::string which = "classes[" + std::to_string(i) + "]";
    if (c.index != static_cast<int>(i)) {
      throw std::runtime_error(which + " has index " + std::to_string(c.index) + ", expected " + std::to_string(i));
    }
    if (c.name.empty() || !names.insert(c.name).second) {
      throw std::runtime_error(which + ": name '" + c.name + "' is empty or repeated");
    }
    if (c.folder.empty() || c.folder == "." || c.folder == ".." || c.folder.find('/') != std::string::npos ||
        !folders.insert(c.folder).second) {
      throw std::runtime_error(which + ": folder '" + c.folder + "' is not a plain folder name of its own");
    }
  }
  for (const auto& [split, counts] : m.counts) {
    if (counts.size() != m.classes.size() ||
        std::any_of(counts.begin(), counts.end(), [](int64_t n) { return n < 0; })) {
      throw std::runtime_error("counts of split '" + split + "': expected " + std::to_string(m.classes.size()) +
                               " numbers >= 0, one per class");
    }
  }
}

}  // namespace

Manifest read_manifest(const fs::path& data) {
  const fs::path path = manifest_path(data);
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(path.string() + ": missing; is " + data.string() +
                             " a folder made by 'ppnet prepare' (and did it finish)?");
  }
  try {
    const auto j = nlohmann::json::parse(in);
    Manifest m;
    m.version = j.at("ppnet_data_version").get<int>();
    if (m.version != kDataFormatVersion) {
      throw std::runtime_error("data format version " + std::to_string(m.version) +
                               " is not the one this ppnet reads (" + std::to_string(kDataFormatVersion) + ")");
    }
    m.source_kind = j.at("source").at("kind").get<std::string>();
    m.source_path = j.at("source").at("path").get<std::string>();
    m.options = j.at("options").get<std::map<std::string, std::string>>();
    for (const auto& c : j.at("classes")) {
      m.classes.push_back({c.at("index").get<int>(), c.at("name").get<std::string>(), c.at("folder").get<std::string>()});
    }
    m.counts = j.at("counts").get<std::map<std::string, std::vector<int64_t>>>();
    m.failed = j.at("failed").get<std::vector<std::string>>();
    m.created_by = j.at("created_by").get<std::string>();
    check_manifest(m);
    return m;
  } catch (const std::exception& e) {
    throw std::runtime_error(path.string() + ": " + e.what());
  }
}

void write_manifest(const fs::path& data, const Manifest& m) {
  write_file_atomic(manifest_path(data), manifest_to_json(m));
}

void write_list(const fs::path& data, const std::string& split, const std::vector<ListEntry>& entries) {
  std::ostringstream os;
  os << "# path\tclass_index\tsource_id\n";
  for (const auto& e : entries) os << e.path << '\t' << e.class_index << '\t' << e.source_id << '\n';
  write_file_atomic(list_path(data, split), os.str());
}

std::vector<ListEntry> read_list(const fs::path& data, const std::string& split) {
  const Manifest manifest = read_manifest(data);
  const auto counted = manifest.counts.find(split);
  if (counted == manifest.counts.end()) {
    throw std::runtime_error(data.string() + " has no " + split + " split" +
                             (split == "val" ? " (prepare it with --val-fraction)" : ""));
  }
  const fs::path path = list_path(data, split);
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": missing");
  const auto classes = static_cast<int64_t>(manifest.classes.size());
  std::vector<ListEntry> out;
  std::vector<int64_t> per_class(manifest.classes.size(), 0);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    const auto where = [&] { return path.string() + " line " + std::to_string(n) + ": "; };
    const auto t1 = line.find('\t');
    const auto t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    int64_t c = 0;
    if (t2 == std::string::npos || !parse_int(line.substr(t1 + 1, t2 - t1 - 1), &c)) {
      throw std::runtime_error(where() + "expected '<path>\\t<class index>\\t<source id>'");
    }
    if (c < 0 || c >= classes) {
      throw std::runtime_error(where() + "class index " + std::to_string(c) + " is not one of the " +
                               std::to_string(classes) + " classes of " + manifest_path(data).string() + " (0 to " +
                               std::to_string(classes - 1) + ")");
    }
    std::string image = line.substr(0, t1);
    if (!stays_inside(image)) {
      throw std::runtime_error(where() + "'" + image + "' is not a path inside " + data.string() +
                               " (lists name images relative to the data folder, without '..')");
    }
    ++per_class[static_cast<size_t>(c)];
    out.push_back({std::move(image), static_cast<int>(c), line.substr(t2 + 1)});
  }
  for (size_t c = 0; c < per_class.size(); ++c) {
    if (per_class[c] != counted->second[c]) {
      throw std::runtime_error(path.string() + " lists " + std::to_string(per_class[c]) + " images of class " +
                               std::to_string(c) + " (" + manifest.classes[c].name + ") where " +
                               manifest_path(data).string() + " counts " + std::to_string(counted->second[c]) +
                               ": the folder was edited or mixes two preparations; prepare it again");
    }
  }
  return out;
}

}  // namespace ppnet::pipeline
