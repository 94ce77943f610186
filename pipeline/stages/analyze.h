#pragma once
// `ppnet analyze`: each prototype's nearest patches over a split.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/attribution.h"

namespace ppnet::pipeline {

/// `ppnet analyze`: each prototype's nearest patches over a split (the reference's global analysis).
struct AnalyzeConfig {
  std::string run, data;
  std::string split = "push";  // push, test, val or train
  int k = 5;
  int batch_size = 75;
  bool save_images = true;  // a patch and a boxed image per nearest patch
  AttributionSettings attribution;  // how each patch's box is found
  bool json = false;
  RuntimeConfig runtime;
};

struct NearestPatchInfo {
  int64_t rank = 0, class_index = 0;
  std::string image_path, image_id;  // relative to the data folder; the source id
  int64_t cell_h = 0, cell_w = 0;
  double distance = 0, similarity = 0;
  std::vector<int64_t> box;  // high-activation box [x0, y0, x1, y1) in the image file's pixels
  std::string patch_png;     // relative to the run folder; empty when not written
  double precision = -1;     // share of the map's top 5 % inside the object mask; −1: no mask
};

struct PrototypeNeighbours {
  int64_t prototype = 0, class_index = 0;
  int64_t own_class = 0;  // how many of the nearest patches come from images of its class
  double precision = -1;  // mean precision of its nearest patches with masks; −1: none
  std::vector<NearestPatchInfo> nearest;
};

struct AnalyzeResult {
  std::string run, split;
  int64_t analysis = 0;  // its id in run.sqlite; pictures in RUN/analysis/<id>/
  int64_t k = 0, images = 0;
  Attribution attribution = Attribution::kUpsample;
  bool masks = false;  // the data has object masks: precision was measured
  std::vector<std::string> class_names;
  std::vector<PrototypeNeighbours> prototypes;
  double images_per_second = 0, seconds = 0;
};

/// For every prototype of the run's latest model, the k latent patches of the split nearest to
/// it, one per image, found in one batched pass; records them (with high-activation boxes and
/// pictures) in run.sqlite as one analysis. An interrupted analysis records nothing.
AnalyzeResult run_analyze(const AnalyzeConfig& config);

}  // namespace ppnet::pipeline
