#include "pipeline/runtime/float_mode.h"

#include <gtest/gtest.h>
#include <oneapi/tbb/parallel_for.h>
#include <torch/torch.h>

#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "pipeline/runtime/runtime.h"

namespace ppnet::pipeline {
namespace {

// Both exact results are denormal floats: the product of two normal floats (flushed by FTZ)
// and a normal result from a denormal input (read as 0 by DAZ).
float denormal_product() {
  volatile float a = 1e-20f, b = 1e-20f;
  return a * b;  // 1e-40
}
float from_denormal_input() {
  volatile float a = 1e-40f, b = 1e10f;
  return a * b;  // 1e-30
}
bool computes_denormals_as_zero() { return denormal_product() == 0.0f && from_denormal_input() == 0.0f; }
bool computes_denormals_exactly() { return denormal_product() > 0.0f && from_denormal_input() > 0.0f; }

// What a set of threads computed: which threads ran, and how many of them flushed / did not.
struct Seen {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  int flushed = 0, exact = 0;
  void record() {
    const bool zero = computes_denormals_as_zero(), exact_here = computes_denormals_exactly();
    std::lock_guard<std::mutex> lock(mutex);
    threads.insert(std::this_thread::get_id());
    flushed += zero;
    exact += exact_here;
  }
  size_t thread_count() {
    std::lock_guard<std::mutex> lock(mutex);
    return threads.size();
  }
};

int test_threads() { return std::max(2, static_cast<int>(std::thread::hardware_concurrency())); }

void start(bool flush) {
  RuntimeConfig c;
  c.threads = test_threads();
  c.keep_denormals = !flush;
  start_runtime(c);
}

void on_every_intra_op_thread(Seen* seen) {
  EXPECT_EQ(for_each_intra_op_thread([&] { seen->record(); }), test_threads());
}

// Like the batch loader: a thread of its own whose tbb::parallel_for spreads over TBB workers.
void in_a_loader_thread(Seen* seen) {
  std::thread loader([&] {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    tbb::parallel_for(0, 64, [&](int) {
      seen->record();
      // Holds the calling thread until a worker has joined in, so a busy machine cannot finish
      // all 64 items on one thread before the workers wake up.
      while (seen->thread_count() < 2 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  });
  loader.join();
}

// A GEMM large enough for OpenBLAS to use its pool if it were allowed to (start_runtime keeps
// it on the calling thread): 256 products of 1e-20·1e-20 per entry. Each product is denormal:
// 0 with FTZ, 2.56e-38 (normal) summed without it.
torch::Tensor gemm_of_denormal_products() {
  const auto a = torch::full({256, 256}, 1e-20f);
  return torch::mm(a, a);
}

TEST(FloatMode, SetsAndClearsTheCallingThread) {
  if (!set_denormal_flush_on_this_thread(true)) GTEST_SKIP() << "no FTZ/DAZ on this processor";
  EXPECT_TRUE(denormal_flush_on_this_thread());
  EXPECT_TRUE(computes_denormals_as_zero());
  set_denormal_flush_on_this_thread(false);
  EXPECT_FALSE(denormal_flush_on_this_thread());
  EXPECT_TRUE(computes_denormals_exactly());
}

TEST(FloatMode, EveryIntraOpThreadFlushesAfterStartRuntime) {
  // Without the mode the same computation is exact on every thread: the check can fail.
  start(false);
  Seen before;
  on_every_intra_op_thread(&before);
  EXPECT_EQ(before.exact, test_threads());

  start(true);
  Seen after;
  on_every_intra_op_thread(&after);
  EXPECT_EQ(after.threads.size(), static_cast<size_t>(test_threads()));
  EXPECT_EQ(after.flushed, test_threads());
  EXPECT_TRUE(computes_denormals_as_zero());  // the calling thread too
}

TEST(FloatMode, LoaderThreadsAndTheirTbbWorkersFlush) {
  start(false);
  Seen before;
  in_a_loader_thread(&before);
  EXPECT_EQ(before.exact, 64);

  start(true);
  Seen after;
  in_a_loader_thread(&after);
  EXPECT_GE(after.threads.size(), 2u) << "TBB workers took no part";
  EXPECT_EQ(after.flushed, 64);
}

TEST(FloatMode, TensorOperationsAndBlasFlushOnEveryThread) {
  start(false);
  EXPECT_GT(gemm_of_denormal_products().min().item<float>(), 0.0f);
  EXPECT_GT((torch::full({1 << 20}, 1e-20f) * 1e-20f).min().item<float>(), 0.0f);

  start(true);
  EXPECT_EQ(gemm_of_denormal_products().abs().max().item<float>(), 0.0f);
  // An elementwise product large enough to be split across the intra-op threads.
  EXPECT_EQ((torch::full({1 << 20}, 1e-20f) * 1e-20f).abs().max().item<float>(), 0.0f);
  // Denormal inputs read as zero (DAZ), wherever the chunk runs.
  EXPECT_EQ((torch::full({1 << 20}, 1e-40f) * 1e10f).abs().max().item<float>(), 0.0f);
}

}  // namespace
}  // namespace ppnet::pipeline
