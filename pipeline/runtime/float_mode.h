#pragma once
// Denormal floats flushed to zero on every thread that computes.
//
// Training with weight decay leaves thousands of weights (and activations) below FLT_MIN; on
// x86 every multiply that reads or produces such a value takes a microcode path ~100× slower,
// and a trained model ran 3–5× slower than a fresh one. The FTZ/DAZ bits that avoid this live
// in each thread's MXCSR register: setting them on the calling thread alone leaves LibTorch's
// intra-op pool and other workers on the slow path. New threads inherit the
// register of the thread that creates them, so pools created later are covered too.

#include <functional>

namespace ppnet::pipeline {

/// Sets (or clears) flush-to-zero and denormals-are-zero on the calling thread. Returns false
/// where the processor has no such mode (then nothing changes).
bool set_denormal_flush_on_this_thread(bool on);

/// Whether the calling thread flushes denormals (false on processors without the mode).
bool denormal_flush_on_this_thread();

/// Sets (or clears) the mode on the calling thread and on every thread of LibTorch's intra-op
/// pool (one chunk per thread, after the thread count is set). TBB needs nothing: a task runs
/// with the mode of the thread that started its parallel_for (oneTBB captures it in the task
/// group context), and the batch loader's thread inherits it from the thread that creates the
/// loader. OpenBLAS's pool (started before main()) is kept idle by start_runtime, so GEMMs run
/// on these threads. Call it from the main thread after torch::set_num_threads; idempotent.
void set_denormal_flush_everywhere(bool on);

/// Runs `f` once on each thread of LibTorch's intra-op pool (OpenMP), the caller included;
/// returns how many threads ran it. For set-up that is per thread, and for checking it.
int for_each_intra_op_thread(const std::function<void()>& f);

}  // namespace ppnet::pipeline
