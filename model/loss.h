#pragma once
// The ProtoPNet training objective and the prototype statistics reported beside it.

#include <torch/types.h>

#include <cmath>

#include "model/names.h"

namespace ppnet::model {

/// Each term is a 0-dim float tensor on the device of the inputs.
struct LossTerms {
  torch::Tensor cross_entropy;
  torch::Tensor cluster;         // batch mean of the smallest distance to an own-class prototype
  torch::Tensor separation;      // batch mean of the smallest distance to an other-class prototype
  torch::Tensor avg_separation;  // batch mean of the mean distance to other-class prototypes
  torch::Tensor l1;              // Σ|w| over last-layer weights to classes a prototype is not of
};

struct LossCoefficients {
  double cross_entropy = 1.0;
  double cluster = 0.8;
  double separation = -0.08;
  double l1 = 1e-4;
};

/// logits B×C, min_distances B×P, labels B (int64), class_identity P×C, last_weight C×P;
/// max_distance is the bound on a squared distance (the prototype depth D), used as the
/// reference uses it so results agree to the last bit.
LossTerms compute_loss_terms(const torch::Tensor& logits, const torch::Tensor& min_distances,
                             const torch::Tensor& labels, const torch::Tensor& class_identity,
                             const torch::Tensor& last_weight, double max_distance);

/// Σ|w| over weights from a prototype to a class other than its own.
torch::Tensor off_class_l1(const torch::Tensor& last_weight, const torch::Tensor& class_identity);

/// Share (0-dim tensor) of off-class last-layer weights with |w| < threshold: how sparse the
/// connections from prototypes to classes other than their own have become.
torch::Tensor off_class_sparsity(const torch::Tensor& last_weight, const torch::Tensor& class_identity,
                                 double threshold = 1e-3);

/// IAIA-BL's fine-annotation loss (Barnett et al. 2021) of a batch, which penalises similarity
/// outside the object: `similarity` B×P×H×W maps, upsampled bilinearly (align_corners false) to
/// the masks' size S×S; `masks` B×S×S (1 = object); `annotated` B bools (images without a mask
/// add nothing); `labels` B; `class_identity` P×C. With A_i the upsampled maps of image i and
/// m_i its mask:
///   serial: Σ_i ‖A_i of other classes' prototypes‖_F + ‖A_i of its class's prototypes ⊙ (1 − m_i)‖_F
///   l2:     Σ_i Σ_{j of its class} ‖A_ij ⊙ (1 − m_i)‖_F
/// The other classes' norm is computed from the H×W maps through the upsampling's Gram matrices
/// (no P×S×S tensor). A 0-dim tensor on the maps' device.
torch::Tensor fine_annotation_loss(const torch::Tensor& similarity, const torch::Tensor& masks,
                                   const torch::Tensor& annotated, const torch::Tensor& labels,
                                   const torch::Tensor& class_identity, FineAnnotationForm form);

/// ProtoPDebug's concept activation (Bontempelli et al. 2023) of a batch of concept images:
/// `similarity` B×P×H×W maps of the images, `region` B×H×W bools (the cells the concept covers;
/// at least one per image), `classes` B int64 (the class whose prototypes a concept concerns,
/// −1 for all), `class_identity` P×C. Per image i: Σ over the prototypes j of its class of
/// max(0, max over its region of similarity_ij − `above`). B values, on the maps' device.
/// With `above` −∞ (ProtoPDebug's) the mean over forbidden concepts is its forgetting loss and
/// minus the mean over remembered ones its remembering loss; ppnet's forgetting counts only
/// similarity above --forbid-threshold (docs/audit.md).
torch::Tensor concept_activation(const torch::Tensor& similarity, const torch::Tensor& region, const torch::Tensor& classes,
                                 const torch::Tensor& class_identity, double above = -INFINITY);

/// Σ coefficient × term (avg_separation is reported, not optimised).
torch::Tensor total_loss(const LossTerms& terms, const LossCoefficients& coefficients);

/// Mean over all P×P ordered pairs (diagonal included) of the squared distance between
/// prototype vectors; prototypes P×D×1×1.
torch::Tensor mean_pairwise_prototype_distance(const torch::Tensor& prototypes);

}  // namespace ppnet::model
