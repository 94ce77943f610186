#pragma once
// Interpretability metrics measured against part annotations (docs/audit.md).
// Plain arithmetic over part sets (bit sets over part indices, as parts_in_box gives them), so
// every definition can be checked by hand; the pass over images that produces the sets is in
// pipeline/stages/evaluate.cpp.

#include <cstdint>
#include <vector>

namespace ppnet::pipeline {

struct PartMetricOptions {
  double consistency_threshold = 0.8;  // EvalProtoPNet: a part in ≥ 80 % of the class's images
};

struct PartMetricsResult {
  // consistency: share of prototypes (with ≥ 1 annotated image of their class) for which one part
  // lies in the prototype's high-activation box in ≥ threshold of those images.
  double consistency = -1;
  int64_t consistent_prototypes = 0, consistency_prototypes = 0;
  // stability: per prototype, the share of its class's images whose part set in the box is the
  // same with and without input noise; mean over prototypes.
  double stability = -1;
  // pointing game: share of images (with ≥ 1 visible part) where the box of the prototype that
  // contributes most to the predicted class's logit holds a visible part.
  double pointing = -1;
  int64_t pointing_hits = 0, pointing_images = 0;
  // purity: per prototype, the share of its k nearest patches whose box holds the part most of
  // them hold; mean over prototypes. -1 when not measured.
  double purity = -1;
};

/// Accumulates part sets image by image, then computes what was fed (a metric nothing was fed
/// for stays −1).
class PartMetrics {
 public:
  PartMetrics(int64_t prototypes, PartMetricOptions options);
  /// Prototype j's box on an annotated image of j's class: the parts in it, and (for stability)
  /// the parts in it when the input had noise added.
  void add_own_class(int64_t prototype, uint64_t parts);
  void add_stability(int64_t prototype, uint64_t parts, uint64_t noisy_parts);
  /// One image with ≥ 1 visible part: did the top prototype's box hold one?
  void add_pointing(bool hit);
  /// The part sets of prototype j's k nearest patches (one call per prototype).
  void add_nearest(int64_t prototype, const std::vector<uint64_t>& parts);
  PartMetricsResult result() const;

 private:
  PartMetricOptions options_;
  std::vector<int64_t> images_, stable_, stability_images_;
  std::vector<std::vector<int64_t>> part_counts_;  // [prototype][part]
  std::vector<double> purity_;                     // −1: not fed
  int64_t pointing_hits_ = 0, pointing_images_ = 0;
};

}  // namespace ppnet::pipeline
