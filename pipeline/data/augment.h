#pragma once
// The reference's offline augmentation (its img_aug.py, built on Augmentor): rotation,
// perspective skew and shear, each followed by a left-right flip with probability 0.5.

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>

namespace ppnet::pipeline {

struct AugmentOptions {
  double rotation = 15.0;  // degrees, uniform in [−rotation, rotation]
  double skew = 0.2;       // perspective magnitude: corners move up to skew·max(w, h) pixels
  double shear = 10.0;     // degrees, uniform in [−shear, shear], horizontal or vertical
  double flip = 0.5;       // probability of a left-right flip after each operation
};

enum class AugmentOp { kRotate = 0, kSkew = 1, kShear = 2 };
inline constexpr AugmentOp kAugmentOps[] = {AugmentOp::kRotate, AugmentOp::kSkew, AugmentOp::kShear};

/// "rot", "skew", "shear": the suffix of an augmented file's name.
const char* op_name(AugmentOp op);

/// The randomness of one output, from the run's seed, the source image's id, the operation and
/// the copy number alone, so outputs do not depend on thread count or processing order.
uint64_t derive_seed(uint64_t seed, const std::string& image_id, AugmentOp op, int copy);

/// Applies `op` then the random flip. Rotation and shear crop away the empty corners they
/// create and scale back to the input size (as Augmentor does); skew keeps the size and fills
/// uncovered pixels with black. Same input and seed → same pixels.
cv::Mat augment(const cv::Mat& image, AugmentOp op, const AugmentOptions& options, uint64_t seed);

}  // namespace ppnet::pipeline
