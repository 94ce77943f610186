#include "pipeline/stages/epoch_metrics.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace ppnet::pipeline {

void EpochMetrics::add(const model::LossTerms& terms, const torch::Tensor& loss_value, const torch::Tensor& logits,
                       const torch::Tensor& labels) {
  const double b = static_cast<double>(labels.size(0));
  loss += loss_value.item<double>() * b;
  cross_entropy += terms.cross_entropy.item<double>() * b;
  cluster += terms.cluster.item<double>() * b;
  separation += terms.separation.item<double>() * b;
  avg_separation += terms.avg_separation.item<double>() * b;
  correct += static_cast<double>(logits.argmax(1).eq(labels).sum().item<int64_t>());
  images += b;
}

bool EpochMetrics::finite() const {
  for (const double v : to_vector()) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

std::vector<double> EpochMetrics::to_vector() const {
  return {loss, cross_entropy, cluster, separation, avg_separation, correct, images};
}

EpochMetrics EpochMetrics::from_vector(const std::vector<double>& v) {
  if (v.size() != kCount) {
    throw std::invalid_argument("expected " + std::to_string(kCount) + " epoch sums, found " + std::to_string(v.size()));
  }
  EpochMetrics m;
  m.loss = v[0];
  m.cross_entropy = v[1];
  m.cluster = v[2];
  m.separation = v[3];
  m.avg_separation = v[4];
  m.correct = v[5];
  m.images = v[6];
  return m;
}

}  // namespace ppnet::pipeline
