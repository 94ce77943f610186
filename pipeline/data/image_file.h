#pragma once
// Reading one image file, with an error that says what is wrong with it.

#include <opencv2/core.hpp>

#include <filesystem>
#include <string>

namespace ppnet::pipeline {

/// Decodes `path` as 8-bit BGR (grey and 16-bit files converted, alpha dropped). Throws
/// std::runtime_error starting with the path and giving the cause: missing, not a regular file,
/// empty, truncated or corrupt data of a recognised format (named), bytes of no image format, or
/// OpenCV's refusal (e.g. more pixels than its 2^30 limit) in one line, not its raw assertion.
cv::Mat read_image_file(const std::filesystem::path& path);

/// The width and height of `path` from its header (PNG, JPEG, BMP) without decoding the pixels;
/// other formats are decoded. Throws as read_image_file when the size cannot be read.
cv::Size image_file_size(const std::filesystem::path& path);

/// Why `path` cannot be decoded, from its size and first bytes ("empty file", "truncated or
/// corrupt PNG data", ...); for messages when a decoder has given up.
std::string unreadable_image_reason(const std::filesystem::path& path);

}  // namespace ppnet::pipeline
