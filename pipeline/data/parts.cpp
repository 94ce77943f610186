#include "pipeline/data/parts.h"

#include <cmath>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>
#include <stdexcept>

#include "base/atomic_file.h"
#include "base/parse_number.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxParts = 64;  // part sets are 64-bit masks

[[noreturn]] void bad(const fs::path& path, int line, const std::string& what) {
  throw std::runtime_error(path.string() + " line " + std::to_string(line) + ": " + what);
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r"));
  s.erase(s.find_last_not_of(" \t\r") + 1);
  return s;
}

std::vector<std::string> read_part_names(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": missing or unreadable (expected '<part id> <name>' lines)");
  std::vector<std::string> names;
  std::string text;
  for (int n = 1; std::getline(in, text); ++n) {
    text = trim(text);
    if (text.empty() || text[0] == '#') continue;
    const auto space = text.find_first_of(" \t");
    int64_t id = 0;
    if (space == std::string::npos || !parse_int(text.substr(0, space), &id)) {
      bad(path, n, "expected '<part id> <name>', got '" + text + "'");
    }
    if (id != static_cast<int64_t>(names.size()) + 1) {
      bad(path, n, "part ids must run 1, 2, 3, … (expected " + std::to_string(names.size() + 1) + ")");
    }
    if (names.size() == kMaxParts) bad(path, n, "more than " + std::to_string(kMaxParts) + " parts");
    names.push_back(trim(text.substr(space)));
  }
  if (names.empty()) throw std::runtime_error(path.string() + ": no parts");
  return names;
}

// One "<fields…> <x> <y> <visible>"-style line: the values at the end, the key before them.
struct LocationFields {
  std::string key;
  int64_t part = 0;
  double x = 0, y = 0;
  int64_t visible = 0;
};

void check_location(const fs::path& path, int n, const LocationFields& f, size_t parts) {
  if (f.part < 1 || f.part > static_cast<int64_t>(parts)) {
    bad(path, n, "part id " + std::to_string(f.part) + " is not in parts.txt (1…" + std::to_string(parts) + ")");
  }
  if (f.visible != 0 && f.visible != 1) bad(path, n, "visible must be 0 or 1");
  if (f.x < 0 || f.y < 0) bad(path, n, "coordinates must not be negative");
}

}  // namespace

SourceParts read_source_parts(const fs::path& dir) {
  SourceParts out;
  out.names = read_part_names(dir / "parts.txt");
  const fs::path path = dir / "part_locs.txt";
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(path.string() + ": missing or unreadable (expected '<image> <part id> <x> <y> <visible>' lines)");
  }
  std::set<std::pair<std::string, int>> seen;
  std::string text;
  for (int n = 1; std::getline(in, text); ++n) {
    text = trim(text);
    if (text.empty() || text[0] == '#') continue;
    // The last four whitespace-separated fields are numbers; the key is what precedes them.
    std::string rest = text;
    std::vector<std::string> tail;
    for (int k = 0; k < 4; ++k) {
      const auto cut = rest.find_last_of(" \t");
      if (cut == std::string::npos) bad(path, n, "expected '<image> <part id> <x> <y> <visible>', got '" + text + "'");
      tail.insert(tail.begin(), rest.substr(cut + 1));
      rest = trim(rest.substr(0, cut));
    }
    LocationFields f;
    f.key = rest;
    if (f.key.empty() || !parse_int(tail[0], &f.part) || !parse_double(tail[1], &f.x) ||
        !parse_double(tail[2], &f.y) || !parse_int(tail[3], &f.visible)) {
      bad(path, n, "expected '<image> <part id> <x> <y> <visible>' with numbers, got '" + text + "'");
    }
    check_location(path, n, f, out.names.size());
    const int part = static_cast<int>(f.part - 1);
    if (!seen.emplace(f.key, part).second) bad(path, n, "part " + std::to_string(f.part) + " of '" + f.key + "' given twice");
    out.locations[f.key].push_back({part, f.x, f.y, f.visible == 1});
  }
  return out;
}

fs::path parts_names_path(const fs::path& data) { return data / "parts" / "parts.txt"; }
fs::path parts_locations_path(const fs::path& data) { return data / "parts" / "part_locs.tsv"; }

void write_data_parts(const fs::path& data, const DataParts& parts) {
  std::ostringstream names;
  for (size_t i = 0; i < parts.names.size(); ++i) names << i + 1 << ' ' << parts.names[i] << '\n';
  std::ostringstream locs;
  locs << "# path\twidth\theight\tpart\tx\ty\tvisible\n" << std::setprecision(9);
  for (const auto& [path, img] : parts.images) {
    for (const auto& p : img.parts) {
      locs << path << '\t' << img.width << '\t' << img.height << '\t' << p.part + 1 << '\t' << p.x << '\t' << p.y
           << '\t' << (p.visible ? 1 : 0) << '\n';
    }
  }
  write_file_atomic(parts_names_path(data), names.str());
  write_file_atomic(parts_locations_path(data), locs.str());
}

bool has_data_parts(const fs::path& data) {
  std::error_code ec;
  return fs::is_regular_file(parts_locations_path(data), ec) && fs::is_regular_file(parts_names_path(data), ec);
}

DataParts read_data_parts(const fs::path& data) {
  if (!has_data_parts(data)) {
    throw std::runtime_error(data.string() + " has no part annotations (" + parts_locations_path(data).string() +
                             "): prepare it from CUB-200-2011 with its parts/ folder, or with --folder … --parts DIR");
  }
  DataParts out;
  out.names = read_part_names(parts_names_path(data));
  const fs::path path = parts_locations_path(data);
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": unreadable");
  std::string text;
  for (int n = 1; std::getline(in, text); ++n) {
    if (text.empty() || text[0] == '#') continue;
    std::vector<std::string> f;
    std::istringstream is(text);
    for (std::string t; std::getline(is, t, '\t');) f.push_back(t);
    int64_t width = 0, height = 0;
    LocationFields l;
    if (f.size() != 7 || !parse_int(f[1], &width) || !parse_int(f[2], &height) || !parse_int(f[3], &l.part) ||
        !parse_double(f[4], &l.x) || !parse_double(f[5], &l.y) || !parse_int(f[6], &l.visible) || width <= 0 ||
        height <= 0) {
      bad(path, n, "expected '<path>\\t<width>\\t<height>\\t<part id>\\t<x>\\t<y>\\t<visible>'");
    }
    check_location(path, n, l, out.names.size());
    ImageParts& img = out.images[f[0]];
    img.width = static_cast<int>(width);
    img.height = static_cast<int>(height);
    img.parts.push_back({static_cast<int>(l.part - 1), l.x, l.y, l.visible == 1});
  }
  return out;
}

std::vector<PartLocation> map_parts(const std::vector<PartLocation>& parts, int crop_x, int crop_y, int crop_width,
                                    int crop_height, int out_width, int out_height) {
  std::vector<PartLocation> out;
  const double sx = static_cast<double>(out_width) / crop_width, sy = static_cast<double>(out_height) / crop_height;
  for (const auto& p : parts) {
    PartLocation m{p.part, 0, 0, false};
    if (p.visible) {
      m.x = (p.x - crop_x) * sx;
      m.y = (p.y - crop_y) * sy;
      m.visible = m.x >= 0 && m.y >= 0 && m.x < out_width && m.y < out_height;
      if (!m.visible) m.x = m.y = 0;
    }
    out.push_back(m);
  }
  return out;
}

uint64_t parts_in_box(const std::vector<PartLocation>& parts, const int box[4]) {
  uint64_t set = 0;
  for (const auto& p : parts) {
    if (p.visible && p.x >= box[0] && p.x < box[2] && p.y >= box[1] && p.y < box[3]) set |= uint64_t{1} << p.part;
  }
  return set;
}

}  // namespace ppnet::pipeline
