#include "pipeline/render/heatmap.h"

#include "pipeline/data/masks.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace ppnet::pipeline {

cv::Mat high_activation_pixels(const cv::Mat& map, int width, int height, double percentile) {
  cv::Mat up;
  cv::resize(map, up, cv::Size(width, height), 0, 0, cv::INTER_CUBIC);
  std::vector<float> values(up.begin<float>(), up.end<float>());
  // numpy's default percentile: linear interpolation between the closest ranks.
  const double rank = percentile / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank)), hi = static_cast<size_t>(std::ceil(rank));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(lo), values.end());
  const float v_lo = values[lo];
  const float v_hi = hi == lo ? v_lo : *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(lo) + 1, values.end());
  const float threshold = static_cast<float>(v_lo + (rank - static_cast<double>(lo)) * (v_hi - v_lo));
  cv::Mat selected(height, width, CV_8UC1);
  for (int y = 0; y < height; ++y) {
    const float* row = up.ptr<float>(y);
    auto* out = selected.ptr<uint8_t>(y);
    for (int x = 0; x < width; ++x) out[x] = row[x] >= threshold ? 255 : 0;
  }
  return selected;
}

double activation_precision(const cv::Mat& map, const cv::Mat& mask) {
  if (mask.empty()) return -1;
  double lo = 0, hi = 0;
  cv::minMaxLoc(map, &lo, &hi);
  if (!(hi > lo)) return -1;  // constant (or NaN)
  return share_inside(high_activation_pixels(map, mask.cols, mask.rows), mask);
}

std::array<int, 4> high_activation_box(const cv::Mat& map, int width, int height, double percentile) {
  const cv::Mat selected = high_activation_pixels(map, width, height, percentile);
  if (cv::countNonZero(selected) == 0) return {0, 0, width, height};
  const cv::Rect r = cv::boundingRect(selected);
  return {r.x, r.y, r.x + r.width, r.y + r.height};
}

std::array<int, 4> peak_box(const cv::Mat& similarity, int width, int height, double fraction) {
  cv::Mat up;
  cv::resize(similarity, up, cv::Size(width, height), 0, 0, cv::INTER_CUBIC);
  cv::Point peak;
  cv::minMaxLoc(up, nullptr, nullptr, nullptr, &peak);
  const int half_w = std::max(1, static_cast<int>(std::lround(fraction * width))) / 2;
  const int half_h = std::max(1, static_cast<int>(std::lround(fraction * height))) / 2;
  return {std::max(0, peak.x - half_w), std::max(0, peak.y - half_h), std::min(width, peak.x + half_w + 1),
          std::min(height, peak.y + half_h + 1)};
}

cv::Mat overlay_heatmap(const cv::Mat& image, const cv::Mat& similarity) {
  cv::Mat up, scaled, heat, blended;
  cv::resize(similarity, up, image.size(), 0, 0, cv::INTER_CUBIC);
  double lo = 0, hi = 0;
  cv::minMaxLoc(up, &lo, &hi);
  up.convertTo(scaled, CV_8U, hi > lo ? 255.0 / (hi - lo) : 0.0, hi > lo ? -255.0 * lo / (hi - lo) : 0.0);
  cv::applyColorMap(scaled, heat, cv::COLORMAP_JET);
  cv::addWeighted(image, 0.5, heat, 0.3, 0.0, blended);
  return blended;
}

cv::Mat draw_box(const cv::Mat& image, const std::array<int, 4>& box) {
  cv::Mat out = image.clone();
  cv::rectangle(out, cv::Point(box[0], box[1]), cv::Point(box[2] - 1, box[3] - 1), cv::Scalar(0, 255, 255), 2);
  return out;
}

std::string encode_png(const cv::Mat& image) {
  std::vector<uchar> buf;
  cv::imencode(".png", image, buf);
  return std::string(buf.begin(), buf.end());
}

std::array<int, 4> scale_box(const std::array<int, 4>& box, int wf, int hf, int wt, int ht) {
  const double sx = static_cast<double>(wt) / wf, sy = static_cast<double>(ht) / hf;
  return {std::clamp(static_cast<int>(std::floor(box[0] * sx)), 0, wt), std::clamp(static_cast<int>(std::floor(box[1] * sy)), 0, ht),
          std::clamp(static_cast<int>(std::ceil(box[2] * sx)), 0, wt), std::clamp(static_cast<int>(std::ceil(box[3] * sy)), 0, ht)};
}

}  // namespace ppnet::pipeline
