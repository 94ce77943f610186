#include "pipeline/data/image_file.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <stdexcept>

namespace ppnet::pipeline {

namespace fs = std::filesystem;

namespace {

// The formats Debian's OpenCV decodes, by their first bytes.
const char* format_of(const std::string& head) {
  auto starts = [&](const char* magic, size_t n) { return head.size() >= n && std::memcmp(head.data(), magic, n) == 0; };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return "PNG";
  if (starts("\xff\xd8\xff", 3)) return "JPEG";
  if (starts("BM", 2)) return "BMP";
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return "TIFF";
  if (head.size() >= 12 && starts("RIFF", 4) && head.compare(8, 4, "WEBP") == 0) return "WebP";
  if (head.size() >= 2 && head[0] == 'P' && head[1] >= '1' && head[1] <= '7') return "PNM";
  if (starts("\0\0\0\x0cjP  ", 8) || starts("\xff\x4f\xff\x51", 4)) return "JPEG 2000";
  if (starts("\x76\x2f\x31\x01", 4)) return "OpenEXR";
  if (starts("#?RADIANCE", 10) || starts("#?RGBE", 6)) return "Radiance HDR";
  if (starts("\x59\xa6\x6a\x95", 4)) return "Sun raster";
  return nullptr;
}

uint32_t big_endian(const unsigned char* p, int n) {
  uint32_t v = 0;
  for (int i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

// The size a JPEG's start-of-frame segment declares; {0, 0} when none is found.
cv::Size jpeg_size(std::ifstream& in) {
  unsigned char m[2], seg[7];
  in.seekg(2);
  while (in.read(reinterpret_cast<char*>(m), 2)) {
    if (m[0] != 0xff) return {};
    if (m[1] == 0xff) {  // fill byte
      in.seekg(-1, std::ios::cur);
      continue;
    }
    if (m[1] == 0xd8 || m[1] == 0x01 || (m[1] >= 0xd0 && m[1] <= 0xd7)) continue;  // no length
    if (!in.read(reinterpret_cast<char*>(seg), 2)) return {};
    const uint32_t length = big_endian(seg, 2);
    const bool frame = m[1] >= 0xc0 && m[1] <= 0xcf && m[1] != 0xc4 && m[1] != 0xc8 && m[1] != 0xcc;
    if (frame) {
      if (!in.read(reinterpret_cast<char*>(seg), 5)) return {};
      return {static_cast<int>(big_endian(seg + 3, 2)), static_cast<int>(big_endian(seg + 1, 2))};
    }
    if (length < 2) return {};
    in.seekg(length - 2, std::ios::cur);
  }
  return {};
}

}  // namespace

cv::Size image_file_size(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char head[26] = {};
  if (in.read(reinterpret_cast<char*>(head), sizeof head)) {
    const std::string magic(reinterpret_cast<const char*>(head), 8);
    if (magic == "\x89PNG\r\n\x1a\n" && std::memcmp(head + 12, "IHDR", 4) == 0) {
      return {static_cast<int>(big_endian(head + 16, 4)), static_cast<int>(big_endian(head + 20, 4))};
    }
    if (head[0] == 'B' && head[1] == 'M') {
      const auto le = [&](int at) {
        return static_cast<int32_t>(head[at] | head[at + 1] << 8 | head[at + 2] << 16 | static_cast<uint32_t>(head[at + 3]) << 24);
      };
      if (le(14) >= 40) return {std::abs(le(18)), std::abs(le(22))};
    }
    if (head[0] == 0xff && head[1] == 0xd8) {
      in.clear();
      const cv::Size size = jpeg_size(in);
      if (size.width > 0 && size.height > 0) return size;
    }
  }
  return read_image_file(path).size();
}

std::string unreadable_image_reason(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) return "missing";
  if (!fs::is_regular_file(status)) return "not a regular file";
  const auto size = fs::file_size(path, ec);
  if (ec) return "cannot read its size (" + ec.message() + ")";
  if (size == 0) return "empty file (0 bytes)";
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::string("cannot open (") + std::strerror(errno) + ")";
  std::string head(16, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.size() >= 6 && (head.compare(0, 6, "GIF87a") == 0 || head.compare(0, 6, "GIF89a") == 0)) {
    return "a GIF, which OpenCV does not decode: convert it to PNG";
  }
  if (const char* format = format_of(head)) {
    return std::string("truncated or corrupt ") + format + " data (" + std::to_string(size) + " bytes)";
  }
  return "not an image: its first bytes match no format OpenCV decodes (PNG, JPEG, BMP, TIFF, WebP, PNM, ...)";
}

cv::Mat read_image_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw std::runtime_error(path.string() + ": " + unreadable_image_reason(path));
  cv::Mat img;
  try {
    img = cv::imread(path.string(), cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    const std::string what = e.err.find("CV_IO_MAX_IMAGE_PIXELS") != std::string::npos
                                 ? "its header declares more pixels than OpenCV decodes (2^30)"
                                 : "OpenCV cannot decode it: " + e.err;
    throw std::runtime_error(path.string() + ": " + what);
  }
  if (img.empty()) throw std::runtime_error(path.string() + ": " + unreadable_image_reason(path));
  return img;
}

}  // namespace ppnet::pipeline
