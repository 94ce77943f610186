#pragma once
// `ppnet prepare`: raw data (CUB-200-2011, class folders, IDX) into a prepared data folder.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ppnet::pipeline {

struct PrepareConfig {
  std::string cub, folder, idx;  // exactly one input
  std::string out;
  int copies = 10;              // augmented copies per operation and training image
  double val_fraction = 0.0;    // seeded share of each class's training images held out
  double test_fraction = 0.2;   // --folder without train/ and test/: seeded test share
  int size = 0;                 // resize every output to size×size; 0 keeps the crop's size
  double rotation = 15.0;       // augmentation ranges (see pipeline/data/augment.h)
  double skew = 0.2;
  double shear = 10.0;
  double flip = 0.5;
  std::string parts;            // --folder: a folder with parts.txt and part_locs.txt (CUB's format)
  std::string masks;            // object masks mirroring the source images (pipeline/data/masks.h);
                                // --cub also finds segmentations/ beside CUB_200_2011/ by itself
  int foreground_threshold = -1;  // ≥ 0: masks from the images: pixels brighter than this
  std::string class_names;      // --idx: fashion-mnist, mnist or a file; "" guesses from the path
  bool force = false;
  int threads = 0;              // TBB workers; 0 = all cores
  uint64_t seed = 1;            // splits and augmentation
};

struct PrepareResult {
  std::string out;
  std::string source_kind;
  int classes = 0;
  std::map<std::string, int64_t> images;  // split → images listed (train: augmented outputs)
  int64_t source_images = 0;   // source images this run decoded
  int64_t files_written = 0;
  int64_t files_kept = 0;      // complete outputs of an earlier, interrupted run
  std::vector<std::string> part_names;  // with part annotations (DATA/parts/)
  int64_t annotated_images = 0;         // push/test/val images with part locations
  std::string masks_from;               // the mask folder read, "foreground > T", or "" (none)
  int64_t masked_images = 0;            // outputs with an object mask (DATA/masks/)
  std::vector<std::string> failed;  // "path: reason", one per unreadable source image
  bool up_to_date = false;     // the same command had already finished: nothing to do
  double seconds = 0;
  int threads = 0;
};

/// Turns raw data into a prepared data folder (see docs/design.md §1). Metadata errors throw
/// before anything is written; unreadable images are reported in `failed` and the rest done.
/// Re-running the same command resumes; a different command on the same folder throws unless
/// config.force. Throws Interrupted after SIGINT/SIGTERM, leaving a resumable folder.
PrepareResult run_prepare(const PrepareConfig& config);

}  // namespace ppnet::pipeline
