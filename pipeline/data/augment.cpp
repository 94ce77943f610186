#include "pipeline/data/augment.h"

#include <opencv2/imgproc.hpp>

#include <cmath>

namespace ppnet::pipeline {
namespace {

constexpr double kPi = 3.14159265358979323846;

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A small generator of our own: std:: distributions are not specified bit-for-bit.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(splitmix64(state_) >> 11) * 0x1.0p-53;
  }
  int below(int n) { return static_cast<int>(splitmix64(state_) % static_cast<uint64_t>(n)); }
  bool chance(double p) { return uniform(0.0, 1.0) < p; }

 private:
  uint64_t state_;
};

// Centre crop of size (cw, ch) scaled back to the image's size.
cv::Mat crop_and_restore(const cv::Mat& img, double cw, double ch) {
  const int w = img.cols, h = img.rows;
  const int iw = std::clamp(static_cast<int>(std::floor(cw)), 1, w);
  const int ih = std::clamp(static_cast<int>(std::floor(ch)), 1, h);
  if (iw == w && ih == h) return img;
  cv::Mat out;
  cv::resize(img(cv::Rect((w - iw) / 2, (h - ih) / 2, iw, ih)), out, img.size(), 0, 0, cv::INTER_LINEAR);
  return out;
}

// Largest axis-aligned rectangle inside a w×h rectangle rotated by `angle` radians.
std::pair<double, double> inscribed_size(double w, double h, double angle) {
  const double s = std::abs(std::sin(angle)), c = std::abs(std::cos(angle));
  const bool wide = w >= h;
  const double lng = wide ? w : h, shrt = wide ? h : w;
  if (shrt <= 2.0 * s * c * lng || std::abs(s - c) < 1e-10) {
    const double x = 0.5 * shrt;
    return wide ? std::make_pair(x / s, x / c) : std::make_pair(x / c, x / s);
  }
  const double c2 = c * c - s * s;
  return {(w * c - h * s) / c2, (h * c - w * s) / c2};
}

cv::Mat rotate(const cv::Mat& img, double max_deg, Rng& rng) {
  const double deg = rng.uniform(-max_deg, max_deg);
  if (std::abs(deg) < 1e-9) return img;
  const cv::Point2f centre(static_cast<float>(img.cols) / 2.0f, static_cast<float>(img.rows) / 2.0f);
  cv::Mat rotated;
  cv::warpAffine(img, rotated, cv::getRotationMatrix2D(centre, deg, 1.0), img.size(), cv::INTER_LINEAR,
                 cv::BORDER_CONSTANT);
  const auto [cw, ch] = inscribed_size(img.cols, img.rows, deg * kPi / 180.0);
  return crop_and_restore(rotated, cw, ch);
}

cv::Mat shear(const cv::Mat& img, double max_deg, Rng& rng) {
  const double t = std::tan(rng.uniform(-max_deg, max_deg) * kPi / 180.0);
  const bool horizontal = rng.chance(0.5);
  const double w = img.cols, h = img.rows;
  // Shear about the centre: x' = x + t (y − h/2), or y' = y + t (x − w/2).
  cv::Mat m = horizontal ? (cv::Mat_<double>(2, 3) << 1, t, -t * h / 2, 0, 1, 0)
                         : (cv::Mat_<double>(2, 3) << 1, 0, 0, t, 1, -t * w / 2);
  cv::Mat sheared;
  cv::warpAffine(img, sheared, m, img.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT);
  // Keep the band every row (column) covers: the sheared edges leave |t|·h (|t|·w) empty.
  return horizontal ? crop_and_restore(sheared, w - std::abs(t) * h, h)
                    : crop_and_restore(sheared, w, h - std::abs(t) * w);
}

cv::Mat skew(const cv::Mat& img, double magnitude, Rng& rng) {
  const float w = static_cast<float>(img.cols), h = static_cast<float>(img.rows);
  const int max_amount = static_cast<int>(std::ceil(std::max(w, h) * magnitude));
  if (max_amount < 1) return img;
  const float a = static_cast<float>(1 + rng.below(max_amount));
  // Corners: top-left, top-right, bottom-right, bottom-left.
  const cv::Point2f src[4] = {{0, 0}, {w, 0}, {w, h}, {0, h}};
  cv::Point2f dst[4] = {src[0], src[1], src[2], src[3]};
  const int kind = rng.below(8);
  if (kind < 4) {
    // Tilt: the two corners of one side move towards each other along that side.
    switch (kind) {
      case 0: dst[0].y += a; dst[3].y -= a; break;  // left side
      case 1: dst[1].y += a; dst[2].y -= a; break;  // right side
      case 2: dst[0].x += a; dst[1].x -= a; break;  // top side
      default: dst[3].x += a; dst[2].x -= a; break; // bottom side
    }
  } else {
    // Corner: one corner moves inwards along both axes.
    const int c = kind - 4;
    dst[c].x += (c == 0 || c == 3) ? a : -a;
    dst[c].y += (c == 0 || c == 1) ? a : -a;
  }
  cv::Mat out;
  cv::warpPerspective(img, out, cv::getPerspectiveTransform(src, dst), img.size(), cv::INTER_LINEAR,
                      cv::BORDER_CONSTANT);
  return out;
}

}  // namespace

const char* op_name(AugmentOp op) {
  switch (op) {
    case AugmentOp::kRotate: return "rot";
    case AugmentOp::kSkew: return "skew";
    default: return "shear";
  }
}

uint64_t derive_seed(uint64_t seed, const std::string& image_id, AugmentOp op, int copy) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the id
  for (unsigned char ch : image_id) h = (h ^ ch) * 1099511628211ull;
  uint64_t state = seed ^ (h * 0x9e3779b97f4a7c15ull);
  state ^= splitmix64(state) + static_cast<uint64_t>(op) * 1000003ull + static_cast<uint64_t>(copy);
  return splitmix64(state);
}

cv::Mat augment(const cv::Mat& image, AugmentOp op, const AugmentOptions& options, uint64_t seed) {
  Rng rng(seed);
  cv::Mat out = op == AugmentOp::kRotate ? rotate(image, options.rotation, rng)
                : op == AugmentOp::kSkew ? skew(image, options.skew, rng)
                                         : shear(image, options.shear, rng);
  if (rng.chance(options.flip)) {
    cv::Mat flipped;
    cv::flip(out, flipped, 1);
    return flipped;
  }
  return out;
}

}  // namespace ppnet::pipeline
