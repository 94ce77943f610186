#include "pipeline/archive.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "pipeline/atomic_file.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

uint64_t parse_size(const char* field, size_t n) {
  if (static_cast<unsigned char>(field[0]) & 0x80) {  // GNU base-256
    uint64_t v = static_cast<unsigned char>(field[0]) & 0x7f;
    for (size_t i = 1; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(field[i]);
    return v;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n && field[i]; ++i) {
    if (field[i] == ' ') continue;
    if (field[i] < '0' || field[i] > '7') throw std::runtime_error("bad size field in a tar header");
    v = v * 8 + static_cast<uint64_t>(field[i] - '0');
  }
  return v;
}

std::string field_string(const char* f, size_t n) { return std::string(f, strnlen(f, n)); }

bool safe_member(const std::string& name) {
  if (name.empty() || name[0] == '/') return false;
  for (const auto& part : fs::path(name)) {
    if (part == "..") return false;
  }
  return true;
}

}  // namespace

uint64_t extract_tar(const std::string& archive, const std::string& dest,
                     const std::function<void(uint64_t)>& on_bytes) {
  std::unique_ptr<gzFile_s, GzCloser> in(gzopen(archive.c_str(), "rb"));  // reads plain tar too
  if (!in) throw std::runtime_error(archive + ": cannot open");
  gzbuffer(in.get(), 1 << 20);
  auto read_exact = [&](char* buf, uint64_t n) {
    while (n > 0) {
      const unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(n, 1u << 30));
      const int got = gzread(in.get(), buf, chunk);
      if (got <= 0) {
        int err = 0;
        const char* msg = gzerror(in.get(), &err);
        throw std::runtime_error(archive + ": truncated or damaged archive" +
                                 (err ? std::string(" (") + msg + ")" : std::string()));
      }
      buf += got;
      n -= static_cast<uint64_t>(got);
    }
  };

  uint64_t files = 0;
  std::string long_name;
  std::array<char, 512> header{};
  std::string data;
  while (true) {
    read_exact(header.data(), 512);
    if (std::all_of(header.begin(), header.end(), [](char c) { return c == 0; })) break;
    const uint64_t size = parse_size(header.data() + 124, 12);
    const char type = header[156];
    const uint64_t padded = (size + 511) / 512 * 512;
    data.resize(padded);
    read_exact(data.data(), padded);
    data.resize(size);
    if (on_bytes) on_bytes(static_cast<uint64_t>(gzoffset(in.get())));

    if (type == 'L') {  // GNU long name for the next member
      long_name = field_string(data.data(), data.size());
      continue;
    }
    if (type == 'x') {  // pax extended header: look for a path record
      for (size_t pos = 0; pos < data.size();) {
        const size_t space = data.find(' ', pos);
        if (space == std::string::npos) break;
        const size_t len = std::stoul(data.substr(pos, space - pos));
        if (len == 0 || pos + len > data.size()) break;
        const std::string record = data.substr(space + 1, pos + len - space - 2);
        if (record.rfind("path=", 0) == 0) long_name = record.substr(5);
        pos += len;
      }
      continue;
    }
    if (type == 'g') continue;

    std::string name = long_name;
    long_name.clear();
    if (name.empty()) {
      name = field_string(header.data(), 100);
      const std::string prefix = field_string(header.data() + 345, 155);
      if (std::string(header.data() + 257, 5) == "ustar" && !prefix.empty()) name = prefix + "/" + name;
    }
    if (!safe_member(name)) throw std::runtime_error(archive + ": unsafe member name '" + name + "'");
    const fs::path target = fs::path(dest) / name;
    if (type == '5') {
      fs::create_directories(target);
    } else if (type == '0' || type == '\0' || type == '7') {
      write_file_atomic(target, data);
      ++files;
    }
    // Links, devices and FIFOs are skipped: a data set needs none.
  }
  return files;
}

}  // namespace ppnet::pipeline
