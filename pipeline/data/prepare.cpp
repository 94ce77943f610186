#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <thread>

#include "base/version.h"
#include "pipeline/data/archive.h"
#include "base/atomic_file.h"
#include "base/paths.h"
#include "pipeline/data/augment.h"
#include "pipeline/data/prepare.h"
#include "base/interrupt.h"
#include "pipeline/data/manifest.h"
#include "pipeline/data/masks.h"
#include "pipeline/data/parts.h"
#include "base/progress.h"
#include "pipeline/data/sources.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

// What the folder was asked to be: compared on every re-run.
nlohmann::json command_record(const PrepareConfig& c, const std::string& kind, const fs::path& source,
                              const MaskSource& masks) {
  nlohmann::json j = {{"source_kind", kind},
                      {"source_path", printable(fs::absolute(source).lexically_normal().string())},
                      {"copies", c.copies},
                      {"val_fraction", c.val_fraction},
                      {"size", c.size},
                      {"rotation", c.rotation},
                      {"skew", c.skew},
                      {"shear", c.shear},
                      {"flip", c.flip},
                      {"seed", c.seed}};
  if (kind == "folder") j["test_fraction"] = c.test_fraction;
  if (kind == "idx") j["class_names"] = c.class_names;
  if (!c.parts.empty()) j["parts"] = printable(fs::absolute(c.parts).lexically_normal().string());
  if (!masks.dir.empty()) j["masks"] = printable(fs::absolute(masks.dir).lexically_normal().string());
  if (masks.foreground_threshold >= 0) j["foreground_threshold"] = masks.foreground_threshold;
  return j;
}

std::string describe_difference(const nlohmann::json& before, const nlohmann::json& now) {
  std::string out;
  for (const auto& [k, v] : now.items()) {
    const auto old = before.contains(k) ? before[k].dump() : std::string("(unset)");
    if (old != v.dump()) out += (out.empty() ? "" : ", ") + k + " " + old + " → " + v.dump();
  }
  return out.empty() ? "the recorded command" : out;
}

// The folders and files prepare owns inside DATA; --force removes these and nothing else.
const char* const kOwned[] = {"push",  "train", "test",          "val",          "lists",
                               "parts", "masks", "manifest.json", "prepare.json", ".source"};

void claim_output(const fs::path& out, const nlohmann::json& record, bool force) {
  std::error_code ec;
  if (!fs::exists(out)) return;
  if (!fs::is_directory(out)) throw std::runtime_error(out.string() + ": exists and is not a folder");
  const fs::path rec_path = prepare_record_path(out);
  if (!fs::exists(rec_path)) {
    if (fs::directory_iterator(out) != fs::directory_iterator()) {
      throw std::runtime_error(out.string() + ": exists, is not empty and was not made by ppnet prepare; "
                               "choose another --out");
    }
    return;
  }
  nlohmann::json before;
  try {
    std::ifstream in(rec_path);
    before = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(rec_path.string() + ": unreadable (" + e.what() + "); remove " + out.string() +
                             " or use another --out");
  }
  if (before == record) return;
  if (!force) {
    throw std::runtime_error(out.string() + " was prepared by a different command (" +
                             describe_difference(before, record) +
                             "); use --force to replace it, or another --out");
  }
  for (const char* name : kOwned) fs::remove_all(out / name, ec);
}

// Finds the CUB root (the folder holding images.txt) under an extracted archive or a folder.
fs::path cub_root(const fs::path& dir) {
  if (fs::exists(dir / "images.txt")) return dir;
  if (fs::exists(dir / "CUB_200_2011" / "images.txt")) return dir / "CUB_200_2011";
  throw std::runtime_error(dir.string() + ": no images.txt here or in CUB_200_2011/ (is this CUB-200-2011?)");
}

// Where the masks come from: --foreground-threshold, --masks, or for CUB its segmentations/
// folder beside CUB_200_2011/ (grey levels, object = at least half).
MaskSource mask_source(const PrepareConfig& c, const std::string& kind, const fs::path& source) {
  MaskSource m;
  m.foreground_threshold = c.foreground_threshold;
  if (!c.masks.empty()) m.dir = c.masks;
  if (kind == "cub") {
    m.threshold = 128;
    if (m.dir.empty() && c.foreground_threshold < 0 && fs::is_directory(source)) {
      const fs::path root = cub_root(source);
      for (const fs::path& dir : {root.parent_path() / "segmentations", root / "segmentations"}) {
        if (fs::is_directory(dir)) {
          m.dir = dir;
          break;
        }
      }
    }
  }
  return m;
}

std::string encode(const cv::Mat& img, const std::string& ext, const std::string& name) {
  std::vector<uchar> buf;
  const std::vector<int> params = ext == ".jpg" ? std::vector<int>{cv::IMWRITE_JPEG_QUALITY, 95} : std::vector<int>{};
  if (!cv::imencode(ext, img, buf, params)) throw std::runtime_error(name + ": could not encode as " + ext);
  return std::string(buf.begin(), buf.end());
}

struct Output {
  fs::path rel;        // relative to DATA
  fs::path mask;       // DATA/masks/…, when the image has a mask
  int op = -1;         // -1: the unaugmented image; else an AugmentOp
  int copy = 0;
};

enum class Role { kTrain, kVal, kTest };

const char* split_of(Role r) { return r == Role::kTest ? "test" : r == Role::kVal ? "val" : "push"; }

// The mask files of a prepared folder.
int64_t count_masks(const fs::path& out) {
  if (!has_masks(out)) return 0;
  int64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(out / "masks")) n += e.is_regular_file() ? 1 : 0;
  return n;
}

// The report of a folder the same command already finished: nothing to do.
std::optional<PrepareResult> finished(const fs::path& out, PrepareResult report) {
  if (!fs::exists(manifest_path(out))) return std::nullopt;
  const Manifest done = read_manifest(out);
  if (!done.failed.empty()) return std::nullopt;
  report.up_to_date = true;
  report.classes = static_cast<int>(done.classes.size());
  if (has_data_parts(out)) {
    const DataParts parts = read_data_parts(out);
    report.part_names = parts.names;
    report.annotated_images = static_cast<int64_t>(parts.images.size());
  }
  for (const auto& [split, counts] : done.counts) {
    for (auto n : counts) report.images[split] += n;
  }
  report.masked_images = count_masks(out);
  return report;
}

// CUB's archive extracted once into DATA/.source (kept until the folder is complete); the root.
fs::path extracted_cub(const fs::path& archive, const fs::path& out) {
  const fs::path staging = out / ".source";
  if (!fs::exists(staging / ".complete")) {
    fs::remove_all(staging);
    create_folders(staging);
    Progress progress("extract " + archive.filename().string(), fs::file_size(archive));
    uint64_t last = 0;
    extract_archive(archive.string(), staging.string(), [&](uint64_t at) {
      progress.advance(at - last);
      last = at;
    });
    write_file_atomic(staging / ".complete", std::string());
  }
  return staging;
}

// Every piece of metadata, read and validated before any output is written; a folder this
// command created is removed again when that fails.
SourceSet read_source(const PrepareConfig& c, const std::string& kind, const fs::path& source, const fs::path& out,
                      const MaskSource& masks, int threads) {
  const bool created = !fs::exists(out);
  try {
    SourceSet set;
    if (kind == "cub") {
      const fs::path root = cub_root(fs::is_regular_file(source) ? extracted_cub(source, out) : source);
      set = read_cub(root);
      if (!masks.dir.empty()) attach_mask_files(set, root / "images", masks.dir, threads);
    } else if (kind == "folder") {
      set = read_folder(source, c.test_fraction, c.seed);
      if (!c.parts.empty()) attach_parts(set, read_source_parts(c.parts), c.parts);
      if (!masks.dir.empty()) attach_mask_files(set, source, masks.dir, threads);
    } else {
      set = read_idx(source, c.class_names);
    }
    // The data lists are tab-separated lines: a name holding a tab or a line break cannot be listed.
    for (const auto& img : set.images) {
      const std::string names = img.id + set.classes[static_cast<size_t>(img.class_index)].folder + img.stem;
      if (names.find_first_of("\t\n\r") != std::string::npos) {
        throw std::runtime_error((img.file.empty() ? img.id : img.file.string()) +
                                 ": the name holds a tab or line break, which the data lists cannot hold; rename it");
      }
    }
    return set;
  } catch (...) {
    std::error_code ec;
    if (created) fs::remove_all(out, ec);
    throw;
  }
}

// Each image's role: the seeded validation hold-out comes out of each class's training images.
std::vector<Role> assign_roles(const SourceSet& set, double val_fraction, uint64_t seed) {
  std::vector<Role> role(set.images.size(), Role::kTrain);
  std::vector<std::vector<size_t>> train_of_class(set.classes.size());
  for (size_t i = 0; i < set.images.size(); ++i) {
    if (set.images[i].is_test) {
      role[i] = Role::kTest;
    } else {
      train_of_class[static_cast<size_t>(set.images[i].class_index)].push_back(i);
    }
  }
  if (val_fraction <= 0) return role;
  for (size_t k = 0; k < train_of_class.size(); ++k) {
    auto ids = train_of_class[k];
    std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + k);
    for (size_t i = ids.size(); i > 1; --i) std::swap(ids[i - 1], ids[rng() % i]);
    const auto n_val = static_cast<size_t>(std::llround(val_fraction * static_cast<double>(ids.size())));
    for (size_t i = 0; i < n_val; ++i) role[ids[i]] = Role::kVal;
  }
  return role;
}

// Every output file of every source image: the image itself under its split, and for training
// images `copies` augmented copies per operation under train/.
// With masks, each output's mask goes to DATA/masks/ under the same name (as .png).
std::vector<std::vector<Output>> plan_outputs(const SourceSet& set, const std::vector<Role>& role, int copies,
                                              const MaskSource& masks, const fs::path& out) {
  std::vector<std::vector<Output>> outputs(set.images.size());
  for (size_t i = 0; i < set.images.size(); ++i) {
    const SourceImage& img = set.images[i];
    const std::string folder = set.classes[static_cast<size_t>(img.class_index)].folder;
    const bool masked = masks.foreground_threshold >= 0 || !img.mask.empty();
    const auto output = [&](const fs::path& rel, int op, int copy) {
      return Output{rel, masked ? mask_path(out, rel.generic_string()) : fs::path(), op, copy};
    };
    outputs[i].push_back(output(fs::path(split_of(role[i])) / folder / (img.stem + img.ext), -1, 0));
    if (role[i] != Role::kTrain) continue;
    for (AugmentOp op : kAugmentOps) {
      for (int k = 0; k < copies; ++k) {
        char suffix[32];
        std::snprintf(suffix, sizeof suffix, "_%s%02d", op_name(op), k);
        outputs[i].push_back(output(fs::path("train") / folder / (img.stem + suffix + img.ext), static_cast<int>(op), k));
      }
    }
  }
  return outputs;
}

// What writing the images gave, per source image and in all.
struct Written {
  std::vector<std::string> failed_of;  // "" or why the image could not be prepared
  std::vector<ImageParts> parts_of;    // of the unaugmented output, when annotated
  int64_t decoded = 0, written = 0, kept = 0;
};

// Decodes, crops, augments and writes every planned output, in parallel; complete outputs of an
// earlier run stay. Returns early (with what was done) when asked to stop.
Written write_outputs(const PrepareConfig& c, const std::string& kind, const SourceSet& set,
                      const std::vector<std::vector<Output>>& outputs, const MaskSource& masks, const fs::path& out) {
  const AugmentOptions aug{c.rotation, c.skew, c.shear, c.flip};
  Written w;
  w.failed_of.resize(set.images.size());
  w.parts_of.resize(set.images.size());
  std::atomic<int64_t> decoded{0}, written{0}, kept{0};
  Progress progress("prepare " + kind, set.images.size());
  tbb::parallel_for(size_t{0}, set.images.size(), [&](size_t i) {
    if (InterruptScope::stop_requested()) return;
    std::vector<const Output*> todo;
    for (const auto& o : outputs[i]) {
      if (fs::exists(out / o.rel) && (o.mask.empty() || fs::exists(o.mask))) {
        ++kept;
      } else {
        todo.push_back(&o);
      }
    }
    // Part locations need the crop and output sizes, so an annotated image is decoded even
    // when an earlier run wrote all its outputs.
    const bool annotated = !set.images[i].parts.empty();
    if (!todo.empty() || annotated) {
      try {
        cv::Rect crop;
        const cv::Mat img = load_source_image(set, set.images[i], &crop);
        ++decoded;
        if (annotated) {
          const cv::Size size = c.size > 0 ? cv::Size(c.size, c.size) : img.size();
          w.parts_of[i] = {size.width, size.height,
                           map_parts(set.images[i].parts, crop.x, crop.y, crop.width, crop.height, size.width, size.height)};
        }
        const cv::Mat mask = todo.empty() ? cv::Mat() : load_source_mask(set.images[i], img, crop, masks);
        // An output's pixels: the same warp (same seed) and resize for the image and its mask.
        const auto output_of = [&](const cv::Mat& source, const Output& o) {
          cv::Mat pixels = o.op < 0 ? source
                                    : augment(source, static_cast<AugmentOp>(o.op), aug,
                                              derive_seed(c.seed, set.images[i].id, static_cast<AugmentOp>(o.op), o.copy));
          if (c.size > 0) {
            cv::Mat resized;
            cv::resize(pixels, resized, cv::Size(c.size, c.size), 0, 0, cv::INTER_AREA);
            pixels = resized;
          }
          return pixels;
        };
        for (const Output* o : todo) {
          if (InterruptScope::stop_requested()) return;
          // The mask first: an image file without its mask would count as done on a resume.
          if (!o->mask.empty()) {
            write_file_atomic(o->mask, encode(binarize_mask(output_of(mask, *o)), ".png", o->mask.string()));
          }
          write_file_atomic(out / o->rel, encode(output_of(img, *o), set.images[i].ext, (out / o->rel).string()));
          ++written;
        }
      } catch (const std::exception& e) {
        w.failed_of[i] = printable(e.what());
      }
    }
    progress.advance();
  });
  w.decoded = decoded;
  w.written = written;
  w.kept = kept;
  return w;
}

// The lists, part locations and manifest, written last: the manifest's presence means the folder
// is complete. Fills the report's counts.
void write_lists_and_manifest(const PrepareConfig& c, const std::string& kind, const nlohmann::json& record,
                              const SourceSet& set, const std::vector<Role>& role,
                              const std::vector<std::vector<Output>>& outputs, const Written& w, const fs::path& out,
                              PrepareResult& report) {
  Manifest m;
  m.source_kind = kind;
  m.source_path = record["source_path"].get<std::string>();
  for (const auto& [k, v] : record.items()) {
    if (k != "source_kind" && k != "source_path") m.options[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  m.classes = set.classes;
  m.created_by = std::string("ppnet ") + kVersion;
  std::map<std::string, std::vector<ListEntry>> lists;
  for (const char* split : {"push", "train", "test", "val"}) m.counts[split].assign(set.classes.size(), 0);
  m.failed = set.unreadable;  // what the folder walk could not read
  for (size_t i = 0; i < set.images.size(); ++i) {
    const SourceImage& img = set.images[i];
    if (!w.failed_of[i].empty()) {
      m.failed.push_back(w.failed_of[i]);
      continue;
    }
    for (const auto& o : outputs[i]) {
      const std::string split = o.op >= 0 ? "train" : split_of(role[i]);
      lists[split].push_back({o.rel.generic_string(), img.class_index, img.id});
      ++m.counts[split][static_cast<size_t>(img.class_index)];
    }
    if (role[i] == Role::kTrain && c.copies == 0) {  // no augmentation: train reads push images
      lists["train"].push_back({outputs[i][0].rel.generic_string(), img.class_index, img.id});
      ++m.counts["train"][static_cast<size_t>(img.class_index)];
    }
  }
  if (c.val_fraction <= 0) m.counts.erase("val");
  for (const auto& [split, counts] : m.counts) write_list(out, split, lists[split]);
  if (!set.part_names.empty()) {
    DataParts parts{set.part_names, {}};
    for (size_t i = 0; i < set.images.size(); ++i) {
      if (w.failed_of[i].empty() && !w.parts_of[i].parts.empty()) parts.images[outputs[i][0].rel.generic_string()] = w.parts_of[i];
    }
    write_data_parts(out, parts);
    report.part_names = parts.names;
    report.annotated_images = static_cast<int64_t>(parts.images.size());
  }
  write_manifest(out, m);
  report.classes = static_cast<int>(set.classes.size());
  for (const auto& [split, entries] : lists) {
    if (m.counts.count(split)) report.images[split] = static_cast<int64_t>(entries.size());
  }
  report.failed = m.failed;
}

}  // namespace

PrepareResult run_prepare(const PrepareConfig& c) {
  const auto start = std::chrono::steady_clock::now();
  const fs::path out(c.out);
  const std::string kind = !c.cub.empty() ? "cub" : !c.folder.empty() ? "folder" : "idx";
  const fs::path source = !c.cub.empty() ? c.cub : !c.folder.empty() ? c.folder : c.idx;
  if (!fs::exists(source)) throw std::runtime_error(source.string() + ": no such file or folder");
  PrepareResult report;
  report.out = c.out;
  report.source_kind = kind;
  const MaskSource masks = mask_source(c, kind, source);
  const nlohmann::json record = command_record(c, kind, source, masks);
  claim_output(out, record, c.force);
  report.masks_from = !masks.dir.empty() ? masks.dir.string()
                      : masks.foreground_threshold >= 0 ? "foreground > " + std::to_string(masks.foreground_threshold)
                                                        : "";
  if (auto done = finished(out, report)) return *done;

  report.threads = c.threads > 0 ? c.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(report.threads));
  cv::setNumThreads(0);  // parallel across images, not inside OpenCV calls
  InterruptScope interrupt_scope;

  const SourceSet set = read_source(c, kind, source, out, masks, report.threads);
  const std::vector<Role> role = assign_roles(set, c.val_fraction, c.seed);
  const auto outputs = plan_outputs(set, role, c.copies, masks, out);
  write_file_atomic(prepare_record_path(out), record.dump(1) + "\n");
  remove_temporary_files(out);
  const Written w = write_outputs(c, kind, set, outputs, masks, out);
  stop_if_requested("interrupted; the finished images are kept: run the same command again to resume");
  write_lists_and_manifest(c, kind, record, set, role, outputs, w, out, report);
  std::error_code ec;
  if (report.failed.empty()) fs::remove_all(out / ".source", ec);

  report.source_images = w.decoded;
  report.files_written = w.written;
  report.files_kept = w.kept;
  report.masked_images = count_masks(out);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace ppnet::pipeline
