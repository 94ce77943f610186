#include "pipeline/data/augment.h"

#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

namespace ppnet::pipeline {
namespace {

cv::Mat pattern() {
  cv::Mat img(60, 80, CV_8UC3, cv::Scalar(30, 60, 90));
  cv::rectangle(img, cv::Rect(10, 10, 20, 30), cv::Scalar(255, 255, 255), cv::FILLED);
  cv::circle(img, cv::Point(60, 30), 12, cv::Scalar(0, 0, 255), cv::FILLED);
  return img;
}

bool same(const cv::Mat& a, const cv::Mat& b) { return a.size() == b.size() && cv::norm(a, b, cv::NORM_INF) == 0; }

TEST(Augment, EachOperationIsDeterministicKeepsTheSizeAndChangesThePixels) {
  const cv::Mat img = pattern();
  AugmentOptions o;
  for (AugmentOp op : kAugmentOps) {
    const uint64_t s = derive_seed(7, "img", op, 0);
    const cv::Mat a = augment(img, op, o, s), b = augment(img, op, o, s);
    EXPECT_EQ(a.size(), img.size()) << op_name(op);
    EXPECT_TRUE(same(a, b)) << op_name(op);
    EXPECT_FALSE(same(a, img)) << op_name(op);
    EXPECT_FALSE(same(a, augment(img, op, o, derive_seed(7, "img", op, 1)))) << op_name(op);
  }
}

TEST(Augment, ZeroRangesWithCertainFlipGiveTheMirrorImage) {
  const cv::Mat img = pattern();
  AugmentOptions o{0.0, 0.0, 0.0, 1.0};
  cv::Mat mirror;
  cv::flip(img, mirror, 1);
  for (AugmentOp op : {AugmentOp::kRotate, AugmentOp::kShear, AugmentOp::kSkew}) {
    EXPECT_TRUE(same(augment(img, op, o, 3), mirror)) << op_name(op);
  }
  o.flip = 0.0;
  EXPECT_TRUE(same(augment(img, AugmentOp::kRotate, o, 3), img));
}

TEST(Augment, RotationCropsAwayTheBlackCorners) {
  cv::Mat white(60, 80, CV_8UC3, cv::Scalar(255, 255, 255));
  AugmentOptions o{15.0, 0.2, 10.0, 0.0};
  for (int copy = 0; copy < 5; ++copy) {
    for (AugmentOp op : {AugmentOp::kRotate, AugmentOp::kShear}) {
      const cv::Mat out = augment(white, op, o, derive_seed(1, "w", op, copy));
      cv::Mat grey;
      cv::cvtColor(out, grey, cv::COLOR_BGR2GRAY);
      double lo = 0;
      cv::minMaxLoc(grey(cv::Rect(2, 2, 76, 56)), &lo);
      EXPECT_GT(lo, 200) << op_name(op) << " copy " << copy;  // no black fill inside
    }
  }
}

TEST(Augment, SeedsDependOnEveryPart) {
  const uint64_t s = derive_seed(1, "a", AugmentOp::kRotate, 0);
  EXPECT_NE(s, derive_seed(2, "a", AugmentOp::kRotate, 0));
  EXPECT_NE(s, derive_seed(1, "b", AugmentOp::kRotate, 0));
  EXPECT_NE(s, derive_seed(1, "a", AugmentOp::kSkew, 0));
  EXPECT_NE(s, derive_seed(1, "a", AugmentOp::kRotate, 1));
}

}  // namespace
}  // namespace ppnet::pipeline
