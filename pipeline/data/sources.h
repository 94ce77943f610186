#pragma once
// Raw data sets ppnet prepare reads: CUB-200-2011, a folder-per-class tree, MNIST-style IDX.
// Each reader validates all metadata up front and returns the list of source images; pixels
// are decoded later, one image at a time, by load_source_image.

#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/data/manifest.h"
#include "pipeline/data/parts.h"

namespace ppnet::pipeline {

struct SourceImage {
  std::string id;       // stable across runs: CUB image id, relative path, "train/00042"
  int class_index = 0;
  bool is_test = false;
  std::filesystem::path file;  // the image to decode (CUB, folder)
  int64_t idx_row = -1;        // row of the IDX pixel block
  bool has_box = false;        // CUB: crop to box (x, y, w, h) in pixels
  double box[4] = {0, 0, 0, 0};
  std::string stem;  // output file name without extension
  std::string ext;   // output extension: ".jpg" or ".png"
  std::vector<PartLocation> parts;  // in the source file's pixels; empty without annotations
  std::filesystem::path mask;       // its object mask file (pipeline/data/masks.h); empty: none
};

struct SourceSet {
  std::string kind;  // "cub", "folder", "idx"
  std::vector<ClassInfo> classes;
  std::vector<SourceImage> images;
  std::shared_ptr<const std::vector<uint8_t>> idx_pixels;  // rows × idx_height × idx_width
  int idx_height = 0, idx_width = 0;
  std::vector<std::string> part_names;  // empty without part annotations
  std::vector<std::string> unreadable;  // "path: reason" of entries a folder walk could not read
};

/// `root` holds images.txt, image_class_labels.txt, train_test_split.txt, classes.txt,
/// bounding_boxes.txt and images/, and optionally parts/ (parts.txt, part_locs.txt). Throws std::runtime_error naming the file and line of the
/// first missing or malformed entry.
SourceSet read_cub(const std::filesystem::path& root);

/// A folder of class folders, or one with train/ and test/ trees of class folders. Without
/// train/ and test/, `test_fraction` of each class (seeded) becomes the test split.
SourceSet read_folder(const std::filesystem::path& root, double test_fraction, uint64_t seed);

/// A folder with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
/// t10k-labels-idx1-ubyte, each optionally gzipped. `class_names`: "fashion-mnist", "mnist",
/// a file with one name per line, or "" to decide by the folder's name.
SourceSet read_idx(const std::filesystem::path& dir, const std::string& class_names);

/// Gives each image of `set` its parts from `parts` (keys are SourceImage::id). Throws
/// std::runtime_error naming `dir`'s part_locs.txt when a key is no image of the set.
void attach_parts(SourceSet& set, const SourceParts& parts, const std::filesystem::path& dir);

/// Decodes (and for CUB crops) one image: 8-bit BGR, or grey for IDX. Throws
/// std::runtime_error with the reason when the file is missing, unreadable or the box is empty.
/// `crop`, when given, receives the rectangle of the source file the result shows.
cv::Mat load_source_image(const SourceSet& set, const SourceImage& image, cv::Rect* crop = nullptr);

/// The crop CUB's float box (x, y, w, h) gives: [floor(x), floor(y)) to [ceil(x+w), ceil(y+h)),
/// clipped to the image. Empty when the box lies outside the image.
cv::Rect cub_crop(const double box[4], int width, int height);

/// True for the image extensions ppnet reads: jpg, jpeg, png, bmp, tif, tiff, webp (any case).
bool is_image_file(const std::filesystem::path& path);

/// Every image file under `dir` (is_image_file; paths relative to `dir` in generic form, sorted),
/// in all its subfolders, symbolic links followed (a folder reached twice, as through a loop of
/// links, is walked once); hidden names (".x") and the folders for which `skip(folder)` is true
/// are left out. What cannot be read goes to `unreadable` as "path: reason" — a dangling link, a
/// loop of links, a folder that cannot be listed — and the walk goes on.
std::vector<std::string> find_images(const std::filesystem::path& dir,
                                     const std::function<bool(const std::filesystem::path&)>& skip,
                                     std::vector<std::string>* unreadable);

/// A class name made safe as a folder name: characters other than letters, digits, '.', '-'
/// and '_' become '_'.
std::string safe_name(const std::string& name);

}  // namespace ppnet::pipeline
