// What memory the process has and a piece of work needs (pipeline/runtime/memory.h), and the
// batch a feature pass takes within the memory budget (pipeline/stages/feature_batch.h).
#include "pipeline/runtime/memory.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "base/memory_size.h"
#include "model/protopnet.h"
#include "pipeline/stages/feature_batch.h"
#include "tests/common/test_util.h"

namespace ppnet::pipeline {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

TEST(MemorySize, ReadsTheSizesUsersWrite) {
  EXPECT_EQ(parse_memory_size("6G"), 6 * (int64_t{1} << 30));
  EXPECT_EQ(parse_memory_size("512M"), 512 * kMiB);
  EXPECT_EQ(parse_memory_size("512MiB"), 512 * kMiB);
  EXPECT_EQ(parse_memory_size("1.5GiB"), 3 * (int64_t{1} << 29));
  EXPECT_EQ(parse_memory_size("800k"), 800 * 1024);
  EXPECT_EQ(parse_memory_size("2T"), 2 * (int64_t{1} << 40));
  EXPECT_EQ(parse_memory_size("4096"), 4096);
  EXPECT_EQ(parse_memory_size("4096B"), 4096);
  for (const char* bad : {"", "G", "6X", "-1G", "0", "0.2", "1e9", "6 G B", "six"}) {
    try {
      parse_memory_size(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "': expected a size such as 6G"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(memory_size_text(900), "900 B");
  EXPECT_EQ(memory_size_text(38 * kMiB), "38.0 MiB");
  EXPECT_EQ(memory_size_text(3 * (int64_t{1} << 29)), "1.5 GiB");
  EXPECT_EQ(memory_size_text(300 * kMiB), "300 MiB");
}

TEST(MemorySize, TheMachineAndTheProcessAreMeasured) {
  EXPECT_GT(physical_memory(), 64 * kMiB);
  EXPECT_EQ(default_memory_budget(), physical_memory() / 4);
  const int64_t before = resident_memory();
  EXPECT_GT(before, kMiB);
  auto held = torch::ones({64 * kMiB / 4});  // touched: resident
  EXPECT_GE(resident_memory(), before + 48 * kMiB);
}

TEST(PeakAllocation, CountsWhatIsHeldAtOnceNotWhatPassesThrough) {
  const auto outside = torch::ones({kMiB});  // allocated before: not counted, even when freed inside
  const int64_t one = peak_allocation([] { auto a = torch::empty({kMiB / 4}); });
  EXPECT_GE(one, kMiB);
  EXPECT_LT(one, kMiB + 4096);
  const int64_t sequential = peak_allocation([] {
    for (int i = 0; i < 4; ++i) auto a = torch::empty({kMiB / 4});
  });
  EXPECT_LT(sequential, kMiB + 4096);
  const int64_t together = peak_allocation([] {
    std::vector<torch::Tensor> held;
    for (int i = 0; i < 4; ++i) held.push_back(torch::empty({kMiB / 4}));
  });
  EXPECT_GE(together, 4 * kMiB);
  EXPECT_LT(together, 4 * kMiB + 4096);
  EXPECT_EQ(peak_allocation([] {}), 0);
}

TEST(FeatureBatch, TheCostPerImageIsMeasuredAndGrowsWithTheImage) {
  auto net = test::small_model();
  net->train();
  const auto small = measure_feature_cost(*net, ModelInput{32}, torch::kCPU);
  const auto large = measure_feature_cost(*net, ModelInput{64}, torch::kCPU);
  EXPECT_TRUE(net->is_training());  // the probe ran in evaluation mode and restored the mode
  // A 32×32 image's input alone is 12 KiB, and the loader holds five batches of them.
  EXPECT_GT(small.per_image, 5 * 3 * 32 * 32 * 4);
  // Four times the pixels: about four times the activations (the grid's cells grow alike; the
  // smaller image's figure holds more of what does not grow with the pixels).
  const double ratio = static_cast<double>(large.per_image) / static_cast<double>(small.per_image);
  EXPECT_GT(ratio, 3.0) << small.per_image << " " << large.per_image;
  EXPECT_LT(ratio, 6.0) << small.per_image << " " << large.per_image;
  // What it says one image costs is what a batch's pass allocates per image (1 against 9 images).
  net->eval();
  torch::NoGradGuard no_grad;
  const auto pass = [&](int64_t images) {
    return peak_allocation([&] { net->forward(torch::zeros({images, 3, 64, 64})); });
  };
  const double measured = static_cast<double>(pass(17) - pass(1)) / 16, loader = 5 * 3 * 64 * 64 * 4;
  EXPECT_NEAR(measured, static_cast<double>(large.per_image) - loader, 0.1 * measured);
}

// The two-image bound holds the measured cost of an image and of a batch's fixed part, and a
// batch chosen by it allocates no more than it says (a batch of one peaks lower per image).
TEST(FeatureBatch, TheOneImageBoundIsNeverBelowTheMeasuredCost) {
  auto net = test::small_model();
  for (const int size : {32, 64}) {
    const auto measured = measure_feature_cost(*net, ModelInput{size}, torch::kCPU);
    const auto bound = bound_feature_cost(*net, ModelInput{size}, torch::kCPU);
    EXPECT_EQ(bound.fixed, 0);
    EXPECT_GE(bound.per_image, measured.per_image + measured.fixed) << size;
    EXPECT_LT(bound.per_image, 4 * (measured.per_image + measured.fixed)) << size;  // a bound, not a guess
    net->eval();
    torch::NoGradGuard no_grad;
    for (const int64_t n : {1, 3, 8, 17}) {
      const int64_t peak = peak_allocation([&] { net->forward(torch::zeros({n, 3, size, size})); });
      EXPECT_LE(peak, n * bound.per_image) << size << " " << n;
    }
  }
}

TEST(FeatureBatch, TheBatchShrinksToTheBudgetAndNeverBelowOne) {
  const FeatureCost cost{10 * kMiB, 20 * kMiB};
  EXPECT_EQ(batch_within_budget(cost, 100, int64_t{100} << 30, 0), 100);       // room for all
  EXPECT_EQ(batch_within_budget(cost, 100, 1000 * kMiB, 100 * kMiB), 79);      // 0.9 · (1000 − 120) / 10
  EXPECT_EQ(batch_within_budget(cost, 100, 100 * kMiB, 200 * kMiB), 1);        // already over
  EXPECT_EQ(batch_within_budget(FeatureCost{}, 7, 1, 0), 7);                   // nothing measured
}

}  // namespace
}  // namespace ppnet::pipeline
