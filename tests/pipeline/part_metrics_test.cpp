// The interpretability metrics' definitions on hand-made part sets, and the boxes they measure
// against, checked against direct computations (the trained-model checks are in audit_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "pipeline/data/parts.h"
#include "pipeline/render/heatmap.h"
#include "pipeline/stages/part_metrics.h"

namespace ppnet::pipeline {
namespace {

constexpr uint64_t kPart0 = 1, kPart1 = 2, kPart2 = 4;

TEST(PartMetrics, DefinitionsOnHandMadePartSets) {
  PartMetrics m(3, {0.8});
  // Prototype 0: part 1 in its box in 8 of 10 images (consistent at exactly 80 %).
  for (int i = 0; i < 10; ++i) m.add_own_class(0, i < 8 ? kPart1 | (i == 0 ? kPart2 : 0) : 0);
  // Prototype 1: parts 0 and 2 each in 7 of 10: no part reaches 80 %.
  for (int i = 0; i < 10; ++i) m.add_own_class(1, (i < 7 ? kPart0 : 0) | (i >= 3 ? kPart2 : 0));
  // Prototype 2 never saw an image of its class: not counted.
  for (int i = 0; i < 10; ++i) m.add_stability(0, kPart1, i < 9 ? kPart1 : kPart0);        // 9 of 10 unchanged
  for (int i = 0; i < 10; ++i) m.add_stability(1, kPart0 | kPart2, i % 2 ? kPart0 : kPart0 | kPart2);  // 5 of 10
  for (const bool hit : {true, true, false, true}) m.add_pointing(hit);
  m.add_nearest(0, {kPart1, kPart1, kPart1 | kPart2, 0, kPart2});  // part 1 in 3 of 5
  m.add_nearest(1, {});                                          // no patches: not counted
  const auto r = m.result();
  EXPECT_EQ(r.consistency_prototypes, 2);
  EXPECT_EQ(r.consistent_prototypes, 1);
  EXPECT_DOUBLE_EQ(r.consistency, 0.5);
  EXPECT_DOUBLE_EQ(r.stability, (0.9 + 0.5) / 2);
  EXPECT_DOUBLE_EQ(r.pointing, 0.75);
  EXPECT_EQ(r.pointing_images, 4);
  EXPECT_DOUBLE_EQ(r.purity, 0.6);

  PartMetrics strict(1, {0.9});
  for (int i = 0; i < 10; ++i) strict.add_own_class(0, i < 8 ? kPart1 : 0);
  EXPECT_DOUBLE_EQ(strict.result().consistency, 0.0);
  EXPECT_DOUBLE_EQ(PartMetrics(2, {}).result().pointing, -1.0) << "nothing fed: not measured";
}

// The box an activation map gives, and which parts it holds, checked against a direct
// computation: a full sort for the percentile instead of a partial selection.
TEST(PartMetrics, BoxOfAKnownMapHoldsTheKnownParts) {
  cv::Mat map(7, 7, CV_32F, cv::Scalar(0.1f));
  map.at<float>(2, 5) = 3.0f;  // peak at row 2, column 5
  map.at<float>(2, 4) = 1.5f;
  const auto box = high_activation_box(map, 224, 224);
  cv::Mat up;
  cv::resize(map, up, cv::Size(224, 224), 0, 0, cv::INTER_CUBIC);
  std::vector<float> v(up.begin<float>(), up.end<float>());
  std::sort(v.begin(), v.end());
  const double rank = 0.95 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(rank);
  const float threshold = static_cast<float>(v[lo] + (rank - static_cast<double>(lo)) * (v[lo + 1] - v[lo]));
  cv::Mat mask = up >= threshold;
  const cv::Rect r = cv::boundingRect(mask);
  EXPECT_EQ(box, (std::array<int, 4>{r.x, r.y, r.x + r.width, r.y + r.height}));
  // The peak cell's centre (x 5.5·32, y 2.5·32) is inside; a far corner is not.
  const std::vector<PartLocation> parts = {{0, 176, 80, true}, {1, 176, 80, false}, {2, 20, 200, true},
                                           {3, static_cast<double>(box[2]), 80, true}};
  EXPECT_EQ(parts_in_box(parts, box.data()), kPart0) << box[0] << ',' << box[1] << ',' << box[2] << ',' << box[3];
  EXPECT_GT(box[0], 100);
  EXPECT_LT(box[3], 160);

  // EvalProtoPNet's box: 72 px around the upsampled map's maximum, clipped to the image.
  int px = 0, py = 0;
  for (int y = 0; y < 224; ++y) {
    for (int x = 0; x < 224; ++x) {
      if (up.at<float>(y, x) > up.at<float>(py, px)) px = x, py = y;
    }
  }
  EXPECT_EQ(peak_box(map, 224, 224, 72.0 / 224), (std::array<int, 4>{px - 36, py - 36, std::min(224, px + 37), py + 37}));
  cv::Mat corner(7, 7, CV_32F, cv::Scalar(0.0f));
  corner.at<float>(0, 0) = 1.0f;
  const auto clipped = peak_box(corner, 224, 224, 0.32);
  EXPECT_EQ(clipped[0], 0);
  EXPECT_EQ(clipped[1], 0);
  EXPECT_LT(clipped[2], 50);
}

}  // namespace
}  // namespace ppnet::pipeline
