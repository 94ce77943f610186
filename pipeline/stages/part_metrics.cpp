#include "pipeline/stages/part_metrics.h"

#include <algorithm>

namespace ppnet::pipeline {
namespace {

constexpr int kParts = 64;

void count_parts(uint64_t parts, std::vector<int64_t>& counts) {
  for (int p = 0; p < kParts; ++p) {
    if (parts >> p & 1) ++counts[static_cast<size_t>(p)];
  }
}

}  // namespace

PartMetrics::PartMetrics(int64_t prototypes, PartMetricOptions options)
    : options_(options),
      images_(static_cast<size_t>(prototypes), 0),
      stable_(static_cast<size_t>(prototypes), 0),
      stability_images_(static_cast<size_t>(prototypes), 0),
      part_counts_(static_cast<size_t>(prototypes), std::vector<int64_t>(kParts, 0)),
      purity_(static_cast<size_t>(prototypes), -1.0) {}

void PartMetrics::add_own_class(int64_t prototype, uint64_t parts) {
  const auto j = static_cast<size_t>(prototype);
  ++images_[j];
  count_parts(parts, part_counts_[j]);
}

void PartMetrics::add_stability(int64_t prototype, uint64_t parts, uint64_t noisy_parts) {
  const auto j = static_cast<size_t>(prototype);
  ++stability_images_[j];
  stable_[j] += parts == noisy_parts ? 1 : 0;
}

void PartMetrics::add_pointing(bool hit) {
  ++pointing_images_;
  pointing_hits_ += hit ? 1 : 0;
}

void PartMetrics::add_nearest(int64_t prototype, const std::vector<uint64_t>& parts) {
  if (parts.empty()) return;
  std::vector<int64_t> counts(kParts, 0);
  for (uint64_t s : parts) count_parts(s, counts);
  const int64_t most = *std::max_element(counts.begin(), counts.end());
  purity_[static_cast<size_t>(prototype)] = static_cast<double>(most) / static_cast<double>(parts.size());
}

PartMetricsResult PartMetrics::result() const {
  PartMetricsResult r;
  double stability_sum = 0, purity_sum = 0;
  int64_t stability_n = 0, purity_n = 0;
  for (size_t j = 0; j < images_.size(); ++j) {
    if (images_[j] > 0) {
      ++r.consistency_prototypes;
      const int64_t most = *std::max_element(part_counts_[j].begin(), part_counts_[j].end());
      if (static_cast<double>(most) >= options_.consistency_threshold * static_cast<double>(images_[j])) {
        ++r.consistent_prototypes;
      }
    }
    if (stability_images_[j] > 0) {
      stability_sum += static_cast<double>(stable_[j]) / static_cast<double>(stability_images_[j]);
      ++stability_n;
    }
    if (purity_[j] >= 0) {
      purity_sum += purity_[j];
      ++purity_n;
    }
  }
  if (r.consistency_prototypes > 0) {
    r.consistency = static_cast<double>(r.consistent_prototypes) / static_cast<double>(r.consistency_prototypes);
  }
  if (stability_n > 0) r.stability = stability_sum / static_cast<double>(stability_n);
  if (purity_n > 0) r.purity = purity_sum / static_cast<double>(purity_n);
  r.pointing_hits = pointing_hits_;
  r.pointing_images = pointing_images_;
  if (pointing_images_ > 0) r.pointing = static_cast<double>(pointing_hits_) / static_cast<double>(pointing_images_);
  return r;
}

}  // namespace ppnet::pipeline
