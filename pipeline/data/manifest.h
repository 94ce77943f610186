#pragma once
// The prepared data folder's manifest (DATA/manifest.json) and image lists (DATA/lists/*.tsv):
// what later commands read, so class indices never depend on directory listing order.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ppnet::pipeline {

inline constexpr int kDataFormatVersion = 1;

struct ClassInfo {
  int index = 0;
  std::string name;    // as the source names it ("001.Black_footed_Albatross", "T-shirt/top")
  std::string folder;  // its folder under each split (safe as a file name)
};

/// One image of a split: path relative to DATA, class, and the id of its source image.
struct ListEntry {
  std::string path;
  int class_index = 0;
  std::string source_id;
};

struct Manifest {
  int version = kDataFormatVersion;
  std::string source_kind;  // "cub", "folder" or "idx"
  std::string source_path;
  std::map<std::string, std::string> options;  // as given, for provenance and re-run checks
  std::vector<ClassInfo> classes;
  std::map<std::string, std::vector<int64_t>> counts;  // split → images per class
  std::vector<std::string> failed;  // "path: reason" of source images that could not be read
  std::string created_by;
};

/// The file holding what a prepare command was asked to do, written before any image.
std::filesystem::path prepare_record_path(const std::filesystem::path& data);
std::filesystem::path manifest_path(const std::filesystem::path& data);
std::filesystem::path list_path(const std::filesystem::path& data, const std::string& split);

std::string manifest_to_json(const Manifest& m);
/// Throws std::runtime_error naming `path` and the field at fault, also when the classes are not
/// numbered 0…n−1 with distinct names and plain folder names, or a split's counts are not one
/// number >= 0 per class.
Manifest read_manifest(const std::filesystem::path& data);
void write_manifest(const std::filesystem::path& data, const Manifest& m);

void write_list(const std::filesystem::path& data, const std::string& split,
                const std::vector<ListEntry>& entries);
/// The images of `split` as DATA/lists/<split>.tsv lists them, checked against DATA's manifest:
/// throws std::runtime_error naming the file and line when a line is malformed, names a path
/// that is not inside DATA (absolute, or with ".."), or a class index the manifest does not
/// have; naming the class when the list's images per class are not the manifest's counts; and
/// saying so when the manifest has no such split.
std::vector<ListEntry> read_list(const std::filesystem::path& data, const std::string& split);

}  // namespace ppnet::pipeline
