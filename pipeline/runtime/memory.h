#pragma once
// Memory: what the machine has, what this process holds, and what a piece of LibTorch work needs
// at its peak (sizes as text: base/memory_size.h). No LibTorch in this header.

#include <cstdint>
#include <functional>
#include <string>

namespace ppnet::pipeline {

/// Bytes of physical memory of this machine; 0 when the system does not say.
int64_t physical_memory();

/// Bytes this process holds resident now (/proc/self/statm); 0 when unknown.
int64_t resident_memory();

/// The default --memory-budget: a quarter of physical memory (1 GiB when that is unknown).
int64_t default_memory_budget();

/// Hands the memory the C allocator keeps after frees back to the system (glibc's malloc_trim;
/// nothing elsewhere): after a pass over images, so that what comes next starts from what is
/// held rather than from the pass's high-water mark.
void release_free_memory();

/// From now on, blocks of 1 MiB and more are mapped and unmapped directly (glibc's
/// M_MMAP_THRESHOLD; nothing elsewhere): freed activations then leave the process at once
/// instead of staying with the allocator, whose threshold otherwise grows with the blocks it has
/// seen. For work under a tight memory budget; every fresh block costs page faults.
void map_large_blocks();

/// The most bytes that LibTorch's allocators held at once, beyond what they held before, while
/// `work` ran on this thread (every device; the CPU allocator and CUDA's caching allocator both
/// report). Memory allocated before and freed during `work` is not subtracted.
int64_t peak_allocation(const std::function<void()>& work);

}  // namespace ppnet::pipeline
