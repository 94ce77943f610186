#include "model/loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace ppnet::model {
namespace {

// Two classes, two prototypes each (0,1 → class 0; 2,3 → class 1), worked by hand.
struct Case {
  torch::Tensor identity = torch::tensor({{1.f, 0.f}, {1.f, 0.f}, {0.f, 1.f}, {0.f, 1.f}});
  torch::Tensor min_d = torch::tensor({{1.f, 2.f, 3.f, 0.5f}, {4.f, 0.25f, 6.f, 8.f}});
  torch::Tensor labels = torch::tensor({0, 1}, torch::kInt64);
  torch::Tensor logits = torch::tensor({{2.f, 0.f}, {1.f, 1.f}});
  torch::Tensor weight = torch::tensor({{1.f, 1.f, -0.5f, -0.25f}, {0.1f, -0.5f, 1.f, 1.f}});
};

TEST(Loss, TermsMatchHandComputation) {
  Case c;
  const auto t = compute_loss_terms(c.logits, c.min_d, c.labels, c.identity, c.weight, 10.0);
  // Cluster: image 0 (class 0) own min(1,2)=1; image 1 (class 1) own min(6,8)=6.
  EXPECT_FLOAT_EQ(t.cluster.item<float>(), 3.5f);
  // Separation: image 0 other min(3,0.5)=0.5; image 1 other min(4,0.25)=0.25.
  EXPECT_FLOAT_EQ(t.separation.item<float>(), 0.375f);
  // Average separation: (3+0.5)/2 = 1.75 and (4+0.25)/2 = 2.125.
  EXPECT_FLOAT_EQ(t.avg_separation.item<float>(), 1.9375f);
  // L1 over off-class weights: |-0.5|+|-0.25|+|0.1|+|-0.5|.
  EXPECT_FLOAT_EQ(t.l1.item<float>(), 1.35f);
  const double ce0 = -std::log(std::exp(2.0) / (std::exp(2.0) + 1.0));
  const double ce1 = std::log(2.0);
  EXPECT_NEAR(t.cross_entropy.item<double>(), (ce0 + ce1) / 2, 1e-6);

  const auto total = total_loss(t, LossCoefficients{});
  EXPECT_NEAR(total.item<double>(),
              t.cross_entropy.item<double>() + 0.8 * 3.5 - 0.08 * 0.375 + 1e-4 * 1.35, 1e-5);
  LossCoefficients only_cluster{0.0, 1.0, 0.0, 0.0};
  EXPECT_FLOAT_EQ(total_loss(t, only_cluster).item<float>(), 3.5f);
}

TEST(Loss, GradientsFlowToDistancesAndWeights) {
  Case c;
  auto min_d = c.min_d.clone().requires_grad_(true);
  auto weight = c.weight.clone().requires_grad_(true);
  const auto t = compute_loss_terms(c.logits, min_d, c.labels, c.identity, weight, 10.0);
  total_loss(t, LossCoefficients{}).backward();
  // Only the own-class nearest (0,0) and (1,2) and other-class nearest (0,3), (1,1) get gradient.
  const auto g = min_d.grad();
  EXPECT_FLOAT_EQ(g[0][0].item<float>(), 0.4f);
  EXPECT_FLOAT_EQ(g[0][3].item<float>(), -0.04f);
  EXPECT_FLOAT_EQ(g[0][1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(weight.grad()[0][0].item<float>(), 0.0f);  // own-class weight: no L1
  EXPECT_FLOAT_EQ(weight.grad()[0][2].item<float>(), -1e-4f);
}

TEST(Loss, MeanPairwisePrototypeDistance) {
  // Three 2-d prototypes: squared distances 1 (a,b), 4 (a,c), 5 (b,c); mean over 9 ordered pairs.
  const auto p = torch::tensor({{0.f, 0.f}, {1.f, 0.f}, {0.f, 2.f}}).view({3, 2, 1, 1});
  EXPECT_FLOAT_EQ(mean_pairwise_prototype_distance(p).item<float>(), 2.0f * (1 + 4 + 5) / 9.0f);
}

}  // namespace
}  // namespace ppnet::model
