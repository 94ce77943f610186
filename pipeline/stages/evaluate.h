#pragma once
// `ppnet evaluate`: accuracy and the interpretability metrics of a run's latest model.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/attribution.h"
#include "pipeline/stages/part_metrics.h"

namespace ppnet::pipeline {

struct EvaluateConfig {
  std::string run, data;
  std::string split = "test";
  int batch_size = 100;
  std::string confusion_csv;   // also write the confusion matrix here
  std::string predictions_csv; // also write one line per image: path, label, predicted, logit
  // Interpretability metrics (any of consistency, stability, pointing, purity, precision,
  // sparsity); consistency to purity need the data's part annotations, precision its object
  // masks (docs/audit.md); "all": every metric the data has the annotations for.
  std::set<std::string> metrics;
  AttributionSettings attribution;     // the maps whose boxes and top pixels the metrics take
  int precision_k = 10;                // precision: an image's most similar prototypes examined
  double part_box = 0.32;              // side of the box around a map's peak, as a share of the image
                                       // (EvalProtoPNet: 72 of 224 px); 0: the 95th-percentile box
  double consistency_threshold = 0.8;  // EvalProtoPNet
  double noise = 0.2;                  // stability: σ of the Gaussian noise on the normalised input
  int purity_k = 10;                   // PIP-Net: a prototype's nearest patches examined
  bool json = false;
  RuntimeConfig runtime;
};

/// Activation precision (IAIA-BL, Barnett et al. 2021): the share of the top 5 % of a
/// prototype's attribution map on an image that lies inside the image's object mask.
struct PrecisionResult {
  double mean = -1;                   // over every (masked image, top prototype) pair
  int64_t pairs = 0, masked_images = 0;
  std::vector<double> per_prototype;  // mean over the images it was among the top of; −1: none
  // Background prototypes: those whose own projected patch (on its push image) has precision
  // < 0.5, of the prototypes measured there; −1 when none was (no projection, no masks on the
  // push images, or only flat maps). Flat: a map without a top 5 %, as saliency is at a
  // prototype's own patch (a maximum of its similarity: the gradient is 0).
  double background_share = -1;
  int64_t background_prototypes = 0, projected_prototypes = 0, flat_prototypes = 0;
  std::vector<double> own_patch;      // per prototype: precision on its push image; −1: unknown
};

struct EvaluateResult {
  int rank = 0;  // data-parallel: ranks other than 0 only computed logits, and report nothing
  std::string run, split, checkpoint;
  int64_t images = 0;
  double accuracy = 0, top5_accuracy = 0;
  std::vector<std::string> class_names;
  std::vector<double> per_class_accuracy;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
  int64_t prototypes = 0;
  double off_class_sparsity = 0;       // share of off-class last-layer weights with |w| < 1e-3
  double own_class_strongest = 0;      // share of prototypes whose largest weight goes to their class
  std::set<std::string> metrics;       // the interpretability metrics measured, with their parameters
  double part_box = 0, consistency_threshold = 0, noise = 0;
  int purity_k = 0;
  PartMetricsResult parts;             // consistency, stability, pointing, purity
  int64_t annotated_images = 0;        // images of the split with part annotations
  Attribution attribution = Attribution::kUpsample;
  int precision_k = 0;
  PrecisionResult precision;
  // sparsity: last-layer weights exactly 0 and |w| ≥ 1e-3, and the distinct (image, cell)
  // patches the latest projection put prototypes on (−1 without a projection).
  double zero_weights = 0;
  int64_t nonzero_weights = 0, distinct_patches = -1;
  double images_per_second = 0, seconds = 0;
};

/// Evaluates the run's latest model on a split of the data, with the interpretability metrics
/// asked for; records the result in run.sqlite. Throws when part metrics are asked for and the
/// split has no part annotations.
EvaluateResult run_evaluate(const EvaluateConfig& config);

/// The interpretability metrics of `r` as a JSON object (text), as recorded with the evaluation.
std::string metrics_json(const EvaluateResult& r);

}  // namespace ppnet::pipeline
