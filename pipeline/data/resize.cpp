#include "pipeline/data/resize.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "base/names.h"

namespace ppnet::pipeline {
namespace {

// Pillow's fixed-point precision for 8-bit images (Resample.c): 32 bits less 8 for the value and
// 2 for the sign and the sum's headroom.
constexpr int kPrecisionBits = 32 - 8 - 2;

// One output coordinate's window [first, first + weights.size()) of input coordinates.
struct Window {
  int first = 0;
  std::vector<int32_t> weights;  // fixed point, kPrecisionBits fractional bits
};

// Pillow's precompute_coeffs for the bilinear (triangle) filter of support 1, widened by the
// scale when shrinking, then its normalize_coeffs_8bpc.
std::vector<Window> windows(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;
  std::vector<Window> out(static_cast<size_t>(out_size));
  for (int i = 0; i < out_size; ++i) {
    const double centre = (i + 0.5) * scale;
    const int first = std::max(static_cast<int>(centre - support + 0.5), 0);
    const int last = std::min(static_cast<int>(centre + support + 0.5), in_size);
    std::vector<double> k;
    double total = 0;
    for (int x = first; x < last; ++x) {
      const double t = std::abs((x - centre + 0.5) / filter_scale);
      const double w = t < 1.0 ? 1.0 - t : 0.0;
      k.push_back(w);
      total += w;
    }
    Window& win = out[static_cast<size_t>(i)];
    win.first = first;
    for (double w : k) {
      if (total != 0.0) w /= total;
      const double fixed = w * (1 << kPrecisionBits);
      win.weights.push_back(static_cast<int32_t>(w < 0 ? fixed - 0.5 : fixed + 0.5));
    }
  }
  return out;
}

uint8_t clip8(int64_t sum) {
  const int64_t v = sum >> kPrecisionBits;
  return static_cast<uint8_t>(std::clamp<int64_t>(v, 0, 255));
}

// One pass along x (horizontal) or y, rounding to 8 bits as Pillow does between passes.
cv::Mat resample(const cv::Mat& in, int out_size, bool horizontal) {
  const int channels = in.channels();
  const auto win = windows(horizontal ? in.cols : in.rows, out_size);
  cv::Mat out(horizontal ? in.rows : out_size, horizontal ? out_size : in.cols, in.type());
  for (int y = 0; y < out.rows; ++y) {
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int x = 0; x < out.cols; ++x) {
      const Window& w = win[static_cast<size_t>(horizontal ? x : y)];
      for (int c = 0; c < channels; ++c) {
        int64_t sum = int64_t{1} << (kPrecisionBits - 1);
        for (size_t k = 0; k < w.weights.size(); ++k) {
          const int at = w.first + static_cast<int>(k);
          const uint8_t v = horizontal ? in.ptr<uint8_t>(y)[at * channels + c] : in.ptr<uint8_t>(at)[x * channels + c];
          sum += static_cast<int64_t>(v) * w.weights[k];
        }
        dst[x * channels + c] = clip8(sum);
      }
    }
  }
  return out;
}

}  // namespace

namespace {
constexpr const char* kResizeNames[] = {"bilinear", "antialias"};
}  // namespace

const char* resize_name(ResizeMethod m) { return name_of(kResizeNames, m); }
ResizeMethod parse_resize(const std::string& name) { return value_of<ResizeMethod>(kResizeNames, name); }

cv::Mat resize_image(const cv::Mat& image, int width, int height, ResizeMethod method) {
  if (image.cols == width && image.rows == height) return image;
  if (method == ResizeMethod::kBilinear) {
    cv::Mat out;
    cv::resize(image, out, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
    return out;
  }
  if (image.depth() != CV_8U) throw std::invalid_argument("antialiased resize needs an 8-bit image");
  // Pillow resamples horizontally first, then vertically, skipping a pass that keeps its size.
  cv::Mat m = image;
  if (m.cols != width) m = resample(m, width, true);
  if (m.rows != height) m = resample(m, height, false);
  return m;
}

}  // namespace ppnet::pipeline
