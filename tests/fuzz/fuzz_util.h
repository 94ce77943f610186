#pragma once
// What the fuzz targets share: a scratch folder for the files the parsers read (they take
// paths), and splitting one input into several files. Each target defines
// LLVMFuzzerTestOneInput; run by libFuzzer (`make fuzz`) or over its corpus by replay_main.cpp
// (ctest's fuzz.* tests). An exception is a parser refusing bad bytes, as it should; anything
// else (a crash, a sanitizer report, a hang) is a finding.

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ppnet::fuzz {

/// A folder of this process's own under /dev/shm (or the temp folder), emptied per input.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    return base / ("ppnet-fuzz-" + std::to_string(::getpid()));
  }();
  return dir;
}

inline void reset_scratch() {
  std::error_code ec;
  std::filesystem::remove_all(scratch(), ec);
  std::filesystem::create_directories(scratch(), ec);
}

inline void write(const std::filesystem::path& path, const std::string& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

/// The input cut at every "\n====\n" into at most `parts` pieces (missing ones are empty).
inline std::vector<std::string> split(const uint8_t* data, size_t size, size_t parts) {
  const std::string all(reinterpret_cast<const char*>(data), size), sep = "\n====\n";
  std::vector<std::string> out;
  size_t from = 0;
  while (out.size() + 1 < parts) {
    const size_t at = all.find(sep, from);
    if (at == std::string::npos) break;
    out.push_back(all.substr(from, at - from));
    from = at + sep.size();
  }
  out.push_back(all.substr(from));
  out.resize(parts);
  return out;
}

}  // namespace ppnet::fuzz
