#include "model/loss.h"

#include <torch/torch.h>

#include <cmath>

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

namespace {

// The S×N matrix of 1-D linear upsampling from N to S samples with align_corners false: what
// bilinear interpolation does along one axis.
torch::Tensor upsampling_matrix(int64_t n, int64_t s, const torch::TensorOptions& options) {
  namespace F = torch::nn::functional;
  const auto signals = torch::eye(n, options).view({n, 1, n});
  const auto up = F::interpolate(
      signals, F::InterpolateFuncOptions().size(std::vector<int64_t>{s}).mode(torch::kLinear).align_corners(false));
  return up.view({n, s}).t();
}

// √x with a zero gradient at 0 instead of an infinite one.
torch::Tensor safe_sqrt(const torch::Tensor& x) { return x.clamp_min(1e-20).sqrt(); }

}  // namespace

torch::Tensor fine_annotation_loss(const torch::Tensor& similarity, const torch::Tensor& masks,
                                   const torch::Tensor& annotated, const torch::Tensor& labels,
                                   const torch::Tensor& class_identity, FineAnnotationForm form) {
  const int64_t B = similarity.size(0), H = similarity.size(2), W = similarity.size(3), S = masks.size(1);
  const auto options = similarity.options();
  const auto uy = upsampling_matrix(H, S, options), ux = upsampling_matrix(W, S, options);
  const auto own = class_identity.to(options).index_select(1, labels).t();  // B×P: 1 for the image's class
  // The own-class maps gathered into B×K (K: the most prototypes a class has; padding weighs 0),
  // upsampled, and their squared norms off the object: B×K.
  const auto counts = own.sum(1);
  const int64_t K = std::max<int64_t>(1, counts.max().item<int64_t>());
  const auto order = own.argsort(1, /*descending=*/true).slice(1, 0, K);  // the own prototypes first
  const auto real = own.gather(1, order);                                  // 1, or 0 for padding
  const auto own_maps = similarity.gather(1, order.view({B, K, 1, 1}).expand({B, K, H, W}));
  const auto up = uy.matmul(own_maps).matmul(ux.t());  // B×K×S×S
  const auto background = (1 - masks.to(options)).view({B, 1, S, S});
  const auto outside = (up * background).pow(2).sum({2, 3}) * real;  // B×K
  const auto weight = annotated.to(options);                             // images without a mask add nothing
  if (form == FineAnnotationForm::kL2) return ((safe_sqrt(outside) * real).sum(1) * weight).sum();
  // Other classes' maps everywhere: ‖uy·A·uxᵀ‖² = Σ A ⊙ (gy·A·gx), from the coarse maps.
  const auto gy = uy.t().matmul(uy), gx = ux.t().matmul(ux);
  const auto norm2 = (similarity * gy.matmul(similarity).matmul(gx)).sum({2, 3});  // B×P
  const auto other = (norm2 * (1 - own)).sum(1);
  return ((safe_sqrt(other) + safe_sqrt(outside.sum(1))) * weight).sum();
}

torch::Tensor concept_activation(const torch::Tensor& similarity, const torch::Tensor& region, const torch::Tensor& classes,
                                 const torch::Tensor& class_identity, double above) {
  const int64_t B = similarity.size(0), P = similarity.size(1);
  const auto device = similarity.device();
  const auto off_region = region.to(device).to(torch::kBool).logical_not().view({B, 1, region.size(1), region.size(2)});
  auto peak = similarity.masked_fill(off_region, -INFINITY).amax({2, 3});  // B×P
  if (std::isfinite(above)) peak = (peak - above).clamp_min(0);
  const auto k = classes.to(device).to(torch::kInt64);
  const auto identity = class_identity.to(device).to(similarity.scalar_type());
  // Each image's prototypes: its class's column of the identity, or every prototype for −1.
  const auto own = identity.t().index_select(0, k.clamp_min(0));  // B×P
  const auto applies = torch::where(k.view({B, 1}).lt(0), torch::ones({B, P}, own.options()), own);
  return (peak * applies).sum(1);
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
