#pragma once
// Small real data sets the tests write for themselves.

#include <opencv2/core.hpp>

#include <array>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ppnet::test {

/// A CUB-200-2011 layout under `root`: classes.txt, images.txt, image_class_labels.txt,
/// train_test_split.txt, bounding_boxes.txt and images/<class>/<name>.png. Image k of class c
/// is random noise of width × height pixels; its box has fractional coordinates; the last
/// image of each class is a test image.
struct CubFixture {
  std::filesystem::path root;
  int classes = 0, per_class = 0;
  std::vector<std::string> class_names;
  std::vector<std::string> image_paths;   // relative to images/, in images.txt order
  std::vector<cv::Mat> images;            // the pixels written, BGR
  std::vector<std::array<double, 4>> boxes;  // x, y, w, h
};
CubFixture make_cub_fixture(const std::filesystem::path& root, int classes, int per_class, int width = 48,
                            int height = 40, const std::string& ext = ".png");

/// A CUB-200-2011 layout in which only a planted part tells the classes apart, with part
/// annotations: each image is (size + 2·margin)² grey noise with a part×part square of the
/// class's colour at a random place inside the bounding box (margin, margin, size, size).
/// parts/parts.txt names three parts: 1 "planted square" (the square's centre), 2 "grey spot"
/// (a random background point at least `part` pixels from the square), 3 "hidden tail" (never
/// visible). Images k ≡ 3 (mod 4) of each class are test images. Beside `root`, segmentations/
/// holds CUB-format object masks (the separate CUB download): grey 255 on the "object", the square
/// grown by 3 px on each side, a 1-px ring of grey 100 around it (background: under 50 %), 0
/// elsewhere.
struct PartsCubFixture {
  CubFixture cub;
  std::vector<cv::Rect> squares;     // per image, in the cropped (prepared, unresized) image
  std::vector<cv::Point2d> spots;    // per image, likewise
  /// The object a segmentation marks around a square (not clipped to the image).
  static cv::Rect object_of(const cv::Rect& square) { return {square.x - 3, square.y - 3, square.width + 6, square.height + 6}; }
};
PartsCubFixture make_parts_cub_fixture(const std::filesystem::path& root, int classes, int per_class, int size = 48,
                                       int part = 8, int margin = 4, unsigned seed = 11);

/// Writes MNIST-format IDX files (train-*, t10k-*) for `n_train` and `n_test` random
/// images of 6×5 pixels with labels i % classes; gzipped when `gzip`.
void make_idx_fixture(const std::filesystem::path& dir, int n_train, int n_test, int classes, bool gzip);

/// A folder of class folders: `per_class` noisy size×size PNGs per class, each with a bright
/// 7×7 square near a position that depends on the class (so a model can learn it).
void make_pattern_folder(const std::filesystem::path& root, int classes, int per_class, int size = 28,
                         unsigned seed = 7);

/// A folder of class folders in which only a small planted part tells the classes apart:
/// grey noise everywhere, and a part×part square of the class's colour at a random position.
/// Returns each image's part rectangle, keyed by its path relative to `root`.
std::map<std::string, cv::Rect> make_planted_folder(const std::filesystem::path& root, int classes, int per_class,
                                                    int size = 48, int part = 8, unsigned seed = 11);

/// A folder with train/ and test/ trees of three classes in which the training images carry a
/// shortcut the test images lack (the confounder test of docs/audit.md): 48×48 grey noise, an
/// 8×8 square of the class's colour at a random place (in a `part_noise` share of the training
/// images another class's colour), and, on training images only, a 10×10 mark of a colour of
/// the class in the bottom-right corner (kMark). `per_class` training and a third as many test
/// images per class. Returns each training image's square, keyed by its path relative to
/// `root` (e.g. "train/class0/img000.png").
struct ConfounderFolder {
  static constexpr int kSize = 48;
  static inline const cv::Rect kMark{38, 38, 10, 10};
  std::map<std::string, cv::Rect> parts;  // training images whose square has their class's colour
};
ConfounderFolder make_confounder_folder(const std::filesystem::path& root, int per_class = 60, double part_noise = 0.2,
                                        unsigned seed = 1);

/// Every regular file below `root` (relative path → bytes), for byte-for-byte comparisons.
std::map<std::string, std::string> snapshot(const std::filesystem::path& root);

}  // namespace ppnet::test
