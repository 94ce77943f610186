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

namespace ppnet::model {
namespace {

// IAIA-BL's fine-annotation loss written out as the paper states it: every map upsampled to the
// image with bilinear interpolation, then the norms.
torch::Tensor fine_annotation_by_hand(const torch::Tensor& sim, const torch::Tensor& masks, const std::vector<bool>& annotated,
                                      const torch::Tensor& labels, const torch::Tensor& identity, FineAnnotationForm form) {
  namespace F = torch::nn::functional;
  const int64_t S = masks.size(1);
  const auto up = F::interpolate(sim, F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{S, S})
                                          .mode(torch::kBilinear)
                                          .align_corners(false));  // B×P×S×S
  auto total = torch::zeros({}, sim.options());
  for (int64_t i = 0; i < sim.size(0); ++i) {
    if (!annotated[static_cast<size_t>(i)]) continue;
    std::vector<int64_t> own, other;
    for (int64_t j = 0; j < sim.size(1); ++j) {
      (identity[j].argmax().item<int64_t>() == labels[i].item<int64_t>() ? own : other).push_back(j);
    }
    const auto outside = up[i].index_select(0, torch::tensor(own)) * (1 - masks[i]);
    if (form == FineAnnotationForm::kSerial) {
      total = total + up[i].index_select(0, torch::tensor(other)).norm() + outside.norm();
    } else {
      for (int64_t k = 0; k < outside.size(0); ++k) total = total + outside[k].norm();
    }
  }
  return total;
}

TEST(Loss, FineAnnotationMatchesTheFormulaValuesAndGradients) {
  torch::manual_seed(5);
  const int64_t B = 3, P = 6, C = 3, H = 3, W = 4, S = 11;
  const auto identity = torch::zeros({P, C}, torch::kFloat64);
  for (int64_t j = 0; j < P; ++j) identity[j][j / 2] = 1;
  const auto labels = torch::tensor({2, 0, 1}, torch::kInt64);
  const auto masks = (torch::rand({B, S, S}, torch::kFloat64) > 0.6).to(torch::kFloat64);
  const std::vector<bool> annotated = {true, false, true};
  const auto annotated_t = torch::tensor({1, 0, 1}).to(torch::kBool);
  for (const auto form : {FineAnnotationForm::kSerial, FineAnnotationForm::kL2}) {
    const auto sim = torch::rand({B, P, H, W}, torch::kFloat64).requires_grad_(true);
    const auto sim2 = sim.detach().clone().requires_grad_(true);
    const auto ours = fine_annotation_loss(sim, masks, annotated_t, labels, identity, form);
    const auto theirs = fine_annotation_by_hand(sim2, masks, annotated, labels, identity, form);
    EXPECT_NEAR(ours.item<double>(), theirs.item<double>(), 1e-10 * theirs.item<double>()) << to_string(form);
    ours.backward();
    theirs.backward();
    EXPECT_LT((sim.grad() - sim2.grad()).abs().max().item<double>(), 1e-10) << to_string(form);
    EXPECT_EQ(sim.grad()[1].abs().sum().item<double>(), 0.0) << "an image without a mask adds nothing";
    if (form == FineAnnotationForm::kL2) {
      // Other classes' maps are not penalised by the l2 form.
      EXPECT_EQ(sim.grad()[0].slice(0, 0, 4).abs().sum().item<double>(), 0.0);
    }
  }
  // A closed form: 1×1 maps upsample to constants. Image 0 (class 0, prototypes 0 and 1) with
  // 40 of its 121 pixels off the object: serial = 11·√(a2² + … + a5²) + √(40·(a0² + a1²)).
  const auto flat = torch::tensor({0.5, 2.0, 1.0, 3.0, 0.0, 2.0}, torch::kFloat64).view({1, P, 1, 1});
  auto mask = torch::ones({1, S, S}, torch::kFloat64);
  mask.view({-1}).slice(0, 0, 40).zero_();
  const double expected = 11 * std::sqrt(1.0 + 9.0 + 0.0 + 4.0) + std::sqrt(40 * (0.25 + 4.0));
  EXPECT_NEAR(fine_annotation_loss(flat, mask, torch::tensor({1}).to(torch::kBool), torch::tensor({0}, torch::kInt64), identity,
                                   FineAnnotationForm::kSerial)
                  .item<double>(),
              expected, 1e-9);
}

// ProtoPDebug's concept activation, written out with loops: per concept image, the sum over the
// prototypes of its class (all for −1) of the largest similarity on its region; the gradient of
// a weighted sum reaches exactly each counted prototype's peak cell.
TEST(Loss, ConceptActivationMatchesTheFormulaValuesAndGradients) {
  torch::manual_seed(3);
  const int64_t B = 3, P = 4, H = 3, W = 3;
  const auto identity = torch::tensor({{1.f, 0.f}, {1.f, 0.f}, {0.f, 1.f}, {0.f, 1.f}});
  auto sim = torch::rand({B, P, H, W}, torch::kFloat64).requires_grad_(true);
  auto region = torch::zeros({B, H, W}, torch::kBool);
  region[0][0][0] = true;
  region[0][1][1] = true;
  region[1].fill_(true);
  region[2][2][2] = true;
  const auto classes = torch::tensor({0, 1, -1}, torch::kInt64);
  const auto a = concept_activation(sim, region, classes, identity);
  ASSERT_EQ(a.sizes(), torch::IntArrayRef({B}));
  const auto s = sim.detach();
  const std::vector<std::vector<int64_t>> counted = {{0, 1}, {2, 3}, {0, 1, 2, 3}};
  auto expected_grad = torch::zeros_like(s);
  const std::vector<double> weights = {1.0, -2.0, 0.5};
  for (int64_t i = 0; i < B; ++i) {
    double want = 0;
    for (const int64_t j : counted[static_cast<size_t>(i)]) {
      double best = -1;
      int64_t bh = -1, bw = -1;
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t w = 0; w < W; ++w) {
          if (region[i][h][w].item<bool>() && s[i][j][h][w].item<double>() > best) {
            best = s[i][j][h][w].item<double>();
            bh = h;
            bw = w;
          }
        }
      }
      want += best;
      expected_grad[i][j][bh][bw] = weights[static_cast<size_t>(i)];
    }
    EXPECT_NEAR(a[i].item<double>(), want, 1e-12) << "concept " << i;
  }
  (a * torch::tensor(weights, torch::kFloat64)).sum().backward();
  EXPECT_TRUE(torch::equal(sim.grad(), expected_grad)) << sim.grad();

  // Counting only similarity above a threshold: each peak less it, and nothing below it (no
  // gradient either).
  const auto hinged = concept_activation(sim.detach(), region, classes, identity, 0.5);
  for (int64_t i = 0; i < B; ++i) {
    double want = 0;
    for (const int64_t j : counted[static_cast<size_t>(i)]) {
      const auto peak = s[i][j].masked_fill(region[i].logical_not(), -1).max().item<double>();
      want += std::max(0.0, peak - 0.5);
    }
    EXPECT_NEAR(hinged[i].item<double>(), want, 1e-12) << "concept " << i;
  }
  auto low = torch::full({B, P, H, W}, 0.25, torch::kFloat64).requires_grad_(true);
  concept_activation(low, region, classes, identity, 0.5).sum().backward();
  EXPECT_EQ(low.grad().abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace ppnet::model
