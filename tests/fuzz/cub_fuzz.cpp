// CUB-200-2011's metadata and part files, cut from one input, over two real images.
#include <opencv2/imgcodecs.hpp>

#include "pipeline/data/sources.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ppnet;
  fuzz::reset_scratch();
  const auto root = fuzz::scratch() / "cub";
  const auto parts = fuzz::split(data, size, 7);
  const char* names[] = {"classes.txt", "images.txt", "image_class_labels.txt", "train_test_split.txt",
                         "bounding_boxes.txt", "parts/parts.txt", "parts/part_locs.txt"};
  for (int k = 0; k < 7; ++k) {
    if (k < 5 || !parts[static_cast<size_t>(k)].empty()) fuzz::write(root / names[k], parts[static_cast<size_t>(k)]);
  }
  static const cv::Mat pixels(12, 16, CV_8UC3, cv::Scalar(10, 200, 30));
  std::filesystem::create_directories(root / "images" / "a");
  cv::imwrite((root / "images" / "a" / "1.png").string(), pixels);
  cv::imwrite((root / "images" / "a" / "2.png").string(), pixels);
  try {
    const auto set = pipeline::read_cub(root);
    for (size_t i = 0; i < set.images.size() && i < 4; ++i) {
      cv::Rect crop;
      pipeline::load_source_image(set, set.images[i], &crop);
      pipeline::map_parts(set.images[i].parts, crop.x, crop.y, crop.width, crop.height, 8, 8);
    }
  } catch (const std::exception&) {
  }
  return 0;
}
