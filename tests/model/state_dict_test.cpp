#include "model/state_dict.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/backbone.h"

namespace ppnet::model {
namespace {

TensorMap state_of(torch::nn::Module& m) {
  TensorMap out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

std::string error_of(torch::nn::Module& m, const TensorMap& weights) {
  try {
    load_torchvision_state(m, weights);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(StateDict, CopiesEveryTensorAndReportsHeadKeys) {
  torch::manual_seed(1);
  auto source = make_backbone("small_bn");
  auto weights = state_of(*source);
  for (auto& [name, t] : weights) {  // BatchNorm's fresh 1s and 0s would be equal anyway
    t = t.is_floating_point() ? torch::rand_like(t) + 0.5 : torch::randint(1, 100, t.sizes(), t.options());
  }
  weights["fc.weight"] = torch::zeros({10, 128});
  weights["classifier.0.bias"] = torch::zeros({10});
  torch::manual_seed(2);
  auto target = make_backbone("small_bn");
  const auto report = load_torchvision_state(*target, weights);
  EXPECT_EQ(report.ignored, (std::vector<std::string>{"classifier.0.bias", "fc.weight"}));
  EXPECT_EQ(report.loaded, static_cast<int64_t>(weights.size() - 2));
  for (const auto& [name, t] : state_of(*target)) {
    EXPECT_TRUE(torch::equal(t, weights[name])) << name;
  }
}

TEST(StateDict, AcceptsDataParallelPrefixAndMissingBatchCounters) {
  auto source = make_backbone("small_bn");
  TensorMap weights;
  for (const auto& [name, t] : state_of(*source)) {
    if (name.find("num_batches_tracked") == std::string::npos) weights["module." + name] = t;
  }
  auto target = make_backbone("small_bn");
  const auto report = load_torchvision_state(*target, weights);
  EXPECT_EQ(report.defaulted.size(), 3u);  // one per BatchNorm
}

TEST(StateDict, RemapsOldDenseNetKeys) {
  auto source = make_backbone("densenet121");
  // Random values everywhere, BatchNorm weights and statistics too (fresh ones are 1 and 0 on
  // both sides, so copying them would prove nothing).
  torch::manual_seed(3);
  TensorMap old;
  std::map<std::string, std::string> old_name;  // new key → the key of the old (pre-0.4) layout
  for (const auto& [name, t] : state_of(*source)) {
    std::string key = name;
    for (const char* part : {"norm1", "norm2", "conv1", "conv2"}) {
      const std::string p = std::string(".") + part + ".";
      const auto at = key.find(p);
      if (key.find("denselayer") != std::string::npos && at != std::string::npos) {
        key.replace(at, p.size(), std::string(".") + std::string(part, 4) + "." + part[4] + ".");
      }
    }
    old[key] = t.is_floating_point() ? torch::rand_like(t) + 0.5 : torch::randint(1, 100, t.sizes(), t.options());
    old_name[name] = key;
  }
  ASSERT_EQ(old.count("features.denseblock1.denselayer1.norm.1.weight"), 1u);
  auto target = make_backbone("densenet121");
  EXPECT_NO_THROW(load_torchvision_state(*target, old));
  for (const auto& [name, t] : state_of(*target)) {
    EXPECT_TRUE(torch::equal(t, old.at(old_name.at(name)))) << name << " from " << old_name.at(name);
  }
}

TEST(StateDict, MissingKeyIsNamedWithItsShape) {
  auto m = make_backbone("small_bn");
  auto weights = state_of(*m);
  weights.erase("features.4.weight");
  const auto before = state_of(*m);
  const std::string msg = error_of(*m, weights);
  EXPECT_NE(msg.find("missing tensor 'features.4.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[64, 32, 3, 3]"), std::string::npos) << msg;
}

TEST(StateDict, ShapeMismatchNamesBothShapesAndChangesNothing) {
  torch::manual_seed(7);
  auto m = make_backbone("small_bn");
  const auto before = state_of(*m);
  torch::manual_seed(8);
  auto weights = state_of(*make_backbone("small_bn"));
  weights["features.0.weight"] = torch::zeros({32, 1, 3, 3});
  const std::string msg = error_of(*m, weights);
  EXPECT_NE(msg.find("'features.0.weight' has shape [32, 1, 3, 3] but the model expects [32, 3, 3, 3]"),
            std::string::npos)
      << msg;
  for (const auto& [name, t] : state_of(*m)) EXPECT_TRUE(torch::equal(t, before.at(name))) << name;
}

TEST(StateDict, ForeignKeysAreRefused) {
  auto m = make_backbone("small_bn");
  auto weights = state_of(*m);
  weights["layer9.conv.weight"] = torch::zeros({1});
  const std::string msg = error_of(*m, weights);
  EXPECT_NE(msg.find("'layer9.conv.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("another"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ppnet::model
