#include "model/protopnet.h"
#include "model/backbone.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace ppnet::model {
namespace {

ProtoPNetOptions small_options(AddOnType add_on = AddOnType::kRegular) {
  ProtoPNetOptions o;
  o.arch = "small";
  o.num_classes = 3;
  o.prototypes_per_class = 4;
  o.prototype_dim = 16;
  o.add_on = add_on;
  return o;
}

TEST(ProtoPNet, ForwardShapesAndRanges) {
  torch::manual_seed(3);
  ProtoPNet net(small_options());
  net->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 28, 28});
  const auto out = net->forward(x);
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(out.min_distances.sizes(), (std::vector<int64_t>{2, 12}));

  const auto act = net->activations(x);
  EXPECT_EQ(act.latent.sizes(), (std::vector<int64_t>{2, 16, 7, 7}));
  EXPECT_EQ(act.distances.sizes(), (std::vector<int64_t>{2, 12, 7, 7}));
  // Sigmoid keeps latents in (0,1); so a squared distance lies in [0, D].
  EXPECT_GT(act.latent.min().item<float>(), 0.0f);
  EXPECT_LT(act.latent.max().item<float>(), 1.0f);
  EXPECT_GE(act.distances.min().item<float>(), 0.0f);
  EXPECT_LE(act.distances.max().item<float>(), 16.0f);
  // The two entry points agree: min over the grid of the maps is forward()'s minimum.
  EXPECT_TRUE(torch::equal(std::get<0>(act.distances.flatten(2).min(2)), out.min_distances));
  // The logits by the paper's formulas, written out here rather than through the model's own
  // functions: logit_c = Σ_j w_cj · log((d_j + 1) / (d_j + 1e-4)), d_j the smallest distance of
  // prototype j over the grid, by a loop over cells.
  const auto w = net->last_layer()->weight.detach();
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t c = 0; c < 3; ++c) {
      double logit = 0;
      for (int64_t j = 0; j < 12; ++j) {
        double d = 1e30;
        for (int64_t h = 0; h < 7; ++h) {
          for (int64_t x = 0; x < 7; ++x) d = std::min(d, act.distances[i][j][h][x].item<double>());
        }
        logit += w[c][j].item<double>() * std::log((d + 1) / (d + 1e-4));
      }
      EXPECT_NEAR(out.logits[i][c].item<double>(), logit, 1e-4 * std::max(1.0, std::abs(logit))) << i << "," << c;
    }
  }
}

TEST(ProtoPNet, DistancesEqualBruteForcePerPatch) {
  torch::manual_seed(4);
  ProtoPNet net(small_options());
  const auto z = torch::rand({1, 16, 3, 2});
  const auto d = net->distances(z);
  const auto p = net->prototype_vectors().view({12, 16});
  for (int64_t h = 0; h < 3; ++h) {
    for (int64_t w = 0; w < 2; ++w) {
      const auto patch = z.index({0, torch::indexing::Slice(), h, w});
      const auto expected = (p - patch).pow(2).sum(1);
      EXPECT_TRUE(torch::allclose(d.index({0, torch::indexing::Slice(), h, w}), expected, 1e-5, 1e-5));
    }
  }
}

TEST(ProtoPNet, PairedDistancesAreTheDiagonalOfAllPairs) {
  torch::manual_seed(5);
  ProtoPNet net(small_options());
  const auto z = torch::rand({12, 16, 3, 2});  // map j for prototype j
  const auto paired = net->paired_distances(z);
  ASSERT_EQ(paired.sizes(), (std::vector<int64_t>{12, 3, 2}));
  const auto all = net->distances(z);  // 12×12×3×2: every map against every prototype
  for (int64_t j = 0; j < 12; ++j) {
    EXPECT_TRUE(torch::allclose(paired[j], all[j][j], 1e-5, 1e-5)) << "prototype " << j;
    const auto brute = (z[j] - net->prototype_vectors()[j]).pow(2).sum(0);  // D×H×W − D×1×1
    EXPECT_TRUE(torch::allclose(paired[j], brute, 1e-5, 1e-5)) << "prototype " << j;
  }
}

// torchvision initialises VGG's and ResNet's convolutions Kaiming-normal with fan_out, DenseNet's
// with kaiming_normal_'s default fan_in: the first convolution's spread tells them apart
// (densenet121 conv0: 3·7·7 = 147 in, 64·7·7 = 3,136 out).
TEST(Backbone, ConvolutionsStartAsTorchvisionsDo) {
  torch::manual_seed(9);
  const auto first_conv_std = [](const std::string& arch) {
    for (const auto& p : make_backbone(arch)->named_parameters()) {
      if (p.value().dim() == 4) return p.value().std().item<double>();
    }
    return 0.0;
  };
  EXPECT_NEAR(first_conv_std("densenet121"), std::sqrt(2.0 / 147), 0.1 * std::sqrt(2.0 / 147));
  EXPECT_NEAR(first_conv_std("vgg11"), std::sqrt(2.0 / (64 * 9)), 0.1 * std::sqrt(2.0 / (64 * 9)));
  EXPECT_NEAR(first_conv_std("resnet18"), std::sqrt(2.0 / (64 * 49)), 0.1 * std::sqrt(2.0 / (64 * 49)));
}

// --activation linear: the similarity is −d, and the logits W·(−min d).
TEST(ProtoPNet, LinearActivationIsMinusTheDistance) {
  torch::manual_seed(10);
  auto o = small_options();
  o.activation = Activation::kLinear;
  ProtoPNet net(o);
  net->eval();
  torch::NoGradGuard no_grad;
  const auto out = net->forward(torch::rand({2, 3, 28, 28}));
  const auto expected = torch::mm(-out.min_distances, net->last_layer()->weight.t());
  EXPECT_TRUE(torch::allclose(out.logits, expected, 1e-5, 1e-5));
  EXPECT_EQ(parse_activation("linear"), Activation::kLinear);
  EXPECT_EQ(to_string(parse_activation("log")), "log");
  EXPECT_THROW(parse_activation("relu"), std::invalid_argument);
}

TEST(ProtoPNet, InitialisationFollowsTheReference) {
  torch::manual_seed(5);
  ProtoPNet net(small_options());
  const auto& id = net->prototype_class_identity();
  ASSERT_EQ(id.sizes(), (std::vector<int64_t>{12, 3}));
  for (int64_t j = 0; j < 12; ++j) {
    for (int64_t c = 0; c < 3; ++c) {
      const bool own = j / 4 == c;
      EXPECT_EQ(id[j][c].item<float>(), own ? 1.0f : 0.0f);
      EXPECT_EQ(net->last_layer()->weight[c][j].item<float>(), own ? 1.0f : -0.5f);
    }
  }
  EXPECT_FALSE(net->last_layer()->bias.defined());
  const auto& p = net->prototype_vectors();
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{12, 16, 1, 1}));
  EXPECT_GE(p.min().item<float>(), 0.0f);
  EXPECT_LT(p.max().item<float>(), 1.0f);
  // Add-on convs: Kaiming-normal fan_out (std = sqrt(2 / out_channels)), zero bias.
  auto first = net->add_on_layers()[0]->as<torch::nn::Conv2d>();
  ASSERT_NE(first, nullptr);
  EXPECT_NEAR(first->weight.std().item<double>(), std::sqrt(2.0 / 16), 0.03);
  EXPECT_EQ(first->bias.abs().max().item<float>(), 0.0f);
}

TEST(ProtoPNet, ParameterNamesAreTheReferenceOnes) {
  ProtoPNet net(small_options());
  std::vector<std::string> names;
  for (const auto& p : net->named_parameters()) names.push_back(p.key());
  for (const char* n : {"features.features.0.weight", "add_on_layers.0.weight", "add_on_layers.2.bias",
                        "prototype_vectors", "last_layer.weight"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
}

TEST(ProtoPNet, BottleneckHalvesChannelsDownToTheDepth) {
  auto seq = make_add_on_layers(512, 128, AddOnType::kBottleneck);
  std::vector<std::pair<int64_t, int64_t>> convs;
  std::vector<std::string> kinds;
  for (const auto& m : seq->children()) {
    if (auto c = m->as<torch::nn::Conv2d>()) convs.emplace_back(c->options.in_channels(), c->options.out_channels());
    kinds.push_back(m->name());
  }
  const std::vector<std::pair<int64_t, int64_t>> expected = {{512, 256}, {256, 256}, {256, 128}, {128, 128}};
  EXPECT_EQ(convs, expected);
  EXPECT_EQ(kinds.back(), "torch::nn::SigmoidImpl");
  EXPECT_EQ(kinds[3], "torch::nn::ReLUImpl");
}

TEST(ProtoPNet, RejectsBadOptions) {
  auto o = small_options();
  o.arch = "vgg17";
  try {
    ProtoPNet net(o);
    FAIL() << "expected an exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("vgg17"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("resnet50"), std::string::npos);
  }
  o = small_options();
  o.prototypes_per_class = 0;
  EXPECT_THROW(ProtoPNet{o}, std::invalid_argument);
  EXPECT_THROW(parse_add_on_type("deep"), std::invalid_argument);
  EXPECT_EQ(parse_add_on_type("bottleneck"), AddOnType::kBottleneck);
}

TEST(ProtoPNet, SimilarityIsLogRatio) {
  const auto d = torch::tensor({0.0, 1.0, 10.0}, torch::kFloat64);
  const auto s = similarity_from_distance(d);
  EXPECT_NEAR(s[0].item<double>(), std::log(1.0 / 1e-4), 1e-9);
  EXPECT_NEAR(s[1].item<double>(), std::log(2.0 / 1.0001), 1e-9);
  EXPECT_NEAR(s[2].item<double>(), std::log(11.0 / 10.0001), 1e-9);
}

}  // namespace
}  // namespace ppnet::model
