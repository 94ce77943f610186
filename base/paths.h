#pragma once
// Paths that ppnet reads from its own files (lists, run.sqlite): they may only name something
// inside the folder they belong to, whatever an edited file says. And file names, which are
// bytes, shown where text must be UTF-8.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>

namespace ppnet {

/// Whether `path` is relative and stays inside the folder it is relative to: not empty, no root
/// name or directory, no ".." part. Lexical only: links inside the folder are the folder's own.
inline bool stays_inside(const std::string& path) {
  const std::filesystem::path p(path);
  return !path.empty() && !p.has_root_name() && !p.has_root_directory() &&
         std::none_of(p.begin(), p.end(), [](const std::filesystem::path& part) { return part == ".."; });
}

/// A path as a URL path (RFC 3986): every byte but letters, digits, '-', '_', '.', '~' and '/'
/// percent-encoded, so names with spaces or any bytes link to the file they name (pages' links,
/// SQLite's file: URIs).
std::string url_path(const std::string& path);

/// `bytes` (a file name, a message holding one) as valid UTF-8 for JSON, HTML and terminals:
/// valid UTF-8 passes unchanged, every other byte becomes the four characters "\xNN". File names
/// on disk are bytes; this is only how they are shown.
std::string printable(const std::string& bytes);

}  // namespace ppnet
