#include "pipeline/data/sources.h"

#include "base/paths.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "pipeline/data/image_file.h"
#include "base/parse_number.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

// A metadata file read as "<id> <fields…>" lines, keeping line numbers for messages.
struct Line {
  int number;
  std::vector<std::string> fields;
  std::string text;
};

std::vector<Line> read_lines(const fs::path& path, size_t fields, bool rest_is_one_field,
                             const std::string& expected) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": missing or unreadable (expected " + expected + " lines)");
  std::vector<Line> out;
  std::string text;
  for (int n = 1; std::getline(in, text); ++n) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<std::string> f;
    std::istringstream is(text);
    std::string tok;
    if (rest_is_one_field) {
      is >> tok;
      f.push_back(tok);
      std::string rest;
      std::getline(is, rest);
      rest.erase(0, rest.find_first_not_of(" \t"));
      if (!rest.empty()) f.push_back(rest);
    } else {
      while (is >> tok) f.push_back(tok);
    }
    if (f.size() != fields) {
      throw std::runtime_error(path.string() + " line " + std::to_string(n) + ": expected '" + expected +
                               "', got '" + text + "'");
    }
    out.push_back({n, std::move(f), text});
  }
  return out;
}

[[noreturn]] void bad_line(const fs::path& path, const Line& l, const std::string& what) {
  throw std::runtime_error(path.string() + " line " + std::to_string(l.number) + ": " + what + " in '" +
                           l.text + "'");
}

int64_t to_int(const fs::path& path, const Line& l, size_t i) {
  int64_t v = 0;
  if (!parse_int(l.fields[i], &v)) bad_line(path, l, "'" + l.fields[i] + "' is not an integer");
  return v;
}

double to_double(const fs::path& path, const Line& l, size_t i) {
  double v = 0;
  if (!parse_double(l.fields[i], &v)) bad_line(path, l, "'" + l.fields[i] + "' is not a number");
  return v;
}

// JPEG stays JPEG (no second generation of PNG bloat); everything else becomes PNG.
std::string output_ext(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" ? ".jpg" : ".png";
}

// What a walk makes of `path`: its type with links followed, or (type none) why it has none.
struct Found {
  fs::file_type type = fs::file_type::none;
  std::string problem;
};
Found look_at(const fs::path& path) {
  std::error_code ec, link_ec;
  const auto st = fs::status(path, ec);
  if (!ec && st.type() != fs::file_type::not_found) return {st.type(), ""};
  if (fs::is_symlink(fs::symlink_status(path, link_ec))) {
    if (ec == std::errc::too_many_symbolic_link_levels) return {fs::file_type::none, "a loop of symbolic links"};
    return {fs::file_type::none, "a symbolic link to " + fs::read_symlink(path, link_ec).string() + ", which " +
                                     (ec ? ec.message() : std::string("does not exist"))};
  }
  return {fs::file_type::none, ec ? ec.message() : std::string("vanished while the folder was read")};
}

// Whether an unreadable entry is worth a word: it might have been an image or a folder.
bool might_matter(const fs::path& path) { return !path.has_extension() || is_image_file(path); }

// The non-hidden entries of `dir`, sorted; when it cannot be listed, none, and why in `unreadable`.
std::vector<fs::path> list_folder(const fs::path& dir, std::vector<std::string>* unreadable) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (it->path().filename().string().rfind('.', 0) != 0) out.push_back(it->path());
  }
  if (ec) unreadable->push_back(printable(dir.string()) + ": cannot be listed: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

// The class folders (`directories`) or image files of `dir`, sorted, hidden names left out.
std::vector<fs::path> sorted_entries(const fs::path& dir, bool directories, std::vector<std::string>* unreadable) {
  std::vector<fs::path> out;
  for (const auto& path : list_folder(dir, unreadable)) {
    const Found f = look_at(path);
    if (!f.problem.empty()) {
      if (might_matter(path)) unreadable->push_back(printable(path.string()) + ": " + f.problem);
    } else if (directories ? f.type == fs::file_type::directory
                           : f.type == fs::file_type::regular && is_image_file(path)) {
      out.push_back(path);
    }
  }
  return out;
}

void find_images_in(const fs::path& root, const fs::path& dir, const std::function<bool(const fs::path&)>& skip,
                    std::set<fs::path>& walked, std::vector<std::string>& images, std::vector<std::string>* unreadable) {
  std::error_code ec;
  const fs::path real = fs::canonical(dir, ec);
  if (!ec && !walked.insert(real).second) return;  // reached again through a link
  for (const auto& path : list_folder(dir, unreadable)) {
    const Found f = look_at(path);
    if (!f.problem.empty()) {
      if (might_matter(path)) unreadable->push_back(printable(path.string()) + ": " + f.problem);
    } else if (f.type == fs::file_type::directory) {
      if (!skip || !skip(path)) find_images_in(root, path, skip, walked, images, unreadable);
    } else if (f.type == fs::file_type::regular && is_image_file(path)) {
      images.push_back(path.lexically_relative(root).generic_string());
    }
  }
}

}  // namespace

std::vector<std::string> find_images(const fs::path& dir, const std::function<bool(const fs::path&)>& skip,
                                     std::vector<std::string>* unreadable) {
  std::vector<std::string> images;
  std::set<fs::path> walked;
  find_images_in(dir, dir, skip, walked, images, unreadable);
  std::sort(images.begin(), images.end());
  return images;
}

namespace {

uint64_t class_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return seed ^ h;
}

// IDX files: big-endian header, then raw bytes.
std::vector<uint8_t> read_idx_file(const fs::path& dir, const std::string& name, uint32_t magic,
                                   std::vector<uint32_t>* dims, fs::path* used) {
  fs::path path = dir / name;
  if (!fs::exists(path)) path = dir / (name + ".gz");
  if (!fs::exists(path)) {
    throw std::runtime_error((dir / name).string() + "[.gz]: missing (an IDX folder needs train-images-idx3-ubyte, "
                             "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte)");
  }
  *used = path;
  std::unique_ptr<gzFile_s, int (*)(gzFile)> in(gzopen(path.c_str(), "rb"), gzclose);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  auto read_u32 = [&]() {
    unsigned char b[4];
    if (gzread(in.get(), b, 4) != 4) throw std::runtime_error(path.string() + ": truncated IDX header");
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  };
  const uint32_t m = read_u32();
  if (m != magic) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "magic number 0x%08x, expected 0x%08x", m, magic);
    throw std::runtime_error(path.string() + ": not an IDX file of the expected kind (" + buf + ")");
  }
  uint64_t total = 1;
  for (uint32_t i = 0; i < (magic & 0xff); ++i) {
    dims->push_back(read_u32());
    if (__builtin_mul_overflow(total, uint64_t{dims->back()}, &total) || total > (1ull << 34)) {
      throw std::runtime_error(path.string() + ": implausible IDX dimensions");
    }
  }
  // Grown as the bytes arrive, so a header that claims more than the file holds costs no more
  // memory than the file itself.
  std::vector<uint8_t> data;
  data.reserve(static_cast<size_t>(std::min<uint64_t>(total, uint64_t{1} << 26)));
  while (data.size() < total) {
    const size_t at = data.size();
    data.resize(at + static_cast<size_t>(std::min<uint64_t>(total - at, uint64_t{1} << 24)));
    const int n = gzread(in.get(), data.data() + at, static_cast<unsigned>(data.size() - at));
    if (n <= 0) throw std::runtime_error(path.string() + ": truncated (expected " + std::to_string(total) + " data bytes)");
    data.resize(at + static_cast<size_t>(n));
  }
  return data;
}

const std::vector<std::string> kFashionNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

}  // namespace

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::set<std::string> kExts = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"};
  return kExts.count(ext) > 0;
}

std::string safe_name(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  }
  return out;
}

cv::Rect cub_crop(const double box[4], int width, int height) {
  // Clamped to the image in floating point first: a box far outside it must not overflow an int.
  auto clamp = [](double v, int hi) { return static_cast<int>(std::clamp(v, 0.0, static_cast<double>(hi))); };
  const int x0 = clamp(std::floor(box[0]), width), y0 = clamp(std::floor(box[1]), height);
  const int x1 = clamp(std::ceil(box[0] + box[2]), width), y1 = clamp(std::ceil(box[1] + box[3]), height);
  if (x1 <= x0 || y1 <= y0) return {};
  return {x0, y0, x1 - x0, y1 - y0};
}

SourceSet read_cub(const fs::path& root) {
  SourceSet set;
  set.kind = "cub";
  const fs::path classes_txt = root / "classes.txt", images_txt = root / "images.txt",
                 labels_txt = root / "image_class_labels.txt", split_txt = root / "train_test_split.txt",
                 boxes_txt = root / "bounding_boxes.txt";
  std::map<int64_t, int> class_of_id;
  for (const auto& l : read_lines(classes_txt, 2, true, "<class id> <class name>")) {
    const int64_t id = to_int(classes_txt, l, 0);
    if (id != static_cast<int64_t>(set.classes.size()) + 1) {
      bad_line(classes_txt, l, "class ids must run 1, 2, 3, … (expected " + std::to_string(set.classes.size() + 1) + ")");
    }
    class_of_id[id] = static_cast<int>(set.classes.size());
    set.classes.push_back({static_cast<int>(set.classes.size()), l.fields[1], safe_name(l.fields[1])});
  }
  if (set.classes.empty()) throw std::runtime_error(classes_txt.string() + ": no classes");

  auto by_id = [](const fs::path& path, const std::vector<Line>& lines) {
    std::map<int64_t, const Line*> m;
    for (const auto& l : lines) {
      if (!m.emplace(to_int(path, l, 0), &l).second) bad_line(path, l, "duplicate image id");
    }
    return m;
  };
  const auto images = read_lines(images_txt, 2, true, "<image id> <path under images/>");
  const auto labels = read_lines(labels_txt, 2, false, "<image id> <class id>");
  const auto splits = read_lines(split_txt, 2, false, "<image id> <1 for train, 0 for test>");
  const auto boxes = read_lines(boxes_txt, 5, false, "<image id> <x> <y> <width> <height>");
  // Every field of every line is checked, not only those of images that images.txt lists.
  for (const auto& l : labels) to_int(labels_txt, l, 1);
  for (const auto& l : splits) to_int(split_txt, l, 1);
  for (const auto& l : boxes) {
    for (size_t k = 1; k < 5; ++k) to_double(boxes_txt, l, k);
  }
  const auto label_of = by_id(labels_txt, labels), split_of = by_id(split_txt, splits), box_of = by_id(boxes_txt, boxes);
  by_id(images_txt, images);  // duplicate check

  for (const auto& l : images) {
    const int64_t id = to_int(images_txt, l, 0);
    auto need = [&](const std::map<int64_t, const Line*>& m, const fs::path& file) -> const Line& {
      auto it = m.find(id);
      if (it == m.end()) {
        throw std::runtime_error(file.string() + ": no line for image " + std::to_string(id) + " (" +
                                 images_txt.filename().string() + " line " + std::to_string(l.number) + ")");
      }
      return *it->second;
    };
    const Line& lab = need(label_of, labels_txt);
    const Line& spl = need(split_of, split_txt);
    const Line& bx = need(box_of, boxes_txt);
    SourceImage img;
    img.id = std::to_string(id);
    auto cls = class_of_id.find(to_int(labels_txt, lab, 1));
    if (cls == class_of_id.end()) bad_line(labels_txt, lab, "class id not in classes.txt");
    img.class_index = cls->second;
    const int64_t is_train = to_int(split_txt, spl, 1);
    if (is_train != 0 && is_train != 1) bad_line(split_txt, spl, "split must be 1 (train) or 0 (test)");
    img.is_test = is_train == 0;
    for (int k = 0; k < 4; ++k) img.box[k] = to_double(boxes_txt, bx, static_cast<size_t>(k + 1));
    if (img.box[2] <= 0 || img.box[3] <= 0) bad_line(boxes_txt, bx, "box width and height must be positive");
    img.has_box = true;
    img.file = root / "images" / l.fields[1];
    img.stem = fs::path(l.fields[1]).stem().string();
    img.ext = output_ext(img.file);
    set.images.push_back(std::move(img));
  }
  if (set.images.empty()) throw std::runtime_error(images_txt.string() + ": no images");
  if (fs::exists(root / "parts" / "part_locs.txt")) attach_parts(set, read_source_parts(root / "parts"), root / "parts");
  return set;
}

void attach_parts(SourceSet& set, const SourceParts& parts, const fs::path& dir) {
  std::map<std::string, SourceImage*> by_id;
  for (auto& img : set.images) by_id[img.id] = &img;
  for (const auto& [key, locations] : parts.locations) {
    auto it = by_id.find(key);
    if (it == by_id.end()) {
      throw std::runtime_error((dir / "part_locs.txt").string() + ": image '" + key + "' is not an image of " +
                               (set.kind == "cub" ? "images.txt" : "the data set") +
                               (set.kind == "cub" ? "" : " (expected paths relative to the folder, as 'class/name.jpg')"));
    }
    it->second->parts = locations;
  }
  set.part_names = parts.names;
}

SourceSet read_folder(const fs::path& root, double test_fraction, uint64_t seed) {
  if (!fs::is_directory(root)) throw std::runtime_error(root.string() + ": not a folder");
  SourceSet set;
  set.kind = "folder";
  const bool presplit = fs::is_directory(root / "train") && fs::is_directory(root / "test");
  std::vector<std::pair<fs::path, bool>> trees;  // (tree, is_test)
  if (presplit) {
    trees = {{root / "train", false}, {root / "test", true}};
  } else {
    trees = {{root, false}};
  }
  std::map<std::string, int> class_index;
  for (const auto& dir : sorted_entries(trees[0].first, true, &set.unreadable)) {
    const std::string name = dir.filename().string();
    class_index[name] = static_cast<int>(set.classes.size());
    // Names in a prepared folder are valid UTF-8: other bytes become "\xNN" (base/paths.h).
    set.classes.push_back({static_cast<int>(set.classes.size()), printable(name), printable(name)});
  }
  if (set.classes.empty()) throw std::runtime_error(trees[0].first.string() + ": no class folders");
  for (const auto& [tree, is_test] : trees) {
    for (const auto& dir : sorted_entries(tree, true, &set.unreadable)) {
      const std::string name = dir.filename().string();
      auto it = class_index.find(name);
      if (it == class_index.end()) {
        throw std::runtime_error(dir.string() + ": class '" + name + "' has no training folder " +
                                 (root / "train" / name).string());
      }
      std::vector<SourceImage> imgs;
      std::set<std::string> stems;
      for (const auto& file : sorted_entries(dir, false, &set.unreadable)) {
        SourceImage img;
        img.id = printable(fs::relative(file, root).generic_string());
        img.class_index = it->second;
        img.is_test = is_test;
        img.file = file;
        img.stem = printable(file.stem().string());
        img.ext = output_ext(file);
        if (!stems.insert(img.stem).second) {
          throw std::runtime_error(file.string() + ": another image in " + dir.string() + " has the name '" +
                                   img.stem + "' with another extension; rename one of them");
        }
        imgs.push_back(std::move(img));
      }
      if (!presplit && test_fraction > 0) {
        std::vector<size_t> order(imgs.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::mt19937_64 rng(class_seed(seed, "test:" + name));
        for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
        const auto n_test = static_cast<size_t>(std::llround(test_fraction * static_cast<double>(imgs.size())));
        for (size_t i = 0; i < n_test; ++i) imgs[order[i]].is_test = true;
      }
      for (auto& img : imgs) set.images.push_back(std::move(img));
    }
  }
  if (set.images.empty()) throw std::runtime_error(root.string() + ": no images (jpg, jpeg, png, bmp, tif, tiff, webp)");
  return set;
}

SourceSet read_idx(const fs::path& dir, const std::string& class_names) {
  if (!fs::is_directory(dir)) throw std::runtime_error(dir.string() + ": not a folder");
  SourceSet set;
  set.kind = "idx";
  std::vector<std::string> names;
  std::string choice = class_names;
  if (choice.empty()) {
    std::string lower = fs::absolute(dir).string();
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    choice = lower.find("fashion") != std::string::npos ? "fashion-mnist" : "mnist";
  }
  if (choice == "fashion-mnist") {
    names = kFashionNames;
  } else if (choice == "mnist") {
    for (int d = 0; d < 10; ++d) names.push_back(std::to_string(d));
  } else {
    std::ifstream in(choice);
    if (!in) throw std::runtime_error(choice + ": cannot read the class names (one per line)");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) names.push_back(line);
    }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    set.classes.push_back({static_cast<int>(i), names[i], std::to_string(i) + "_" + safe_name(names[i])});
  }

  auto pixels = std::make_shared<std::vector<uint8_t>>();
  int64_t rows_so_far = 0;
  for (const bool is_test : {false, true}) {
    const std::string prefix = is_test ? "t10k" : "train";
    std::vector<uint32_t> idims, ldims;
    fs::path ipath, lpath;
    auto images = read_idx_file(dir, prefix + "-images-idx3-ubyte", 0x00000803, &idims, &ipath);
    auto labels = read_idx_file(dir, prefix + "-labels-idx1-ubyte", 0x00000801, &ldims, &lpath);
    if (idims[0] != ldims[0]) {
      throw std::runtime_error(lpath.string() + ": " + std::to_string(ldims[0]) + " labels for " +
                               std::to_string(idims[0]) + " images in " + ipath.string());
    }
    if (idims[1] > 65536 || idims[2] > 65536) throw std::runtime_error(ipath.string() + ": implausible image size");
    if (!is_test) {
      set.idx_height = static_cast<int>(idims[1]);
      set.idx_width = static_cast<int>(idims[2]);
    } else if (set.idx_height != static_cast<int>(idims[1]) || set.idx_width != static_cast<int>(idims[2])) {
      throw std::runtime_error(ipath.string() + ": image size differs from the training images'");
    }
    for (uint32_t i = 0; i < ldims[0]; ++i) {
      if (labels[i] >= names.size()) {
        throw std::runtime_error(lpath.string() + ": label " + std::to_string(labels[i]) + " of item " +
                                 std::to_string(i) + " has no class name (" + std::to_string(names.size()) +
                                 " names)");
      }
      char stem[32];
      std::snprintf(stem, sizeof stem, "%s_%05u", is_test ? "test" : "train", i);
      SourceImage img;
      img.id = std::string(is_test ? "test/" : "train/") + std::to_string(i);
      img.class_index = labels[i];
      img.is_test = is_test;
      img.idx_row = rows_so_far + i;
      img.stem = stem;
      img.ext = ".png";
      set.images.push_back(std::move(img));
    }
    pixels->insert(pixels->end(), images.begin(), images.end());
    rows_so_far += idims[0];
  }
  set.idx_pixels = pixels;
  return set;
}

cv::Mat load_source_image(const SourceSet& set, const SourceImage& image, cv::Rect* crop) {
  if (image.idx_row >= 0) {
    if (crop) *crop = cv::Rect(0, 0, set.idx_width, set.idx_height);
    const size_t size = static_cast<size_t>(set.idx_height) * static_cast<size_t>(set.idx_width);
    if ((static_cast<size_t>(image.idx_row) + 1) * size > set.idx_pixels->size()) {
      throw std::runtime_error("IDX image " + image.id + " lies outside the pixel data");
    }
    const uint8_t* p = set.idx_pixels->data() + static_cast<size_t>(image.idx_row) * size;
    return cv::Mat(set.idx_height, set.idx_width, CV_8UC1, const_cast<uint8_t*>(p)).clone();
  }
  cv::Mat img = read_image_file(image.file);
  if (crop) *crop = cv::Rect(0, 0, img.cols, img.rows);
  if (!image.has_box) return img;
  const cv::Rect r = cub_crop(image.box, img.cols, img.rows);
  if (r.empty()) {
    throw std::runtime_error(image.file.string() + ": bounding box lies outside the " + std::to_string(img.cols) +
                             "×" + std::to_string(img.rows) + " image");
  }
  if (crop) *crop = r;
  return img(r).clone();
}

}  // namespace ppnet::pipeline
