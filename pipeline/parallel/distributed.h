#pragma once
// Data-parallel work across processes on PyTorch's own distributed engine, c10d, with its Gloo
// backend (CPU tensors; CUDA tensors go through the host). ppnet reads the environment torchrun
// sets for each worker — RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, and, when torchrun's agent
// hosts the rendezvous store (static rendezvous), TORCHELASTIC_USE_AGENT_STORE and
// TORCHELASTIC_RESTART_COUNT — the same way torch.distributed's env:// does.

#include <torch/nn/module.h>
#include <torch/types.h>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>


namespace ppnet::pipeline {

/// How long a rank waits for the others (to join, or in a collective) before it gives up.
constexpr std::chrono::milliseconds kDistributedTimeout = std::chrono::minutes(5);

class Distributed {
 public:
  /// The process group this process belongs to, or nullptr when WORLD_SIZE is unset or 1.
  /// Throws std::runtime_error naming the variable when the environment is incomplete or
  /// malformed, or when the other ranks do not show up within `timeout`.
  static std::unique_ptr<Distributed> from_environment(std::chrono::milliseconds timeout);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  /// Sums `tensors` element-wise across ranks, in place, as one flat CPU buffer (their dtype
  /// when they share one, else float64). `what` names the step in the error when a rank is lost.
  void all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what);
  /// The element-wise minimum of `tensors` across ranks, in place (one buffer, as above).
  void all_reduce_min(std::vector<torch::Tensor>& tensors, const std::string& what);
  /// Starts summing `flat` (a contiguous CPU tensor) across ranks, in place, in the background
  /// (Gloo's threads); wait_sum(handle) blocks until it is done. Every rank must start the same
  /// sums in the same order.
  int start_sum(torch::Tensor flat);
  void wait_sum(int handle, const std::string& what);
  /// Copies rank 0's parameters and buffers of `module` into every rank's.
  void broadcast_weights(torch::nn::Module& module);
  /// Rank 0's `value` for `key`, on every rank (through the rendezvous store). Rank 0 may
  /// publish an error instead (publish_error): the others then throw it.
  std::string share(const std::string& key, const std::string& value);
  void publish_error(const std::string& key, const std::string& message);

 private:
  struct Impl;
  Distributed(int rank, int size, std::unique_ptr<Impl> impl);
  void all_reduce(std::vector<torch::Tensor>& tensors, const std::string& what, bool min);
  [[noreturn]] void lost(const std::string& what, const std::exception& cause);
  int rank_, size_;
  std::unique_ptr<Impl> impl_;
};

/// Work that runs data-parallel under torchrun: `leader(dist)` on rank 0 (or in the only
/// process, `dist` null), `worker(*dist)` on the others. An error on rank 0 is published under
/// `plan_key` (the key its plan is shared under), so the others stop with it instead of waiting.
template <class Leader, class Worker>
auto on_ranks(Distributed* dist, const std::string& plan_key, Leader leader, Worker worker) -> decltype(leader(dist)) {
  if (dist && dist->rank() != 0) return worker(*dist);
  try {
    return leader(dist);
  } catch (const std::exception& e) {
    if (dist) dist->publish_error(plan_key, e.what());
    throw;
  }
}

/// Gradients summed across ranks while the backward pass still runs, as PyTorch's DDP does:
/// the parameters in buckets (in reverse order, the order in which the backward pass reaches
/// them; the first bucket up to 1 MB, the others up to `bucket_bytes`); a bucket's all-reduce
/// starts as soon as the backward pass has produced all of its gradients (buckets in order, so
/// that every rank starts the same sums in the same order), and finish() starts what is left
/// (gradients this rank did not compute count as zeros), waits, and leaves the sums in the
/// parameters' .grad. The sums are the same as one all-reduce of everything would give.
class GradientReducer {
 public:
  GradientReducer(Distributed& dist, std::vector<torch::Tensor> params, int64_t bucket_bytes = 25 << 20);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  void begin_step();  // before the backward pass
  void finish(const std::string& what);
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> params;
    size_t ready = 0;
    int handle = -1;  // its all-reduce, once started
    torch::Tensor flat;
  };
  void arrived(size_t param, const torch::Tensor& grad);
  void start(Bucket& b);
  Distributed& dist_;
  std::vector<torch::Tensor> params_;
  std::vector<unsigned> hooks_;
  std::vector<size_t> bucket_of_;
  std::vector<torch::Tensor> grads_;
  std::vector<Bucket> buckets_;
  size_t next_ = 0;  // the next bucket to start
};

}  // namespace ppnet::pipeline
