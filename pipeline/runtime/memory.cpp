#include "pipeline/runtime/memory.h"

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>
#include <malloc.h>
#include <unistd.h>

#include <fstream>
#include <memory>

namespace ppnet::pipeline {
namespace {

// Receives every allocation and release LibTorch reports on the thread that installed it (the
// profiler's hook: c10::reportMemoryUsageToProfiler) and keeps the running sum and its peak.
class PeakCounter : public c10::MemoryReportingInfoBase {
 public:
  void reportMemoryUsage(void*, int64_t size, int64_t, int64_t, c10::Device) override {
    current_ += size;
    if (current_ > peak_) peak_ = current_;
  }
  bool memoryProfilingEnabled() const override { return true; }
  int64_t peak() const { return peak_; }

 private:
  int64_t current_ = 0, peak_ = 0;
};

}  // namespace

int64_t physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

int64_t resident_memory() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * ::sysconf(_SC_PAGESIZE);
}

int64_t default_memory_budget() {
  const int64_t physical = physical_memory();
  return physical > 0 ? physical / 4 : int64_t{1} << 30;
}

void release_free_memory() {
#ifdef __GLIBC__
  ::malloc_trim(0);
#endif
}

void map_large_blocks() {
#ifdef __GLIBC__
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

int64_t peak_allocation(const std::function<void()>& work) {
  auto counter = std::make_shared<PeakCounter>();
  {
    c10::DebugInfoGuard guard(c10::DebugInfoKind::PROFILER_STATE, counter);
    work();
  }
  return counter->peak();
}

}  // namespace ppnet::pipeline
