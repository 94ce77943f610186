#pragma once
// The running sums of a training epoch (or an evaluation pass) from which its row of metrics is
// computed (write_train_metrics, pipeline/stages/checkpoint.h): each loss term times the images
// it was the mean over, the correct predictions and the images. Sums rather than means so that slices add up: batches of an
// epoch, ranks of a data-parallel step, and the part of an epoch before an interruption.

#include <torch/types.h>

#include <vector>

#include "model/loss.h"

namespace ppnet::pipeline {

struct EpochMetrics {
  double loss = 0, cross_entropy = 0, cluster = 0, separation = 0, avg_separation = 0;  // × images
  double correct = 0, images = 0;

  /// Adds a batch: its loss terms and total loss (means over the batch), logits and labels.
  void add(const model::LossTerms& terms, const torch::Tensor& loss, const torch::Tensor& logits,
           const torch::Tensor& labels);
  bool finite() const;
  double mean_loss() const { return mean(loss); }
  double accuracy() const { return mean(correct); }
  /// A sum's mean per image (0 before any image).
  double mean(double sum) const { return images > 0 ? sum / images : 0.0; }

  /// The seven sums in a fixed order (loss, CE, cluster, separation, avg separation, correct,
  /// images): how checkpoints store them and ranks add them up.
  static constexpr size_t kCount = 7;
  std::vector<double> to_vector() const;
  /// Throws std::invalid_argument unless `v` holds kCount numbers.
  static EpochMetrics from_vector(const std::vector<double>& v);
};

}  // namespace ppnet::pipeline
