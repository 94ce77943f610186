// ppnet prepare: raw data (CUB-200-2011, class folders, IDX) into a prepared data folder.
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/data/prepare.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

void add_options(Options& o, pipeline::PrepareConfig& c, pipeline::RuntimeConfig& rt, bool& json) {
  o.add()
      ("cub", po::value(&c.cub)->value_name("PATH"), "CUB_200_2011.tgz (or another tar or zip archive of it) or its extracted folder")
      ("folder", po::value(&c.folder)->value_name("PATH"),
       "a folder of class folders, or one with train/ and test/ trees of them")
      ("idx", po::value(&c.idx)->value_name("PATH"), "a folder of MNIST-format IDX files (gzipped or not)")
      ("out", po::value(&c.out)->value_name("DATA"), "the prepared data folder to write")
      ("copies", po::value(&c.copies)->default_value(c.copies)->value_name("N"),
       "augmented copies per operation (rotate, skew, shear) and training image; 0: none")
      ("val-fraction", po::value(&c.val_fraction)->default_value(c.val_fraction)->value_name("F"),
       "seeded share of each class's training images held out as val/")
      ("test-fraction", po::value(&c.test_fraction)->default_value(c.test_fraction)->value_name("F"),
       "--folder without train/ and test/: seeded share of each class used as test/")
      ("size", po::value(&c.size)->default_value(c.size)->value_name("N"),
       "resize every output to N×N pixels (0: keep the crop's size)")
      ("rotation", po::value(&c.rotation)->default_value(c.rotation)->value_name("DEG"), "rotation range ±DEG")
      ("skew", po::value(&c.skew)->default_value(c.skew)->value_name("M"), "perspective skew magnitude")
      ("shear", po::value(&c.shear)->default_value(c.shear)->value_name("DEG"), "shear range ±DEG")
      ("flip", po::value(&c.flip)->default_value(c.flip)->value_name("P"),
       "probability of a left-right flip after each operation")
      ("parts", po::value(&c.parts)->value_name("DIR"),
       "--folder: part annotations in CUB's format (DIR/parts.txt, DIR/part_locs.txt keyed by the "
       "image's path under the folder); --cub reads its parts/ folder itself")
      ("masks", po::value(&c.masks)->value_name("DIR"),
       "object masks: one image per source image at the same path under DIR (any image extension; "
       "non-zero = object; --cub: grey level ≥ 50 %, and CUB's segmentations/ beside CUB_200_2011/ is "
       "found without this option); written to DATA/masks/")
      ("foreground-threshold", po::value(&c.foreground_threshold)->value_name("T"),
       "masks from the images themselves: object = pixels brighter than grey level T (0–254), for "
       "objects on a plain dark background (Fashion-MNIST)")
      ("class-names", po::value(&c.class_names)->value_name("NAMES"),
       "--idx: fashion-mnist, mnist or a file with one name per line (default: from the path)")
      ("force", po::bool_switch(&c.force), "replace an output folder prepared by a different command");
  o.add_json(json);
  o.add_runtime(rt, /*model=*/false);
}

void validate(const Options& o, const pipeline::PrepareConfig& c) {
  if (o.values().count("cub") + o.values().count("folder") + o.values().count("idx") != 1) {
    throw o.error("give exactly one of --cub, --folder and --idx");
  }
  o.require({"out"});
  if (o.values().count("parts") && c.folder.empty()) throw o.error("--parts goes with --folder");
  if (o.values().count("masks") && !c.idx.empty()) throw o.error("--masks goes with --cub or --folder (IDX data has no image files to pair masks with)");
  if (o.values().count("masks") && o.values().count("foreground-threshold")) {
    throw o.error("give --masks or --foreground-threshold, not both");
  }
  if (o.values().count("foreground-threshold") && !(c.foreground_threshold >= 0 && c.foreground_threshold <= 254)) {
    throw o.error("--foreground-threshold must be a grey level in 0…254");
  }
  if (c.copies < 0) throw o.error("--copies must be 0 or more");
  if (c.size < 0) throw o.error("--size must be 0 (keep) or a pixel count");
  for (const auto& [opt, v] : {std::pair<const char*, double>{"val-fraction", c.val_fraction},
                               {"test-fraction", c.test_fraction}, {"flip", c.flip}}) {
    if (!(v >= 0 && v < 1)) throw o.error(std::string("--") + opt + " must be in [0, 1)");  // NaN too
  }
  if (!(c.rotation >= 0 && c.rotation <= 360 && c.skew >= 0 && c.skew < 0.5 && c.shear >= 0 && c.shear < 60)) {
    throw o.error("augmentation ranges: 0 ≤ --rotation ≤ 360, 0 ≤ --skew < 0.5, 0 ≤ --shear < 60");
  }
}

int run(Options& o) {
  pipeline::PrepareConfig c;
  pipeline::RuntimeConfig rt;
  bool json = false;
  add_options(o, c, rt, json);
  if (!o.parse()) return 0;
  validate(o, c);
  c.threads = rt.threads;
  c.seed = rt.seed;
  const auto report = pipeline::run_prepare(c);
  for (const auto& f : report.failed) std::cerr << "ppnet prepare: failed: " << f << '\n';
  print_result(std::cout, report, json);
  if (report.failed.empty()) return 0;
  std::cerr << "ppnet prepare: " << report.failed.size() << " source images could not be read; the rest are prepared\n";
  return 1;
}

}  // namespace

extern const Command kPrepareCommand = {
    "prepare", "turn raw data (CUB-200-2011, class folders, IDX) into a prepared data folder",
    "ppnet prepare (--cub PATH | --folder PATH | --idx PATH) --out DATA [options]",
    "ppnet prepare --idx /usr/share/datasets/fashion-mnist --class-names fashion-mnist --out data/fmnist --copies 0\nppnet prepare --cub CUB_200_2011.tgz --out data/cub --copies 30\nppnet prepare --folder photos-by-class/ --out data/photos", false, &run};

}  // namespace ppnet::cli
