// The antialiased resize against Pillow's own (the reference's torchvision transforms resize PIL
// images with it), and the bilinear one against OpenCV's.
#include <gtest/gtest.h>

#include <cstdlib>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "pipeline/data/resize.h"
#include "tests/common/test_util.h"

#include "test_paths.h"

namespace ppnet::pipeline {
namespace {

// Pillow's Image.resize(size, BILINEAR) of `in` (a PNG written here), read back.
cv::Mat pillow_resize(const test::TempDir& dir, const cv::Mat& image, int width, int height) {
  const std::string in = dir.file("in.png"), out = dir.file("out.png");
  cv::imwrite(in, image);
  const std::string cmd = std::string(PPNET_ORACLE_PYTHON) + " -c \"import sys; from PIL import Image; " +
                          "Image.open(sys.argv[1]).resize((" + std::to_string(width) + ", " + std::to_string(height) +
                          "), Image.BILINEAR).save(sys.argv[2])\" " + in + " " + out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return cv::imread(out, cv::IMREAD_UNCHANGED);
}

TEST(Resize, AntialiasEqualsPillowsBilinearWhenShrinkingAndGrowing) {
  test::TempDir dir;
  cv::Mat image(97, 131, CV_8UC3);
  cv::randu(image, 0, 256);
  cv::GaussianBlur(image, image, cv::Size(5, 5), 1.5);  // a photograph has structure, not only noise
  for (const auto& [w, h] : {std::pair{28, 28}, std::pair{224, 224}, std::pair{40, 97}, std::pair{131, 50}}) {
    const cv::Mat ours = resize_image(image, w, h, ResizeMethod::kAntialias);
    const cv::Mat theirs = pillow_resize(dir, image, w, h);
    ASSERT_EQ(theirs.size(), ours.size());
    cv::Mat diff;
    cv::absdiff(ours, theirs, diff);
    double worst = 0;
    cv::minMaxLoc(diff.reshape(1), nullptr, &worst);
    EXPECT_EQ(worst, 0.0) << w << "×" << h;
  }
  // Shrinking 131 → 28 px, the antialiased filter averages ~5 source pixels where OpenCV's
  // bilinear samples 2: the two differ.
  cv::Mat diff;
  cv::absdiff(resize_image(image, 28, 28, ResizeMethod::kAntialias), resize_image(image, 28, 28, ResizeMethod::kBilinear),
              diff);
  double worst = 0;
  cv::minMaxLoc(diff.reshape(1), nullptr, &worst);
  EXPECT_GT(worst, 2.0);
}

TEST(Resize, BilinearIsOpenCvsAndNamesParse) {
  cv::Mat image(30, 20, CV_8UC3);
  cv::randu(image, 0, 256);
  cv::Mat cv_out;
  cv::resize(image, cv_out, cv::Size(12, 12), 0, 0, cv::INTER_LINEAR);
  EXPECT_EQ(cv::norm(resize_image(image, 12, 12, ResizeMethod::kBilinear), cv_out, cv::NORM_INF), 0.0);
  EXPECT_EQ(parse_resize("antialias"), ResizeMethod::kAntialias);
  EXPECT_EQ(parse_resize(resize_name(ResizeMethod::kBilinear)), ResizeMethod::kBilinear);
  EXPECT_THROW(parse_resize("bicubic"), std::invalid_argument);
}

}  // namespace
}  // namespace ppnet::pipeline
