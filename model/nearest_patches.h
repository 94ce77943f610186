#pragma once
// The k latent patches nearest to each prototype over a stream of images, one patch per image
// (the image's closest cell), as the reference's global analysis keeps them. Batched: one
// merge of P×(k+B) candidates per batch, no per-prototype loop.

#include <torch/types.h>

#include <cstdint>

namespace ppnet::model {

class NearestPatches {
 public:
  /// Throws std::invalid_argument unless prototypes ≥ 1 and k ≥ 1.
  NearestPatches(int64_t prototypes, int64_t k);

  /// `distances`: B×P×H×W squared distances of a batch (any device; kept on the CPU in float32);
  /// `image_ids`: B int64 ids the results report. Ties keep the earlier image.
  void add(const torch::Tensor& distances, const torch::Tensor& image_ids);

  /// P×k, nearest first: each slot's distance (+inf while fewer than k images were seen), image
  /// id (−1 then), flat cell index h·W + w, and the image's whole distance map (P×k×H×W).
  const torch::Tensor& distance() const { return distance_; }
  const torch::Tensor& image() const { return image_; }
  const torch::Tensor& cell() const { return cell_; }
  torch::Tensor maps() const;
  int64_t k() const { return k_; }

 private:
  int64_t prototypes_, k_, height_ = 0, width_ = 0;
  torch::Tensor distance_, image_, cell_, maps_;
};

}  // namespace ppnet::model
