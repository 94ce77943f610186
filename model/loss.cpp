#include "model/loss.h"

#include <torch/torch.h>

namespace ppnet::model {

torch::Tensor off_class_l1(const torch::Tensor& last_weight, const torch::Tensor& class_identity) {
  return (last_weight * (1 - class_identity.t())).abs().sum();
}

torch::Tensor off_class_sparsity(const torch::Tensor& last_weight, const torch::Tensor& class_identity,
                                 double threshold) {
  const auto off = 1 - class_identity.t();
  return ((last_weight.abs() < threshold).to(off.scalar_type()) * off).sum() / off.sum().clamp_min(1);
}

LossTerms compute_loss_terms(const torch::Tensor& logits, const torch::Tensor& min_distances,
                             const torch::Tensor& labels, const torch::Tensor& class_identity,
                             const torch::Tensor& last_weight, double max_distance) {
  LossTerms t;
  t.cross_entropy = torch::nn::functional::cross_entropy(logits, labels);
  const auto own = class_identity.index_select(1, labels).t();  // B×P
  const auto other = 1 - own;
  const auto inverted = max_distance - min_distances;
  t.cluster = (max_distance - std::get<0>((inverted * own).max(1))).mean();
  t.separation = (max_distance - std::get<0>((inverted * other).max(1))).mean();
  t.avg_separation = ((min_distances * other).sum(1) / other.sum(1)).mean();
  t.l1 = off_class_l1(last_weight, class_identity);
  return t;
}

torch::Tensor total_loss(const LossTerms& t, const LossCoefficients& c) {
  return c.cross_entropy * t.cross_entropy + c.cluster * t.cluster +
         c.separation * t.separation + c.l1 * t.l1;
}

torch::Tensor mean_pairwise_prototype_distance(const torch::Tensor& prototypes) {
  const auto p = prototypes.flatten(1);
  const auto sq = (p * p).sum(1);
  // The expansion needs P×P memory rather than the reference's P×D×P broadcast.
  return (sq.view({-1, 1}) + sq.view({1, -1}) - 2 * p.matmul(p.t())).clamp_min(0).mean();
}

}  // namespace ppnet::model
