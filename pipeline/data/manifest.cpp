#include "pipeline/data/manifest.h"

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "base/atomic_file.h"
#include "base/parse_number.h"

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
  const fs::path path = list_path(data, split);
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": missing");
  std::vector<ListEntry> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    const auto t1 = line.find('\t');
    const auto t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    try {
      if (t2 == std::string::npos) throw std::invalid_argument("tabs");
      int64_t c = 0;
      if (!parse_int(line.substr(t1 + 1, t2 - t1 - 1), &c) || c < 0 || c > std::numeric_limits<int>::max()) throw std::invalid_argument("class");
      out.push_back({line.substr(0, t1), static_cast<int>(c), line.substr(t2 + 1)});
    } catch (const std::exception&) {
      throw std::runtime_error(path.string() + " line " + std::to_string(n) +
                               ": expected '<path>\\t<class index>\\t<source id>'");
    }
  }
  return out;
}

std::vector<ListEntry> read_split_list(const fs::path& data, const Manifest& manifest, const std::string& split) {
  if (!manifest.counts.count(split)) {
    throw std::runtime_error(data.string() + " has no " + split + " split" +
                             (split == "val" ? " (prepare it with --val-fraction)" : ""));
  }
  return read_list(data, split);
}

}  // namespace ppnet::pipeline
