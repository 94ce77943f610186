#pragma once
// `ppnet info`: what run.sqlite records about a run.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <string>
#include <vector>

namespace ppnet::pipeline {

struct InfoConfig {
  std::string run;
  bool json = false;
  bool prototypes = false;  // list the latest projection's prototypes
  bool concepts = false;    // list the concepts marked with forbid / remember
};

struct StageInfo {
  int64_t id = 0;
  std::string kind, status, started, finished;
  int64_t epochs_done = 0;
  double last_train_loss = 0, last_eval_accuracy = 0;
  std::string eval_split;
  std::string job;  // the torchrun job that began it ('' outside torchrun)
};

struct EpochInfo {
  int64_t stage_id = 0;
  std::string stage;
  int64_t epoch = 0;
  double train_loss = 0, train_cross_entropy = 0, train_cluster = 0, train_separation = 0,
         train_avg_separation = 0, train_accuracy = 0;
  std::string eval_split;
  double eval_cross_entropy = 0, eval_accuracy = 0, l1 = 0, prototype_distance = 0,
         images_per_second = 0, seconds = 0;
};

struct PrototypeInfo {
  int64_t prototype = 0, class_index = 0;
  std::string class_name, image_path, image_id;
  int64_t cell_h = 0, cell_w = 0;
  double distance_before = 0, distance_after = 0;
  std::vector<int64_t> rf, box;  // [x0, y0, x1, y1) in source-image pixels
  std::string patch_png, box_png, heatmap_png;  // relative to the run folder; empty if not written
};

struct ConceptInfo {
  int64_t id = 0;
  std::string kind;        // "forbid" or "remember"
  int64_t class_index = -1;  // −1: every class
  std::string class_name;  // "all" for every class
  std::string created, origin, image_path;
  std::vector<int64_t> box;  // [x0, y0, x1, y1) in that image's pixels
};

struct InfoResult {
  std::string run;
  int64_t projection = 0;                // with --prototypes: the projection listed
  std::vector<PrototypeInfo> prototypes;
  bool listing_concepts = false;         // with --concepts: `concepts` is the answer
  std::vector<ConceptInfo> concepts;
  std::string created;
  std::string ppnet_version;
  std::string model_json;
  std::string data_path;
  std::vector<StageInfo> stages;
  std::vector<EpochInfo> epochs;
};

/// What run.sqlite records about a run.
InfoResult run_info(const InfoConfig& config);

}  // namespace ppnet::pipeline
