#include "pipeline/runtime/float_mode.h"

#include <ATen/Parallel.h>

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define PPNET_HAS_MXCSR 1
#endif

namespace ppnet::pipeline {
namespace {

#if PPNET_HAS_MXCSR
// MXCSR.FTZ (0x8000): denormal results become 0; MXCSR.DAZ (0x0040): denormal inputs read as 0.
constexpr unsigned kFlushBits = 0x8000 | 0x0040;
#endif

}  // namespace

bool set_denormal_flush_on_this_thread(bool on) {
#if PPNET_HAS_MXCSR
  _mm_setcsr(on ? (_mm_getcsr() | kFlushBits) : (_mm_getcsr() & ~kFlushBits));
  return true;
#else
  (void)on;
  return false;
#endif
}

bool denormal_flush_on_this_thread() {
#if PPNET_HAS_MXCSR
  return (_mm_getcsr() & kFlushBits) == kFlushBits;
#else
  return false;
#endif
}

void set_denormal_flush_everywhere(bool on) {
  set_denormal_flush_on_this_thread(on);
  for_each_intra_op_thread([on] { set_denormal_flush_on_this_thread(on); });
}

int for_each_intra_op_thread(const std::function<void()>& f) {
  // One index per thread and a grain of 1: each thread of the team runs exactly one chunk.
  // at::parallel_for is a header template: this file is compiled with OpenMP (CMakeLists.txt)
  // so that it starts the same team as LibTorch's own kernels.
  std::atomic<int> ran{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      f();
      ++ran;
    }
  });
  return ran.load();
}

}  // namespace ppnet::pipeline
