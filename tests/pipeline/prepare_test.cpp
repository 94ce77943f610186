#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "base/atomic_file.h"
#include "pipeline/data/prepare.h"
#include "pipeline/data/manifest.h"
#include "pipeline/data/masks.h"
#include "pipeline/data/parts.h"
#include "pipeline/data/sources.h"
#include "pipeline/data/image_file.h"
#include <functional>
#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

PrepareConfig cub_config(const fs::path& src, const fs::path& out, int copies = 2) {
  PrepareConfig c;
  c.cub = src.string();
  c.out = out.string();
  c.copies = copies;
  c.threads = 2;
  c.seed = 5;
  return c;
}

std::string error_of(const PrepareConfig& c) {
  try {
    run_prepare(c);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Prepare, CubCropsEqualTheBoxRegion) {
  TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 2, 3);
  const auto r = run_prepare(cub_config(f.root, dir.path() / "data", 0));
  EXPECT_TRUE(r.failed.empty());
  for (size_t i = 0; i < f.images.size(); ++i) {
    const bool is_test = i % 3 == 2;
    const fs::path out = dir.path() / "data" / (is_test ? "test" : "push") / f.image_paths[i];
    const cv::Mat got = cv::imread(out.string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(got.empty()) << out;
    const auto& b = f.boxes[i];
    const int x0 = static_cast<int>(std::floor(b[0])), y0 = static_cast<int>(std::floor(b[1]));
    const int x1 = std::min(48, static_cast<int>(std::ceil(b[0] + b[2])));
    const int y1 = std::min(40, static_cast<int>(std::ceil(b[1] + b[3])));
    const cv::Mat expected = f.images[i](cv::Rect(x0, y0, x1 - x0, y1 - y0));
    ASSERT_EQ(got.size(), expected.size()) << out;
    EXPECT_EQ(cv::norm(got, expected, cv::NORM_INF), 0.0) << out;
  }
}

TEST(Prepare, SplitCountsCopiesAndManifest) {
  TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 3, 4);
  auto c = cub_config(f.root, dir.path() / "data", 2);
  c.val_fraction = 0.34;  // 1 of each class's 3 training images
  const auto r = run_prepare(c);
  EXPECT_EQ(r.images.at("push"), 6);
  EXPECT_EQ(r.images.at("val"), 3);
  EXPECT_EQ(r.images.at("test"), 3);
  EXPECT_EQ(r.images.at("train"), 6 * 3 * 2);  // three operations × two copies each
  const auto m = read_manifest(dir.path() / "data");
  ASSERT_EQ(m.classes.size(), 3u);
  EXPECT_EQ(m.classes[1].name, "002.Bird_B");
  EXPECT_EQ(m.counts.at("train"), (std::vector<int64_t>{12, 12, 12}));
  EXPECT_EQ(m.options.at("copies"), "2");
  const auto train = read_list(dir.path() / "data", "train");
  ASSERT_EQ(train.size(), 36u);
  for (const auto& e : train) EXPECT_TRUE(fs::exists(dir.path() / "data" / e.path)) << e.path;
  // Validation images are neither pushed nor augmented.
  for (const auto& v : read_list(dir.path() / "data", "val")) {
    for (const auto& t : train) EXPECT_NE(t.source_id, v.source_id);
  }
  // Every pushed image has its 3 × 2 augmented copies, named after it.
  for (const auto& p : read_list(dir.path() / "data", "push")) {
    const fs::path stem = fs::path(p.path).parent_path().filename() / fs::path(p.path).stem();
    for (const char* op : {"rot", "skew", "shear"}) {
      for (const char* k : {"00", "01"}) {
        EXPECT_TRUE(fs::exists(dir.path() / "data/train" / (stem.string() + "_" + op + k + ".png"))) << stem << op << k;
      }
    }
  }
}

TEST(Prepare, SameBytesWithOneAndTwoThreads) {
  TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 2, 4, 64, 56, ".jpg");
  auto c = cub_config(f.root, dir.path() / "one", 3);
  c.threads = 1;
  run_prepare(c);
  c.out = (dir.path() / "two").string();
  c.threads = 2;
  run_prepare(c);
  const auto a = test::snapshot(dir.path() / "one"), b = test::snapshot(dir.path() / "two");
  EXPECT_EQ(a.size(), b.size());
  EXPECT_GT(a.size(), 50u);
  EXPECT_TRUE(a == b);
  // Another seed gives other augmentations.
  c.out = (dir.path() / "three").string();
  c.seed = 6;
  run_prepare(c);
  EXPECT_NE(test::read_file((dir.path() / "one/train/001.Bird_A/Bird_1_rot00.jpg").string()),
            test::read_file((dir.path() / "three/train/001.Bird_A/Bird_1_rot00.jpg").string()));
}

TEST(Prepare, ResumeAfterAnInterruptedRunEndsByteIdentical) {
  TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 2, 4);
  run_prepare(cub_config(f.root, dir.path() / "whole"));
  const auto c = cub_config(f.root, dir.path() / "resumed");
  run_prepare(c);
  // What a kill leaves: some outputs, a temporary file, no lists or manifest.
  const fs::path out = dir.path() / "resumed";
  fs::remove(manifest_path(out));
  fs::remove_all(out / "lists");
  int removed = 0;
  for (const auto& e : fs::recursive_directory_iterator(out / "train")) {
    if (e.is_regular_file() && removed++ % 2 == 0) fs::remove(e.path());
  }
  test::write_file((out / "train/001.Bird_A/.Bird_1_rot00.png.tmp-1-1").string(), "half");
  const auto r = run_prepare(c);
  EXPECT_GT(r.files_kept, 0);
  EXPECT_GT(r.files_written, 0);
  EXPECT_TRUE(test::snapshot(dir.path() / "whole") == test::snapshot(out));
  // A second re-run has nothing to do.
  EXPECT_TRUE(run_prepare(c).up_to_date);
}

TEST(Prepare, CorruptImageIsReportedAndTheRestDone) {
  TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 2, 3);
  const fs::path bad = f.root / "images" / f.image_paths[1];
  test::write_file(bad.string(), "this is not a png");
  const auto r = run_prepare(cub_config(f.root, dir.path() / "data", 1));
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_NE(r.failed[0].find(bad.string()), std::string::npos) << r.failed[0];
  EXPECT_EQ(r.images.at("push"), 3);  // 4 training images, one unreadable
  EXPECT_EQ(read_manifest(dir.path() / "data").failed.size(), 1u);

  // A listed image that is not on disk is reported the same way.
  fs::remove(f.root / "images" / f.image_paths[3]);
  auto c = cub_config(f.root, dir.path() / "data2", 1);
  const auto r2 = run_prepare(c);
  ASSERT_EQ(r2.failed.size(), 2u);
  EXPECT_NE(r2.failed[1].find(f.image_paths[3] + ": missing"), std::string::npos) << r2.failed[1];
}

TEST(Prepare, MetadataErrorsStopBeforeAnyOutput) {
  TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 2, 3);
  const fs::path out = dir.path() / "data";
  const std::string images_txt = test::read_file((f.root / "images.txt").string());

  test::write_file((f.root / "images.txt").string(), "1 a.png\n2 b.png\nthree\n");
  std::string msg = error_of(cub_config(f.root, out));
  EXPECT_NE(msg.find("images.txt line 3: expected '<image id> <path under images/>', got 'three'"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out));

  test::write_file((f.root / "images.txt").string(), images_txt);
  const std::string boxes = test::read_file((f.root / "bounding_boxes.txt").string());
  test::write_file((f.root / "bounding_boxes.txt").string(), boxes + "7 1 2 wide 4\n");
  msg = error_of(cub_config(f.root, out));
  EXPECT_NE(msg.find("bounding_boxes.txt line 7: 'wide' is not a number"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out));

  fs::remove(f.root / "bounding_boxes.txt");
  msg = error_of(cub_config(f.root, out));
  EXPECT_NE(msg.find("bounding_boxes.txt: missing"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out));
}

TEST(Prepare, DifferentCommandIsRefusedUnlessForced) {
  TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "cub", 2, 3);
  auto c = cub_config(f.root, dir.path() / "data", 1);
  run_prepare(c);
  c.copies = 2;
  const std::string msg = error_of(c);
  EXPECT_NE(msg.find("copies 1 → 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--force"), std::string::npos) << msg;
  c.force = true;
  EXPECT_EQ(run_prepare(c).images.at("train"), 4 * 3 * 2);
  // A folder ppnet did not make is never taken over, even with --force.
  fs::create_directories(dir.path() / "mine");
  test::write_file((dir.path() / "mine/notes.txt").string(), "keep me");
  c.out = (dir.path() / "mine").string();
  EXPECT_NE(error_of(c).find("not made by ppnet prepare"), std::string::npos);
  EXPECT_EQ(test::read_file((dir.path() / "mine/notes.txt").string()), "keep me");
}

TEST(Prepare, CubArchiveGivesTheSameOutputAsTheFolder) {
  TempDir dir;
  const auto f = test::make_cub_fixture(dir.path() / "src" / "CUB_200_2011", 2, 3);
  const std::string tgz = (dir.path() / "CUB_200_2011.tgz").string();
  const std::string cmd = "tar -czf " + tgz + " -C " + (dir.path() / "src").string() + " CUB_200_2011";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  run_prepare(cub_config(f.root, dir.path() / "from_folder"));
  run_prepare(cub_config(tgz, dir.path() / "from_tgz"));
  auto a = test::snapshot(dir.path() / "from_folder"), b = test::snapshot(dir.path() / "from_tgz");
  a.erase("prepare.json"), b.erase("prepare.json");  // they name different sources
  a.erase("manifest.json"), b.erase("manifest.json");
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(fs::exists(dir.path() / "from_tgz/.source"));  // staging removed once complete
}

TEST(Prepare, FolderTreesWithAndWithoutTrainTest) {
  TempDir dir;
  for (const char* cls : {"cats", "dogs"}) {
    for (int i = 0; i < 5; ++i) {
      cv::Mat img(10, 12, CV_8UC3, cv::Scalar(i * 10, 20, 30));
      fs::create_directories(dir.path() / "flat" / cls);
      cv::imwrite((dir.path() / "flat" / cls / ("img" + std::to_string(i) + ".png")).string(), img);
      fs::create_directories(dir.path() / "split" / (i < 4 ? "train" : "test") / cls);
      cv::imwrite((dir.path() / "split" / (i < 4 ? "train" : "test") / cls / ("img" + std::to_string(i) + ".bmp")).string(), img);
    }
  }
  PrepareConfig c;
  c.folder = (dir.path() / "flat").string();
  c.out = (dir.path() / "a").string();
  c.copies = 0;
  c.test_fraction = 0.4;
  auto r = run_prepare(c);
  EXPECT_EQ(r.images.at("test"), 4);
  EXPECT_EQ(r.images.at("push"), 6);
  EXPECT_EQ(r.images.at("train"), 6);  // --copies 0: train lists the push images
  EXPECT_EQ(read_list(dir.path() / "a", "train")[0].path.rfind("push/", 0), 0u);
  c.folder = (dir.path() / "split").string();
  c.out = (dir.path() / "b").string();
  r = run_prepare(c);
  EXPECT_EQ(r.images.at("test"), 2);
  EXPECT_EQ(r.images.at("push"), 8);
  EXPECT_TRUE(fs::exists(dir.path() / "b/push/dogs/img3.png"));  // BMP becomes PNG
}

TEST(Prepare, CubPartsLandWhereThePartsAreInThePreparedImages) {
  TempDir dir;
  const auto f = test::make_parts_cub_fixture(dir.path() / "cub", 2, 4, 48, 8, 4);
  for (const int size : {0, 24}) {
    auto c = cub_config(f.cub.root, dir.path() / ("data" + std::to_string(size)), 1);
    c.size = size;
    const auto r = run_prepare(c);
    EXPECT_EQ(r.part_names, (std::vector<std::string>{"planted square", "grey spot", "hidden tail"}));
    EXPECT_EQ(r.annotated_images, 8);  // push and test images; augmented copies have none
    const DataParts parts = read_data_parts(c.out);
    ASSERT_EQ(parts.images.size(), 8u);
    const double scale = size == 0 ? 1.0 : size / 48.0;
    for (size_t i = 0; i < f.cub.images.size(); ++i) {
      const bool is_test = i % 4 == 3;
      std::string rel = (is_test ? "test/" : "push/") + f.cub.image_paths[i];
      const ImageParts* img = parts.find(rel);
      ASSERT_NE(img, nullptr) << rel;
      EXPECT_EQ(img->width, size == 0 ? 48 : size);
      const cv::Mat pixels = cv::imread((fs::path(c.out) / rel).string());
      EXPECT_EQ(pixels.cols, img->width);
      ASSERT_EQ(img->parts.size(), 3u);
      const cv::Rect& sq = f.squares[i];
      EXPECT_NEAR(img->parts[0].x, (sq.x + 4.0) * scale, 1e-6) << rel;
      EXPECT_NEAR(img->parts[0].y, (sq.y + 4.0) * scale, 1e-6) << rel;
      EXPECT_TRUE(img->parts[0].visible);
      EXPECT_NEAR(img->parts[1].x, f.spots[i].x * scale, 1e-6);
      EXPECT_FALSE(img->parts[2].visible);
      if (size == 0) {  // the square's pixels are where the part says, in the prepared file
        const cv::Vec3b px = pixels.at<cv::Vec3b>(static_cast<int>(img->parts[0].y), static_cast<int>(img->parts[0].x));
        EXPECT_TRUE(px != cv::Vec3b(px[0], px[0], px[0])) << "a coloured pixel, not grey noise";
      }
    }
  }
  EXPECT_FALSE(has_data_parts(dir.path() / "nothing"));
}

TEST(Prepare, BadPartLinesNameFileAndLine) {
  TempDir dir;
  const auto f = test::make_parts_cub_fixture(dir.path() / "cub", 2, 2);
  const fs::path locs = f.cub.root / "parts" / "part_locs.txt";
  const std::string good = test::read_file(locs.string());
  const std::pair<std::string, std::string> cases[] = {
      {"1 1 3 4 2\n", "part_locs.txt line 13: visible must be 0 or 1"},
      {"1 9 3 4 1\n", "part_locs.txt line 13: part id 9 is not in parts.txt (1…3)"},
      {"1 1 nan 4 1\n", "part_locs.txt line 13: expected '<image> <part id> <x> <y> <visible>' with numbers"},
      {"1 1 -3 4 1\n", "part_locs.txt line 13: coordinates must not be negative"},
      {"1 1 3 4 1\n", "part_locs.txt line 13: part 1 of '1' given twice"},
      {"77 1 3 4 1\n", "part_locs.txt: image '77' is not an image of images.txt"},
      {"1 1 3\n", "part_locs.txt line 13: expected '<image> <part id> <x> <y> <visible>'"}};
  for (const auto& [line, expected] : cases) {
    test::write_file(locs.string(), good + line);
    const std::string msg = error_of(cub_config(f.cub.root, dir.path() / "data"));
    EXPECT_NE(msg.find(expected), std::string::npos) << line << msg;
    EXPECT_FALSE(fs::exists(dir.path() / "data")) << "nothing written before the metadata is valid";
  }
  test::write_file(locs.string(), good);
  test::write_file((f.cub.root / "parts" / "parts.txt").string(), "1 beak\n3 tail\n");
  const std::string msg = error_of(cub_config(f.cub.root, dir.path() / "data"));
  EXPECT_NE(msg.find("parts.txt line 2: part ids must run 1, 2, 3, … (expected 2)"), std::string::npos) << msg;
}

TEST(Prepare, FolderWithAPartsFile) {
  TempDir dir;
  const auto squares = test::make_planted_folder(dir.path() / "images", 2, 4, 32, 6);
  std::string locs;
  for (const auto& [rel, r] : squares) {
    locs += rel + " 1 " + std::to_string(r.x + 3) + " " + std::to_string(r.y + 3) + " 1\n";
  }
  fs::create_directories(dir.path() / "parts");
  test::write_file((dir.path() / "parts/parts.txt").string(), "1 planted square\n");
  test::write_file((dir.path() / "parts/part_locs.txt").string(), locs);
  PrepareConfig c;
  c.folder = (dir.path() / "images").string();
  c.parts = (dir.path() / "parts").string();
  c.out = (dir.path() / "data").string();
  c.copies = 0;
  c.test_fraction = 0.25;
  const auto r = run_prepare(c);
  EXPECT_EQ(r.annotated_images, 8);
  const DataParts parts = read_data_parts(c.out);
  for (const auto& split : {"push", "test"}) {
    for (const auto& e : read_list(c.out, split)) {
      const ImageParts* img = parts.find(e.path);
      ASSERT_NE(img, nullptr) << e.path;
      const cv::Rect& sq = squares.at(e.source_id);
      EXPECT_EQ(img->parts[0].x, sq.x + 3);
      EXPECT_EQ(img->parts[0].y, sq.y + 3);
    }
  }
  // A key that names no image of the folder.
  test::write_file((dir.path() / "parts/part_locs.txt").string(), locs + "class0/nope.png 1 3 3 1\n");
  c.out = (dir.path() / "data2").string();
  const std::string msg = error_of(c);
  EXPECT_NE(msg.find("image 'class0/nope.png' is not an image of the data set"), std::string::npos) << msg;
}

TEST(Prepare, NamesTheListsCannotHoldAreRefusedBeforeAnythingIsWritten) {
  TempDir dir;
  for (const std::string bad : {"line\nbreak.png", "tab\there.png"}) {
    const fs::path src = dir.path() / "src";
    fs::remove_all(src);
    test::make_pattern_folder(src, 2, 3);
    fs::copy_file(src / "class0" / "img000.png", src / "class1" / bad);
    PrepareConfig c;
    c.folder = src.string();
    c.out = (dir.path() / "data").string();
    c.copies = 0;
    const std::string msg = error_of(c);
    EXPECT_NE(msg.find((src / "class1" / bad).string() + ": the name holds a tab or line break"), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(dir.path() / "data"));
  }
}

// Found by fuzzing (tests/fuzz/corpus/*/regression-*): a box far outside the image overflowed an
// int, and training images of zero rows let the test images' pixels be read out of bounds.
TEST(Prepare, HostileBoxesAndIdxSizesAreHandled) {
  const double far[4] = {2.1e70, 2, 3, 4};
  EXPECT_TRUE(cub_crop(far, 16, 12).empty());
  const double huge[4] = {-1e300, -1e300, 2e300, 2e300};
  EXPECT_EQ(cub_crop(huge, 16, 12), cv::Rect(0, 0, 16, 12));

  TempDir dir;
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  test::write_file(dir.file("train-images-idx3-ubyte"), be32(0x803) + be32(3) + be32(0) + be32(5));
  test::write_file(dir.file("train-labels-idx1-ubyte"), be32(0x801) + be32(3) + std::string(3, '\0'));
  test::write_file(dir.file("t10k-images-idx3-ubyte"), be32(0x803) + be32(1) + be32(4) + be32(5) + std::string(20, 'x'));
  test::write_file(dir.file("t10k-labels-idx1-ubyte"), be32(0x801) + be32(1) + std::string(1, '\0'));
  try {
    read_idx(dir.path(), "mnist");
    ADD_FAILURE() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("image size differs from the training images'"), std::string::npos) << e.what();
  }
}

// Pixels of the planted square's colour (far from grey) in a BGR image, as a 0/255 mask.
cv::Mat coloured_pixels(const cv::Mat& bgr) {
  cv::Mat out(bgr.size(), CV_8UC1);
  for (int y = 0; y < bgr.rows; ++y) {
    for (int x = 0; x < bgr.cols; ++x) {
      const cv::Vec3b p = bgr.at<cv::Vec3b>(y, x);
      out.at<uint8_t>(y, x) = std::abs(p[0] - p[1]) + std::abs(p[1] - p[2]) > 120 ? 255 : 0;
    }
  }
  return out;
}

TEST(Prepare, CubSegmentationsAreCroppedAugmentedAndResizedWithTheirImages) {
  TempDir dir;
  const auto f = test::make_parts_cub_fixture(dir.path() / "cub", 2, 4, 48, 10, 4);
  for (const int size : {0, 32}) {
    auto c = cub_config(f.cub.root, dir.path() / ("data" + std::to_string(size)), 2);
    c.size = size;
    const auto r = run_prepare(c);  // segmentations/ beside the CUB folder is found by itself
    EXPECT_EQ(r.masks_from, (dir.path() / "segmentations").string());
    EXPECT_EQ(r.masked_images, 8 + 6 * 3 * 2) << "every output: push, test and the augmented copies";
    for (size_t i = 0; i < f.cub.images.size(); ++i) {
      const std::string rel = (i % 4 == 3 ? "test/" : "push/") + f.cub.image_paths[i];
      const cv::Mat mask = read_mask(c.out, rel, size ? size : 48, size ? size : 48);
      ASSERT_FALSE(mask.empty()) << rel;
      if (size == 0) {  // the crop moved the object by the margin; the ring of grey 100 is background
        cv::Mat expected(48, 48, CV_8UC1, cv::Scalar(0));
        expected(test::PartsCubFixture::object_of(f.squares[i]) & cv::Rect(0, 0, 48, 48)).setTo(255);
        EXPECT_EQ(cv::countNonZero(mask != expected), 0) << rel;
      }
    }
    // Each augmented copy's mask holds the square where the copy's pixels show it, and no more
    // than the object (the square's area grown by 3 px per side) besides.
    int copies = 0;
    for (const auto& e : read_list(c.out, "train")) {
      const cv::Mat img = cv::imread((fs::path(c.out) / e.path).string());
      const cv::Mat mask = read_mask(c.out, e.path, img.cols, img.rows);
      ASSERT_FALSE(mask.empty()) << e.path;
      const cv::Mat colour = coloured_pixels(img);
      EXPECT_GE(share_inside(colour, mask), 0.9) << e.path;
      EXPECT_LE(cv::countNonZero(mask), 2.0 * 16 * 16 * (size ? size * size / (48.0 * 48.0) : 1.0)) << e.path;
      ++copies;
    }
    EXPECT_EQ(copies, 6 * 3 * 2);
  }
}

TEST(Prepare, FolderMasksAnyExtensionNonZeroIsObject) {
  TempDir dir;
  const auto squares = test::make_planted_folder(dir.path() / "images", 2, 3, 32, 6);
  for (const auto& [rel, r] : squares) {  // level 1 is object in a plain mask folder
    cv::Mat m(32, 32, CV_8UC1, cv::Scalar(0));
    m(r).setTo(1);
    fs::create_directories((dir.path() / "masks" / rel).parent_path());
    cv::imwrite((dir.path() / "masks" / rel).replace_extension(".bmp").string(), m);
  }
  PrepareConfig c;
  c.folder = (dir.path() / "images").string();
  c.masks = (dir.path() / "masks").string();
  c.out = (dir.path() / "data").string();
  c.copies = 0;
  c.test_fraction = 0.34;
  EXPECT_EQ(run_prepare(c).masked_images, 6);
  for (const auto& split : {"push", "test"}) {
    for (const auto& e : read_list(c.out, split)) {
      const cv::Mat mask = read_mask(c.out, e.path, 32, 32);
      ASSERT_FALSE(mask.empty()) << e.path;
      EXPECT_EQ(cv::countNonZero(mask), 36) << e.path;
      EXPECT_EQ(cv::countNonZero(mask(squares.at(e.source_id))), 36) << e.path;
    }
  }
}

TEST(Prepare, ForegroundThresholdMakesMasksFromTheImages) {
  TempDir dir;
  test::make_idx_fixture(dir.path() / "idx", 12, 5, 3, false);
  PrepareConfig c;
  c.idx = (dir.path() / "idx").string();
  c.out = (dir.path() / "data").string();
  c.copies = 1;
  c.class_names = "mnist";
  c.foreground_threshold = 100;
  const auto r = run_prepare(c);
  EXPECT_EQ(r.masked_images, 12 + 12 * 3 + 5);
  for (const auto& split : {"push", "test", "train"}) {
    for (const auto& e : read_list(c.out, split)) {
      const cv::Mat img = cv::imread((fs::path(c.out) / e.path).string(), cv::IMREAD_GRAYSCALE);
      const cv::Mat mask = read_mask(c.out, e.path, img.cols, img.rows);
      ASSERT_FALSE(mask.empty()) << e.path;
      if (std::string(split) != "train") {
        EXPECT_EQ(cv::countNonZero(mask != (img > 100)), 0) << e.path;
      }
    }
  }
}

TEST(Prepare, BadMasksAreRefusedNamingTheFileBeforeAnythingIsWritten) {
  TempDir dir;
  const auto squares = test::make_planted_folder(dir.path() / "images", 2, 2, 32, 6);
  const fs::path masks = dir.path() / "masks";
  const auto write_masks = [&] {
    fs::remove_all(masks);
    for (const auto& [rel, r] : squares) {
      fs::create_directories((masks / rel).parent_path());
      cv::imwrite((masks / rel).string(), cv::Mat(32, 32, CV_8UC1, cv::Scalar(255)));
    }
  };
  const std::string first = squares.begin()->first;
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] { cv::imwrite((masks / first).string(), cv::Mat(30, 32, CV_8UC1, cv::Scalar(255))); },
       (masks / first).string() + ": the mask is 32×30 but its image"},
      {[&] { test::write_file((masks / first).string(), "not a png"); },
       (masks / first).string() + ": unreadable mask"},
      {[&] { cv::imwrite((masks / "class0/stray.png").string(), cv::Mat(32, 32, CV_8UC1)); },
       (masks / "class0/stray.png").string() + ": a mask without an image"},
      {[&] { cv::imwrite((masks / first).replace_extension(".bmp").string(), cv::Mat(32, 32, CV_8UC1)); },
       "belongs to the same image"},
      {[&] { fs::remove_all(masks); fs::create_directories(masks); }, masks.string() + ": holds no mask of any image"}};
  for (const auto& [damage, expected] : cases) {
    write_masks();
    damage();
    PrepareConfig c;
    c.folder = (dir.path() / "images").string();
    c.masks = masks.string();
    c.out = (dir.path() / "data").string();
    c.copies = 1;
    const std::string msg = error_of(c);
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(c.out)) << "nothing written: " << expected;
  }
}

TEST(Prepare, ImageSizeFromTheHeaderMatchesTheDecodedSize) {
  TempDir dir;
  cv::Mat img(37, 53, CV_8UC3, cv::Scalar(1, 2, 3));
  for (const char* ext : {".png", ".jpg", ".bmp", ".tif"}) {
    const fs::path file = dir.path() / (std::string("a") + ext);
    cv::imwrite(file.string(), img);
    EXPECT_EQ(image_file_size(file), cv::Size(53, 37)) << ext;
  }
  test::write_file((dir.path() / "bad.jpg").string(), "\xff\xd8\xff garbage");
  EXPECT_THROW(image_file_size(dir.path() / "bad.jpg"), std::runtime_error);
}

TEST(Prepare, IdxFilesPlainAndGzipped) {
  for (const bool gz : {false, true}) {
    TempDir dir;
    test::make_idx_fixture(dir.path() / "idx", 12, 5, 3, gz);
    PrepareConfig c;
    c.idx = (dir.path() / "idx").string();
    c.out = (dir.path() / "data").string();
    c.copies = 0;
    c.class_names = "mnist";
    const auto r = run_prepare(c);
    EXPECT_EQ(r.images.at("push"), 12);
    EXPECT_EQ(r.images.at("test"), 5);
    const cv::Mat img = cv::imread((dir.path() / "data/push/1_1/train_00001.png").string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(img.empty());
    EXPECT_EQ(img.size(), cv::Size(5, 6));
    EXPECT_EQ(img.channels(), 1);
  }
}

TEST(Prepare, IdxLabelWithoutANameIsAnError) {
  TempDir dir;
  test::make_idx_fixture(dir.path() / "idx", 12, 5, 4, false);
  test::write_file((dir.path() / "names.txt").string(), "zero\none\ntwo\n");
  PrepareConfig c;
  c.idx = (dir.path() / "idx").string();
  c.out = (dir.path() / "data").string();
  c.class_names = (dir.path() / "names.txt").string();
  const std::string msg = error_of(c);
  EXPECT_NE(msg.find("train-labels-idx1-ubyte: label 3 of item 3 has no class name"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ppnet::pipeline
