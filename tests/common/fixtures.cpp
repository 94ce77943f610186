#include "tests/common/fixtures.h"

#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <sstream>

#include "tests/common/test_util.h"

namespace ppnet::test {

namespace fs = std::filesystem;

CubFixture make_cub_fixture(const fs::path& root, int classes, int per_class, int width, int height,
                            const std::string& ext) {
  CubFixture f;
  f.root = root;
  f.classes = classes;
  f.per_class = per_class;
  std::mt19937 rng(1234);
  std::ostringstream classes_txt, images_txt, labels_txt, split_txt, boxes_txt;
  int id = 1;
  for (int c = 0; c < classes; ++c) {
    char name[64];
    std::snprintf(name, sizeof name, "%03d.Bird_%c", c + 1, 'A' + c);
    f.class_names.push_back(name);
    classes_txt << c + 1 << ' ' << name << '\n';
    fs::create_directories(root / "images" / name);
    for (int k = 0; k < per_class; ++k, ++id) {
      cv::Mat img(height, width, CV_8UC3);
      cv::randu(img, 0, 256);
      const std::string rel = std::string(name) + "/Bird_" + std::to_string(id) + ext;
      cv::imwrite((root / "images" / rel).string(), img);
      f.image_paths.push_back(rel);
      f.images.push_back(img);
      // Fractional boxes that exercise floor/ceil, one of them running past the right edge.
      const std::array<double, 4> box = {2.5 + k, 3.25, width - 10.0 + (k == 1 ? 12.0 : 0.0), height - 8.5};
      f.boxes.push_back(box);
      images_txt << id << ' ' << rel << '\n';
      labels_txt << id << ' ' << c + 1 << '\n';
      split_txt << id << ' ' << (k == per_class - 1 ? 0 : 1) << '\n';
      boxes_txt << id << ' ' << box[0] << ' ' << box[1] << ' ' << box[2] << ' ' << box[3] << '\n';
    }
  }
  write_file((root / "classes.txt").string(), classes_txt.str());
  write_file((root / "images.txt").string(), images_txt.str());
  write_file((root / "image_class_labels.txt").string(), labels_txt.str());
  write_file((root / "train_test_split.txt").string(), split_txt.str());
  write_file((root / "bounding_boxes.txt").string(), boxes_txt.str());
  return f;
}

namespace {
std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
void write_maybe_gz(const fs::path& path, const std::string& bytes, bool gzip) {
  if (!gzip) {
    write_file(path.string(), bytes);
    return;
  }
  gzFile f = gzopen((path.string() + ".gz").c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}
}  // namespace

void make_idx_fixture(const fs::path& dir, int n_train, int n_test, int classes, bool gzip) {
  fs::create_directories(dir);
  std::mt19937 rng(99);
  for (const auto& [prefix, n] : {std::pair<std::string, int>{"train", n_train}, {"t10k", n_test}}) {
    std::string images = be32(0x803) + be32(static_cast<uint32_t>(n)) + be32(6) + be32(5);
    std::string labels = be32(0x801) + be32(static_cast<uint32_t>(n));
    for (int i = 0; i < n; ++i) {
      for (int p = 0; p < 30; ++p) images += static_cast<char>(rng() & 0xff);
      labels += static_cast<char>(i % classes);
    }
    write_maybe_gz(dir / (prefix + "-images-idx3-ubyte"), images, gzip);
    write_maybe_gz(dir / (prefix + "-labels-idx1-ubyte"), labels, gzip);
  }
}

void make_pattern_folder(const fs::path& root, int classes, int per_class, int size, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> jitter(-2, 2);
  for (int c = 0; c < classes; ++c) {
    const fs::path dir = root / ("class" + std::to_string(c));
    fs::create_directories(dir);
    const int cx = 4 + (c * 7) % (size - 11), cy = 4 + (c * 11) % (size - 11);
    for (int k = 0; k < per_class; ++k) {
      cv::Mat img(size, size, CV_8UC3);
      cv::randu(img, 0, 60);
      const int x = std::clamp(cx + jitter(rng), 0, size - 7), y = std::clamp(cy + jitter(rng), 0, size - 7);
      img(cv::Rect(x, y, 7, 7)).setTo(cv::Scalar(230, 230, 230));
      char name[32];
      std::snprintf(name, sizeof name, "img%03d.png", k);
      cv::imwrite((dir / name).string(), img);
    }
  }
}

std::map<std::string, cv::Rect> make_planted_folder(const fs::path& root, int classes, int per_class, int size,
                                                    int part, unsigned seed) {
  static const cv::Scalar kColours[] = {{0, 0, 255}, {0, 255, 0}, {255, 0, 0}, {0, 255, 255}, {255, 0, 255}};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> where(0, size - part);
  std::map<std::string, cv::Rect> parts;
  for (int c = 0; c < classes; ++c) {
    const std::string cls = "class" + std::to_string(c);
    fs::create_directories(root / cls);
    for (int k = 0; k < per_class; ++k) {
      cv::Mat grey(size, size, CV_8UC1), img;
      cv::randu(grey, 90, 130);
      cv::cvtColor(grey, img, cv::COLOR_GRAY2BGR);
      const cv::Rect r(where(rng), where(rng), part, part);
      img(r).setTo(kColours[c % 5]);
      char name[32];
      std::snprintf(name, sizeof name, "img%03d.png", k);
      cv::imwrite((root / cls / name).string(), img);
      parts[cls + "/" + name] = r;
    }
  }
  return parts;
}

ConfounderFolder make_confounder_folder(const fs::path& root, int per_class, double part_noise, unsigned seed) {
  constexpr int kS = ConfounderFolder::kSize, kPart = 8;
  const cv::Rect mark = ConfounderFolder::kMark;
  // BGR: a reddish, greenish and bluish square; yellow, magenta and cyan marks.
  static const cv::Scalar kSquare[] = {{70, 70, 190}, {70, 190, 70}, {190, 70, 70}};
  static const cv::Scalar kMarkColour[] = {{0, 255, 255}, {255, 0, 255}, {255, 255, 0}};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> where(0, kS - kPart), other(1, 2);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  cv::RNG noise(seed);  // not cv::randu's process-wide generator: the images depend on the seed alone
  ConfounderFolder f;
  for (const std::string split : {"train", "test"}) {
    const int n = split == "train" ? per_class : per_class / 3;
    for (int c = 0; c < 3; ++c) {
      const fs::path dir = root / split / ("class" + std::to_string(c));
      fs::create_directories(dir);
      for (int k = 0; k < n; ++k) {
        cv::Mat grey(kS, kS, CV_8UC1), img;
        noise.fill(grey, cv::RNG::UNIFORM, 90, 131);
        cv::cvtColor(grey, img, cv::COLOR_GRAY2BGR);
        cv::Rect square;
        do {
          square = cv::Rect(where(rng), where(rng), kPart, kPart);
        } while ((square & mark).area() > 0);
        const bool train = split == "train";
        const int colour = train && unit(rng) < part_noise ? (c + other(rng)) % 3 : c;
        img(square).setTo(kSquare[colour]);
        if (train) img(mark).setTo(kMarkColour[c]);
        char name[32];
        std::snprintf(name, sizeof name, "img%03d.png", k);
        cv::imwrite((dir / name).string(), img);
        if (train && colour == c) f.parts[split + "/class" + std::to_string(c) + "/" + name] = square;
      }
    }
  }
  return f;
}

PartsCubFixture make_parts_cub_fixture(const fs::path& root, int classes, int per_class, int size, int part,
                                       int margin, unsigned seed) {
  static const cv::Scalar kColours[] = {{0, 0, 255}, {0, 255, 0}, {255, 0, 0}, {0, 255, 255}, {255, 0, 255}};
  PartsCubFixture f;
  f.cub.root = root;
  f.cub.classes = classes;
  f.cub.per_class = per_class;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> where(0, size - part), anywhere(0, size - 1);
  std::ostringstream classes_txt, images_txt, labels_txt, split_txt, boxes_txt, locs;
  int id = 1;
  for (int c = 0; c < classes; ++c) {
    char name[64];
    std::snprintf(name, sizeof name, "%03d.Bird %c", c + 1, 'A' + c);  // a space, as CUB's names may hold
    f.cub.class_names.push_back(name);
    classes_txt << c + 1 << ' ' << name << '\n';
    std::string folder = name;
    std::replace(folder.begin(), folder.end(), ' ', '_');
    fs::create_directories(root / "images" / folder);
    for (int k = 0; k < per_class; ++k, ++id) {
      const int full = size + 2 * margin;
      cv::Mat grey(full, full, CV_8UC1), img;
      cv::randu(grey, 90, 130);
      cv::cvtColor(grey, img, cv::COLOR_GRAY2BGR);
      const cv::Rect square(where(rng), where(rng), part, part);
      img(square + cv::Point(margin, margin)).setTo(kColours[c % 5]);
      cv::Point2d spot;
      do {
        spot = {anywhere(rng) + 0.5, anywhere(rng) + 0.5};
      } while (std::abs(spot.x - (square.x + part / 2.0)) < part && std::abs(spot.y - (square.y + part / 2.0)) < part);
      const std::string rel = folder + "/Bird_" + std::to_string(id) + ".png";
      cv::imwrite((root / "images" / rel).string(), img);
      // CUB's segmentation format: grey levels, object at ≥ 50 %; a ring at 100 is background.
      cv::Mat segmentation(full, full, CV_8UC1, cv::Scalar(0));
      const cv::Rect all(0, 0, full, full), object = f.object_of(square) + cv::Point(margin, margin);
      segmentation(cv::Rect(object.x - 1, object.y - 1, object.width + 2, object.height + 2) & all).setTo(100);
      segmentation(object & all).setTo(255);
      fs::create_directories(root.parent_path() / "segmentations" / folder);
      cv::imwrite((root.parent_path() / "segmentations" / rel).string(), segmentation);
      f.cub.image_paths.push_back(rel);
      f.cub.images.push_back(img);
      f.cub.boxes.push_back({double(margin), double(margin), double(size), double(size)});
      f.squares.push_back(square);
      f.spots.push_back(spot);
      images_txt << id << ' ' << rel << '\n';
      labels_txt << id << ' ' << c + 1 << '\n';
      split_txt << id << ' ' << (k % 4 == 3 ? 0 : 1) << '\n';
      boxes_txt << id << ' ' << margin << ' ' << margin << ' ' << size << ' ' << size << '\n';
      locs << id << " 1 " << square.x + part / 2.0 + margin << ' ' << square.y + part / 2.0 + margin << " 1\n"
           << id << " 2 " << spot.x + margin << ' ' << spot.y + margin << " 1\n"
           << id << " 3 0 0 0\n";
    }
  }
  write_file((root / "classes.txt").string(), classes_txt.str());
  write_file((root / "images.txt").string(), images_txt.str());
  write_file((root / "image_class_labels.txt").string(), labels_txt.str());
  write_file((root / "train_test_split.txt").string(), split_txt.str());
  write_file((root / "bounding_boxes.txt").string(), boxes_txt.str());
  fs::create_directories(root / "parts");
  write_file((root / "parts" / "parts.txt").string(), "1 planted square\n2 grey spot\n3 hidden tail\n");
  write_file((root / "parts" / "part_locs.txt").string(), locs.str());
  return f;
}

std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), root).generic_string()] = read_file(e.path().string());
  }
  return out;
}

}  // namespace ppnet::test
