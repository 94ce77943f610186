#include "pipeline/runtime/runtime.h"

#include "model/protopnet.h"
#include "tests/common/test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

namespace ppnet::pipeline {
namespace {

TEST(Runtime, UsesAllCoresByDefaultAndTheGivenCountOtherwise) {
  RuntimeConfig c;
  EXPECT_EQ(start_runtime(c).threads, static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_EQ(torch::get_num_threads(), static_cast<int>(std::thread::hardware_concurrency()));
  c.threads = 1;
  EXPECT_EQ(start_runtime(c).threads, 1);
  EXPECT_EQ(torch::get_num_threads(), 1);
}

TEST(Runtime, SeedMakesLibTorchDeterministic) {
  RuntimeConfig c;
  c.seed = 42;
  start_runtime(c);
  const auto a = torch::rand({4});
  start_runtime(c);
  EXPECT_TRUE(torch::equal(a, torch::rand({4})));
}

TEST(Runtime, RejectsMalformedOrUnavailableDevices) {
  RuntimeConfig c;
  c.device = "tpu";
  EXPECT_THROW(start_runtime(c), std::runtime_error);
  c.device = "cuda";
  if (torch::cuda::is_available()) {
    EXPECT_TRUE(start_runtime(c).device.is_cuda());
  } else {
    try {
      start_runtime(c);
      FAIL() << "expected an exception";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("--device cpu"), std::string::npos);
    }
  }
}

// --amp bf16: the backbone and add-on compute in bfloat16; the prototype layer, and whatever the
// caller computes around the model, in float32; the logits stay close to float32's.
TEST(Runtime, AmpLowersTheBackboneAndAddOnOnly) {
  start_runtime(RuntimeConfig{});
  torch::manual_seed(7);
  auto net = test::small_model();
  net->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::rand({4, 3, 28, 28});
  const auto reference = net->forward(x);  // float32
  RuntimeConfig c;
  c.amp = Amp::kBf16;
  const Runtime rt = start_runtime(c);
  EXPECT_EQ(rt.amp, torch::kBFloat16);
  model::ProtoPNetActivations act;
  model::ProtoPNetOutput out;
  act = net->activations(x);
  out = net->forward(x);
  const auto product = torch::mm(torch::rand({4, 4}), torch::rand({4, 4}));  // a caller's own maths
  EXPECT_EQ(act.latent.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(act.distances.scalar_type(), torch::kFloat);
  EXPECT_EQ(out.min_distances.scalar_type(), torch::kFloat);
  EXPECT_EQ(out.logits.scalar_type(), torch::kFloat);
  const double diff = (out.logits - reference.logits).abs().max().item<double>();
  EXPECT_GT(diff, 0.0) << "bf16 must change the low bits: autocast did not apply";
  EXPECT_LT(diff, 0.05 * reference.logits.abs().max().item<double>());
  EXPECT_EQ(product.scalar_type(), torch::kFloat) << "autocast reached beyond the model's backbone";
  start_runtime(RuntimeConfig{});
  EXPECT_EQ(net->activations(x).latent.scalar_type(), torch::kFloat) << "--amp off again";

  c.amp = Amp::kFp16;  // CUDA only
  if (!torch::cuda::is_available()) {
    EXPECT_THROW(start_runtime(c), std::runtime_error);
  }
  EXPECT_THROW(parse_amp("fp8"), std::invalid_argument);
  EXPECT_EQ(parse_amp(amp_name(Amp::kBf16)), Amp::kBf16);
}

// --channels-last: the convolution weights and the input become NHWC; the results are float32's
// up to the order of sums.
TEST(Runtime, ChannelsLastConvertsTheWeightsAndKeepsTheResults) {
  torch::manual_seed(8);
  auto net = test::small_model();
  net->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::rand({4, 3, 28, 28});
  RuntimeConfig c;
  start_runtime(c);
  const auto reference = net->forward(x);
  c.channels_last = true;
  start_runtime(c);
  const auto out = net->forward(x);
  start_runtime(RuntimeConfig{});  // back to the default layout for the tests that follow
  int converted = 0;
  for (const auto& p : net->backbone().parameters()) {
    if (p.dim() == 4) {
      EXPECT_TRUE(p.is_contiguous(at::MemoryFormat::ChannelsLast));
      ++converted;
    }
  }
  EXPECT_GT(converted, 0);
  EXPECT_TRUE(torch::allclose(out.logits, reference.logits, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(out.min_distances, reference.min_distances, 1e-4, 1e-5));
}

}  // namespace
}  // namespace ppnet::pipeline
