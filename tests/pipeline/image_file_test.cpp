// read_image_file: decodes what OpenCV decodes and, for what it cannot, says why in one line
// that starts with the file's path.
#include "pipeline/data/image_file.h"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "tests/common/test_util.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

std::string error_of(const fs::path& path) {
  try {
    read_image_file(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

std::string png_bytes(const cv::Mat& img) {
  std::vector<uchar> buf;
  cv::imencode(".png", img, buf);
  return std::string(buf.begin(), buf.end());
}

// A BMP header that declares width × height 24-bit pixels, with no pixels after it.
std::string bmp_header(int32_t width, int32_t height) {
  std::string h(54, '\0');
  auto put32 = [&](size_t at, int32_t v) {
    for (int i = 0; i < 4; ++i) h[at + static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  };
  h[0] = 'B';
  h[1] = 'M';
  put32(2, 54);
  put32(10, 54);
  put32(14, 40);
  put32(18, width);
  put32(22, height);
  h[26] = 1;   // planes
  h[28] = 24;  // bits per pixel
  return h;
}

TEST(ReadImageFile, DecodesColourGreyAndSixteenBitAsEightBitBgr) {
  test::TempDir dir;
  cv::Mat grey(5, 7, CV_8UC1, cv::Scalar(200)), deep(4, 3, CV_16UC1, cv::Scalar(65535));
  test::write_file(dir.file("grey.png"), png_bytes(grey));
  test::write_file(dir.file("deep.png"), png_bytes(deep));
  const cv::Mat g = read_image_file(dir.file("grey.png")), d = read_image_file(dir.file("deep.png"));
  EXPECT_EQ(g.type(), CV_8UC3);
  EXPECT_EQ(g.cols, 7);
  EXPECT_EQ(g.at<cv::Vec3b>(2, 3), cv::Vec3b(200, 200, 200));
  EXPECT_EQ(d.type(), CV_8UC3);
  EXPECT_EQ(d.at<cv::Vec3b>(0, 0), cv::Vec3b(255, 255, 255));
}

TEST(ReadImageFile, NamesTheFileAndTheRealCause) {
  test::TempDir dir;
  const std::string png = png_bytes(cv::Mat(20, 20, CV_8UC3, cv::Scalar(1, 2, 3)));
  test::write_file(dir.file("empty.png"), "");
  test::write_file(dir.file("cut.png"), png.substr(0, png.size() / 2));
  test::write_file(dir.file("text.jpg"), "hello, not a picture\n");
  test::write_file(dir.file("anim.gif"), std::string("GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14));
  test::write_file(dir.file("huge.bmp"), bmp_header(40000, 40000));
  fs::create_directory(dir.path() / "folder.png");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"missing.png", "missing"},
      {"folder.png", "not a regular file"},
      {"empty.png", "empty file (0 bytes)"},
      {"cut.png", "truncated or corrupt PNG data (" + std::to_string(png.size() / 2) + " bytes)"},
      {"text.jpg", "not an image: its first bytes match no format OpenCV decodes"},
      {"anim.gif", "a GIF, which OpenCV does not decode"},
      {"huge.bmp", "its header declares more pixels than OpenCV decodes"},
  };
  for (const auto& [name, cause] : cases) {
    const std::string msg = error_of(dir.path() / name);
    EXPECT_EQ(msg.rfind(dir.file(name) + ": ", 0), 0u) << name << ": " << msg;
    EXPECT_NE(msg.find(cause), std::string::npos) << name << ": " << msg;
    EXPECT_EQ(msg.find("OpenCV("), std::string::npos) << "a raw OpenCV assertion: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

}  // namespace
}  // namespace ppnet::pipeline
