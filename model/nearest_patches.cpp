#include "model/nearest_patches.h"

#include <torch/torch.h>

#include <limits>
#include <stdexcept>

namespace ppnet::model {

NearestPatches::NearestPatches(int64_t prototypes, int64_t k) : prototypes_(prototypes), k_(k) {
  if (prototypes < 1 || k < 1) throw std::invalid_argument("NearestPatches: prototypes and k must be at least 1");
  distance_ = torch::full({prototypes, k}, std::numeric_limits<float>::infinity());
  image_ = torch::full({prototypes, k}, -1, torch::kInt64);
  cell_ = torch::zeros({prototypes, k}, torch::kInt64);
}

void NearestPatches::add(const torch::Tensor& distances, const torch::Tensor& image_ids) {
  TORCH_CHECK(distances.dim() == 4 && distances.size(1) == prototypes_, "NearestPatches::add: expected B×",
              prototypes_, "×H×W distances, got ", distances.sizes());
  TORCH_CHECK(image_ids.dim() == 1 && image_ids.size(0) == distances.size(0), "NearestPatches::add: one id per image");
  const int64_t B = distances.size(0), H = distances.size(2), W = distances.size(3);
  if (B == 0) return;
  const auto flat = distances.detach().to(torch::kCPU, torch::kFloat32).flatten(2).transpose(0, 1);  // P×B×HW
  if (!maps_.defined()) {
    maps_ = torch::zeros({prototypes_, k_, H * W});
    height_ = H, width_ = W;
  }
  TORCH_CHECK(H == height_ && W == width_, "NearestPatches::add: the grid changed between batches");
  const auto [best, where] = flat.min(2);  // P×B
  const auto all_d = torch::cat({distance_, best}, 1);  // P×(k+B): earlier candidates first
  const auto all_img = torch::cat({image_, image_ids.to(torch::kCPU, torch::kInt64).unsqueeze(0).expand({prototypes_, B})}, 1);
  const auto all_cell = torch::cat({cell_, where}, 1);
  const auto all_maps = torch::cat({maps_, flat}, 1);
  const auto order = std::get<1>(all_d.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false)).narrow(1, 0, k_);
  distance_ = all_d.gather(1, order);
  image_ = all_img.gather(1, order);
  cell_ = all_cell.gather(1, order);
  maps_ = all_maps.gather(1, order.unsqueeze(2).expand({prototypes_, k_, H * W})).contiguous();
}

torch::Tensor NearestPatches::maps() const {
  return maps_.defined() ? maps_.view({prototypes_, k_, height_, width_}) : torch::Tensor();
}

}  // namespace ppnet::model
