#include "pipeline/runtime.h"

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

}  // namespace
}  // namespace ppnet::pipeline
