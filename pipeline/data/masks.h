#pragma once
// Object masks: which pixels of an image show the object (a bird, a garment), to measure whether
// prototypes and their attributions lie on it (docs/audit.md). Read from mask files beside the
// source data (CUB's segmentations/, or any folder mirroring the images' paths) or made from the
// image itself (--foreground-threshold), then carried into a prepared data folder, cropped,
// augmented and resized exactly as their images, as DATA/masks/<the image's path, .png>:
// 8-bit, one channel, 0 background and 255 object.

#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

#include "pipeline/data/sources.h"

namespace ppnet::pipeline {

/// Where the source images' masks come from.
struct MaskSource {
  std::filesystem::path dir;     // mask files mirroring the images' paths; empty: none
  int threshold = 1;             // a mask file's grey level at or above this is object (CUB: 128)
  int foreground_threshold = -1; // ≥ 0: masks from the images: object = grey level above this
  bool any() const { return !dir.empty() || foreground_threshold >= 0; }
};

/// Gives each image of `set` (whose files lie under `image_root`) its mask file from `dir`: the
/// image's path relative to `image_root`, with any image extension. Every mask is decoded and
/// compared with its image's size here, before anything is written. Throws std::runtime_error
/// naming the file for a mask without an image, two masks for one image, an unreadable mask, a
/// mask whose size differs from its image's, or a `dir` holding no mask of any image. Returns
/// the number of images given a mask.
int64_t attach_mask_files(SourceSet& set, const std::filesystem::path& image_root, const std::filesystem::path& dir,
                          int threads);

/// The object mask of a source image as load_source_image gave it (`image`, cut from `crop` of
/// the file): 0/255, `image`'s size; empty when the image has no mask.
cv::Mat load_source_mask(const SourceImage& source, const cv::Mat& image, const cv::Rect& crop,
                         const MaskSource& masks);

/// A resampled mask back to 0/255: object where the interpolated level is at least half.
cv::Mat binarize_mask(const cv::Mat& mask);

/// DATA/masks/<image with its extension replaced by .png>; `image` is relative to DATA.
std::filesystem::path mask_path(const std::filesystem::path& data, const std::string& image);
/// True when DATA has a masks/ folder (prepared with masks).
bool has_masks(const std::filesystem::path& data);
/// The mask of prepared image `image` (relative to DATA) as 0/255; empty when it has none.
/// Throws std::runtime_error naming the file when it is unreadable or not width × height.
cv::Mat read_mask(const std::filesystem::path& data, const std::string& image, int width, int height);

/// read_mask at the size image `image`'s header declares (the mask must match its image).
cv::Mat read_image_mask(const std::filesystem::path& data, const std::string& image);

/// The share of the non-zero pixels of `selected` that are non-zero in `mask` (same size, 8-bit);
/// −1 when `selected` has none.
double share_inside(const cv::Mat& selected, const cv::Mat& mask);

}  // namespace ppnet::pipeline
