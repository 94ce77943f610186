#include "pipeline/run/concepts.h"

#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "base/paths.h"
#include "pipeline/data/image_file.h"
#include "pipeline/run/run_folder.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

std::string box_text(const int64_t* b) {
  return std::to_string(b[0]) + "," + std::to_string(b[1]) + "," + std::to_string(b[2]) + "," + std::to_string(b[3]);
}

// Whether box [x0, y0, x1, y1) is a non-empty region of `image`.
bool inside(const int64_t* b, const cv::Mat& image) {
  return 0 <= b[0] && b[0] < b[2] && b[2] <= image.cols && 0 <= b[1] && b[1] < b[3] && b[3] <= image.rows;
}

// --class: a name, an index or "all" (empty optional).
std::optional<int64_t> class_of(const std::string& given, const std::vector<std::string>& names) {
  if (given == "all") return std::nullopt;
  for (size_t k = 0; k < names.size(); ++k) {
    if (names[k] == given) return static_cast<int64_t>(k);
  }
  try {
    size_t used = 0;
    const long long k = std::stoll(given, &used);
    if (used == given.size() && k >= 0 && k < static_cast<long long>(names.size())) return k;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("--class '" + given + "': expected a class name of the run, an index 0…" +
                              std::to_string(names.size() - 1) + ", or all");
}

// The image a concept was cut from, as a PNG file's bytes.
std::string encode_lossless(const cv::Mat& image) {
  std::vector<uchar> png;
  if (!cv::imencode(".png", image, png)) throw std::runtime_error("could not encode an image as PNG");
  return std::string(png.begin(), png.end());
}

// --box inside the image it refers to.
void check_box(const std::array<int64_t, 4>& b, const cv::Mat& image, const fs::path& file) {
  if (inside(b.data(), image)) return;
  throw std::invalid_argument("--box " + box_text(b.data()) + ": expected 0 ≤ x0 < x1 ≤ " + std::to_string(image.cols) +
                              " and 0 ≤ y0 < y1 ≤ " + std::to_string(image.rows) + " (" + file.string() + " is " +
                              std::to_string(image.cols) + "×" + std::to_string(image.rows) + " pixels)");
}

// Where the concept comes from: the patch prototype J of the latest projection was projected
// onto, in its source image under the data folder.
db::ConceptRow from_prototype(const ConceptConfig& c, RunFolder& run) {
  db::RunStore& store = run.store();
  const auto projection = store.latest_projection();
  if (!projection) {
    throw std::runtime_error("run " + c.run + " has no projection, so prototype " + std::to_string(*c.prototype) +
                             " has no patch yet: run 'ppnet project' first, or give --image FILE --box x0,y0,x1,y1");
  }
  const auto rows = store.prototypes(*projection);
  const db::PrototypeRow* row = nullptr;
  for (const auto& r : rows) {
    if (r.prototype == *c.prototype) row = &r;
  }
  if (!row) {
    throw std::invalid_argument("--prototype " + std::to_string(*c.prototype) + ": projection #" +
                                std::to_string(*projection) + " of run " + c.run + " recorded no such prototype (" +
                                std::to_string(rows.size()) + " prototypes were projected)");
  }
  const fs::path data = c.data.empty() ? fs::path(store.run()->data_path) : fs::path(c.data);
  db::ConceptRow concept_row;
  concept_row.origin = "prototype " + std::to_string(row->prototype) + " of projection #" + std::to_string(*projection);
  concept_row.image_path = row->image_path;
  concept_row.class_index = row->class_index;
  if (!stays_inside(row->image_path)) {
    throw std::runtime_error(c.run + "/run.sqlite: prototype " + std::to_string(row->prototype) + " names '" +
                             row->image_path + "' as its source image, which is not a path inside the data folder");
  }
  const cv::Mat image = read_image_file(data / row->image_path);
  if (image.cols != row->image_width || image.rows != row->image_height) {
    throw std::runtime_error((data / row->image_path).string() + " is " + std::to_string(image.cols) + "×" +
                             std::to_string(image.rows) + " pixels; projection #" + std::to_string(*projection) +
                             " recorded " + std::to_string(row->image_width) + "×" + std::to_string(row->image_height) +
                             ": is --data the data the run was projected with?");
  }
  // The tighter of its receptive field and its high-activation box: a deep backbone's receptive
  // field is the whole image, and a sharply peaked map's 95th percentile can take in pixels far
  // from the patch (docs/audit.md).
  // With --box, the user's region of that image instead (the part of the patch that shows the
  // confounder).
  const auto area = [](const int64_t (&b)[4]) { return (b[2] - b[0]) * (b[3] - b[1]); };
  const auto& box = area(row->rf) < area(row->box) ? row->rf : row->box;
  for (int k = 0; k < 4; ++k) concept_row.box[k] = c.box ? (*c.box)[static_cast<size_t>(k)] : box[k];
  concept_row.image_width = image.cols;
  concept_row.image_height = image.rows;
  if (c.box) check_box(*c.box, image, data / row->image_path);
  if (!inside(concept_row.box, image)) {
    throw std::runtime_error("projection #" + std::to_string(*projection) + " recorded box " + box_text(concept_row.box) +
                             " for prototype " + std::to_string(row->prototype) + ", outside its " +
                             std::to_string(image.cols) + "×" + std::to_string(image.rows) + " image: run.sqlite was edited");
  }
  concept_row.pixels = encode_lossless(image);
  return concept_row;
}

// A box of any image file.
db::ConceptRow from_image(const ConceptConfig& c) {
  const cv::Mat image = read_image_file(c.image);
  const auto& b = *c.box;
  db::ConceptRow concept_row;
  concept_row.origin = "image " + c.image;
  concept_row.image_path = c.image;
  concept_row.image_width = image.cols;
  concept_row.image_height = image.rows;
  for (int k = 0; k < 4; ++k) concept_row.box[k] = b[static_cast<size_t>(k)];
  check_box(b, image, c.image);
  concept_row.pixels = encode_lossless(image);
  return concept_row;
}

}  // namespace

std::string concept_class_name(const db::ConceptRow& concept_row, const std::vector<std::string>& class_names) {
  const auto& k = concept_row.class_index;
  return k ? class_name_of(class_names, *k) : "all";
}

std::array<int64_t, 4> parse_box(const std::string& text) {
  std::array<int64_t, 4> b{};
  std::istringstream in(text);
  char comma = 0;
  for (size_t k = 0; k < 4; ++k) {
    if (!(in >> b[k]) || (k < 3 && (!(in >> comma) || comma != ','))) {
      throw std::invalid_argument("expected x0,y0,x1,y1 (four integers)");
    }
  }
  if (!(in >> std::ws).eof()) throw std::invalid_argument("expected x0,y0,x1,y1 (four integers)");
  return b;
}

ConceptResult run_concept(const ConceptConfig& c) {
  RunFolder run = RunFolder::open(c.run, Access::kWrite);
  db::RunStore& store = run.store();
  const auto names = run.class_names();
  ConceptResult result;
  result.run = c.run;
  result.kind = c.kind;
  if (c.remove) {
    auto existing = store.concepts(std::vector<int64_t>{*c.remove});
    if (existing.empty() || existing[0].kind != c.kind || !store.remove_concept(*c.remove, c.kind)) {
      throw std::invalid_argument("--remove " + std::to_string(*c.remove) + ": run " + c.run + " has no " +
                                  db::to_string(c.kind) + " concept #" + std::to_string(*c.remove) +
                                  " ('ppnet info --run RUN --concepts' lists them)");
    }
    result.removed = true;
    result.concept_row = existing[0];
  } else {
    db::ConceptRow row = c.prototype ? from_prototype(c, run) : from_image(c);
    row.kind = c.kind;
    if (!c.class_name.empty()) row.class_index = class_of(c.class_name, names);
    row.id = store.add_concept(row);
    result.concept_row = row;
  }
  result.concept_row.pixels.clear();
  result.class_name = concept_class_name(result.concept_row, names);
  for (const auto& k : store.concepts()) result.count += k.kind == c.kind ? 1 : 0;
  return result;
}

}  // namespace ppnet::pipeline
