#include "model/nearest_patches.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace ppnet::model {
namespace {

// Per prototype, every image's closest cell, sorted by distance (earlier image first on ties):
// the k nearest patches by exhaustive search, one image at a time.
TEST(NearestPatches, MatchesAnExhaustiveSearchAcrossBatches) {
  torch::manual_seed(3);
  const int64_t P = 5, H = 3, W = 4, k = 4;
  std::vector<torch::Tensor> batches = {torch::rand({3, P, H, W}), torch::rand({2, P, H, W}), torch::rand({4, P, H, W})};
  batches[1][1][2].fill_(0.5);  // a whole map of equal values: its first cell is the image's closest
  batches[2][0][2].fill_(0.5);  // a tie between two images: the earlier one ranks first
  NearestPatches nearest(P, k);
  int64_t first = 100;
  for (const auto& b : batches) {
    nearest.add(b, torch::arange(first, first + b.size(0)));
    first += b.size(0);
  }
  const auto all = torch::cat(batches, 0);  // N×P×H×W, image i has id 100 + i
  for (int64_t j = 0; j < P; ++j) {
    struct Candidate {
      float d;
      int64_t image, cell;
    };
    std::vector<Candidate> c;
    for (int64_t i = 0; i < all.size(0); ++i) {
      float best = std::numeric_limits<float>::infinity();
      int64_t cell = 0;
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t w = 0; w < W; ++w) {
          const float v = all[i][j][h][w].item<float>();
          if (v < best) best = v, cell = h * W + w;
        }
      }
      c.push_back({best, 100 + i, cell});
    }
    std::stable_sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) { return a.d < b.d; });
    for (int64_t r = 0; r < k; ++r) {
      EXPECT_EQ(nearest.distance()[j][r].item<float>(), c[static_cast<size_t>(r)].d) << j << ',' << r;
      EXPECT_EQ(nearest.image()[j][r].item<int64_t>(), c[static_cast<size_t>(r)].image) << j << ',' << r;
      EXPECT_EQ(nearest.cell()[j][r].item<int64_t>(), c[static_cast<size_t>(r)].cell) << j << ',' << r;
      EXPECT_TRUE(nearest.maps()[j][r].equal(all[c[static_cast<size_t>(r)].image - 100][j])) << j << ',' << r;
    }
  }
}

TEST(NearestPatches, FewerImagesThanKLeaveEmptySlots) {
  NearestPatches nearest(2, 3);
  nearest.add(torch::rand({2, 2, 2, 2}), torch::tensor({7, 9}, torch::kInt64));
  EXPECT_EQ(nearest.image()[0][2].item<int64_t>(), -1);
  EXPECT_TRUE(std::isinf(nearest.distance()[1][2].item<float>()));
  EXPECT_NE(nearest.image()[1][1].item<int64_t>(), -1);
  EXPECT_THROW(nearest.add(torch::rand({1, 3, 2, 2}), torch::tensor({1}, torch::kInt64)), c10::Error);
  EXPECT_THROW(NearestPatches(0, 1), std::invalid_argument);
}

}  // namespace
}  // namespace ppnet::model
