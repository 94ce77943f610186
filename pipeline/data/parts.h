#pragma once
// Part annotations: where an image shows each named part (CUB-200-2011's parts/ files, or the
// same format for a folder data set), read from the source and carried into a prepared data
// folder in the coordinates of each prepared image. Used to measure whether prototypes sit on
// parts (pipeline/stages/part_metrics.h).

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ppnet::pipeline {

/// One part of one image: `part` is 0-based (line order of parts.txt); x, y in pixels.
struct PartLocation {
  int part = 0;
  double x = 0, y = 0;
  bool visible = false;
};

/// Source annotations: part names and, per image key (CUB: the image id; folder: the image's
/// path relative to the folder), its part locations in the source file's pixels.
struct SourceParts {
  std::vector<std::string> names;
  std::map<std::string, std::vector<PartLocation>> locations;
};

/// Reads `dir`/parts.txt ("<part id> <name>", ids 1, 2, … in order; names may hold spaces) and
/// `dir`/part_locs.txt ("<image> <part id> <x> <y> <visible 0|1>"; the image key is everything
/// before the last four fields, so it may hold spaces). Throws std::runtime_error naming the
/// file and line of the first bad entry (unknown part, non-finite or negative coordinate,
/// visible not 0/1, a part given twice for one image).
SourceParts read_source_parts(const std::filesystem::path& dir);

/// The parts of a prepared data folder, per image path relative to DATA (push/, test/, val/).
struct ImageParts {
  int width = 0, height = 0;  // the prepared image's size, which the coordinates refer to
  std::vector<PartLocation> parts;
};
struct DataParts {
  std::vector<std::string> names;
  std::map<std::string, ImageParts> images;
  const ImageParts* find(const std::string& path) const {
    auto it = images.find(path);
    return it == images.end() ? nullptr : &it->second;
  }
};

std::filesystem::path parts_names_path(const std::filesystem::path& data);      // DATA/parts/parts.txt
std::filesystem::path parts_locations_path(const std::filesystem::path& data);  // DATA/parts/part_locs.tsv

/// Writes DATA/parts/ atomically: parts.txt in CUB's format and part_locs.tsv with one line per
/// part of each image: "<path>\t<width>\t<height>\t<part id>\t<x>\t<y>\t<visible>".
void write_data_parts(const std::filesystem::path& data, const DataParts& parts);
bool has_data_parts(const std::filesystem::path& data);
/// Throws std::runtime_error naming the file and line when malformed, and saying how to make
/// them when DATA has no part annotations.
DataParts read_data_parts(const std::filesystem::path& data);

/// `parts` of a source image as they land in the prepared image: shifted by the crop's top-left
/// corner, scaled from the crop's size to the output's, and invisible when outside the output.
std::vector<PartLocation> map_parts(const std::vector<PartLocation>& parts, int crop_x, int crop_y, int crop_width,
                                    int crop_height, int out_width, int out_height);

/// The parts visible inside `box` [x0, y0, x1, y1) (exclusive ends), as a bit set over part
/// indices (at most 64 parts).
uint64_t parts_in_box(const std::vector<PartLocation>& parts, const int box[4]);

}  // namespace ppnet::pipeline
