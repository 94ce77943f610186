#include "pipeline/data/masks.h"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>

#include <map>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

#include "pipeline/data/image_file.h"

namespace ppnet::pipeline {

namespace fs = std::filesystem;

namespace {

// A path without its extension, as the key that pairs a mask with its image.
std::string without_extension(const fs::path& relative) {
  return (relative.parent_path() / relative.stem()).generic_string();
}

// Every mask file under `dir`, by its path without extension; two files for one key are an error.
std::map<std::string, fs::path> index_masks(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw std::runtime_error(dir.string() + ": the mask folder does not exist or is not a folder");
  std::map<std::string, fs::path> masks;
  std::vector<std::string> unreadable;
  for (const auto& rel : find_images(dir, {}, &unreadable)) {
    const auto [at, fresh] = masks.emplace(without_extension(rel), dir / rel);
    if (!fresh) {
      throw std::runtime_error((dir / rel).string() + ": another mask (" + at->second.filename().string() +
                               ") belongs to the same image; keep one of them");
    }
  }
  if (!unreadable.empty()) throw std::runtime_error("mask folder: " + unreadable.front());
  return masks;
}

// The mask file as grey levels, with an error naming it when it cannot be decoded.
cv::Mat read_grey(const fs::path& file) {
  cv::Mat grey;
  try {
    grey = cv::imread(file.string(), cv::IMREAD_GRAYSCALE);
  } catch (const cv::Exception& e) {
    throw std::runtime_error(file.string() + ": unreadable mask: " + e.err);
  }
  if (grey.empty()) throw std::runtime_error(file.string() + ": unreadable mask: " + unreadable_image_reason(file));
  return grey;
}

}  // namespace

int64_t attach_mask_files(SourceSet& set, const fs::path& image_root, const fs::path& dir, int threads) {
  std::map<std::string, fs::path> masks = index_masks(dir);
  std::vector<SourceImage*> masked;
  for (auto& img : set.images) {
    if (img.file.empty()) continue;
    const auto it = masks.find(without_extension(fs::relative(img.file, image_root)));
    if (it == masks.end()) continue;
    img.mask = it->second;
    masked.push_back(&img);
    masks.erase(it);
  }
  if (!masks.empty()) {
    throw std::runtime_error(masks.begin()->second.string() + ": a mask without an image (expected " +
                             (image_root / fs::relative(masks.begin()->second, dir)).replace_extension().string() +
                             " with an image extension); " + std::to_string(masks.size()) + " such masks in all");
  }
  if (masked.empty()) throw std::runtime_error(dir.string() + ": holds no mask of any image");
  // Sizes are checked before anything is written: decode every mask, read every image's header.
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(std::max(1, threads)));
  std::mutex error_mutex;
  std::string first_error;
  size_t first_at = masked.size();
  tbb::parallel_for(size_t{0}, masked.size(), [&](size_t i) {
    try {
      const cv::Size mask = read_grey(masked[i]->mask).size(), image = image_file_size(masked[i]->file);
      if (mask != image) {
        throw std::runtime_error(masked[i]->mask.string() + ": the mask is " + std::to_string(mask.width) + "×" +
                                 std::to_string(mask.height) + " but its image " + masked[i]->file.string() + " is " +
                                 std::to_string(image.width) + "×" + std::to_string(image.height));
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (i < first_at) first_at = i, first_error = e.what();  // the same message on every run
    }
  });
  if (!first_error.empty()) throw std::runtime_error(first_error);
  return static_cast<int64_t>(masked.size());
}

cv::Mat load_source_mask(const SourceImage& source, const cv::Mat& image, const cv::Rect& crop, const MaskSource& masks) {
  cv::Mat mask;
  if (masks.foreground_threshold >= 0) {
    cv::Mat grey = image;
    if (image.channels() == 3) cv::cvtColor(image, grey, cv::COLOR_BGR2GRAY);
    cv::threshold(grey, mask, masks.foreground_threshold, 255, cv::THRESH_BINARY);
    return mask;
  }
  if (source.mask.empty()) return {};
  const cv::Mat grey = read_grey(source.mask);
  if (crop.x + crop.width > grey.cols || crop.y + crop.height > grey.rows) {
    throw std::runtime_error(source.mask.string() + ": the mask is smaller than its image");
  }
  cv::threshold(grey(crop), mask, masks.threshold - 1, 255, cv::THRESH_BINARY);
  return mask;
}

cv::Mat binarize_mask(const cv::Mat& mask) {
  cv::Mat out;
  cv::threshold(mask, out, 127, 255, cv::THRESH_BINARY);
  return out;
}

fs::path mask_path(const fs::path& data, const std::string& image) {
  return (data / "masks" / image).replace_extension(".png");
}

bool has_masks(const fs::path& data) {
  std::error_code ec;
  return fs::is_directory(data / "masks", ec);
}

cv::Mat read_mask(const fs::path& data, const std::string& image, int width, int height) {
  const fs::path file = mask_path(data, image);
  std::error_code ec;
  if (!fs::exists(file, ec)) return {};
  const cv::Mat grey = read_grey(file);
  if (grey.cols != width || grey.rows != height) {
    throw std::runtime_error(file.string() + ": the mask is " + std::to_string(grey.cols) + "×" +
                             std::to_string(grey.rows) + " but its image is " + std::to_string(width) + "×" +
                             std::to_string(height) + "; prepare the data again");
  }
  return binarize_mask(grey);
}

cv::Mat read_image_mask(const fs::path& data, const std::string& image) {
  std::error_code ec;
  if (!fs::exists(mask_path(data, image), ec)) return {};
  const cv::Size size = image_file_size(data / image);
  return read_mask(data, image, size.width, size.height);
}

double share_inside(const cv::Mat& selected, const cv::Mat& mask) {
  const int n = cv::countNonZero(selected);
  if (n == 0) return -1;
  cv::Mat both;
  cv::bitwise_and(selected != 0, mask != 0, both);
  return static_cast<double>(cv::countNonZero(both)) / n;
}

}  // namespace ppnet::pipeline
