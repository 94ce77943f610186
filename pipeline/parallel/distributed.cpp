#include "pipeline/parallel/distributed.h"

#include <torch/torch.h>

#include <cstdlib>
#include <map>
#include <stdexcept>
#include <thread>

#include "base/interrupt.h"
#include "base/parse_number.h"

#ifdef PPNET_WITH_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace ppnet::pipeline {
namespace {

// `tensors` end to end in one flat CPU buffer of `dtype`, and back.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors, torch::ScalarType dtype) {
  std::vector<torch::Tensor> parts;
  for (const auto& t : tensors) parts.push_back(t.detach().to(torch::kCPU, dtype).reshape({-1}));
  return torch::cat(parts);
}

void unflatten(const torch::Tensor& flat, std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t at = 0;
  for (auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(flat.slice(0, at, at + n).view(t.sizes()));
    at += n;
  }
}

}  // namespace

#ifdef PPNET_WITH_GLOO
struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::map<int, c10::intrusive_ptr<c10d::Work>> pending;  // start_sum's, by handle
  int next_handle = 0;
};

namespace {

std::string env(const char* name, bool required) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    if (required) throw std::runtime_error(std::string("distributed: ") + name + " is not set (launch ranks with torchrun)");
    return "";
  }
  return v;
}

int env_int(const char* name, int lo, int hi) {
  const std::string v = env(name, true);
  int64_t n = 0;
  if (!parse_int(v, &n) || n < lo || n > hi) {
    throw std::runtime_error(std::string("distributed: ") + name + "='" + v + "': expected an integer in " +
                             std::to_string(lo) + "…" + std::to_string(hi));
  }
  return static_cast<int>(n);
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

std::unique_ptr<Distributed> Distributed::from_environment(std::chrono::milliseconds timeout) {
  if (env("WORLD_SIZE", false).empty()) return nullptr;
  const int size = env_int("WORLD_SIZE", 1, 1 << 20);
  if (size == 1) return nullptr;
  const int rank = env_int("RANK", 0, size - 1);
  const std::string addr = env("MASTER_ADDR", true);
  const int port = env_int("MASTER_PORT", 1, 65535);

  auto impl = std::make_unique<Impl>();
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(port);
  options.timeout = timeout;
  // Under torchrun's static rendezvous its agent hosts the store and every worker is a client
  // (keys under /worker/attempt_<restart>); otherwise rank 0 hosts it, as env:// does.
  const bool agent_store = env("TORCHELASTIC_USE_AGENT_STORE", false) == "True";
  options.isServer = !agent_store && rank == 0;
  using Workers = decltype(options.numWorkers);  // c10::optional in 1.13, std::optional in 2.x
  options.numWorkers = agent_store ? Workers() : Workers(static_cast<size_t>(size));
  options.waitWorkers = false;
  options.multiTenant = true;
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(addr, options);
    impl->store = agent_store ? c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::PrefixStore>(
                                    "/worker/attempt_" + env("TORCHELASTIC_RESTART_COUNT", false), tcp))
                              : c10::intrusive_ptr<c10d::Store>(tcp);
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    const std::string ifname = env("GLOO_SOCKET_IFNAME", false);
    gloo->devices.push_back(ifname.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                           : c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    gloo->threads = 2;
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, rank, size, gloo);
  } catch (const std::exception& e) {
    throw std::runtime_error("distributed: rank " + std::to_string(rank) + " of " + std::to_string(size) +
                             " could not join the group at " + addr + ":" + std::to_string(port) + ": " + e.what());
  }
  return std::unique_ptr<Distributed>(new Distributed(rank, size, std::move(impl)));
}

Distributed::Distributed(int rank, int size, std::unique_ptr<Impl> impl) : rank_(rank), size_(size), impl_(std::move(impl)) {}
Distributed::~Distributed() = default;

void Distributed::lost(const std::string& what, const std::exception& cause) {
  // Which ranks are gone: every survivor checks in, waits a moment, and looks who did not.
  std::string missing;
  try {
    const std::string prefix = "ppnet/lost/" + what + "/";
    impl_->store->set(prefix + std::to_string(rank_), bytes_of("alive"));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    for (int r = 0; r < size_; ++r) {
      if (!impl_->store->check({prefix + std::to_string(r)})) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    }
  } catch (const std::exception&) {
    missing = "0 (it holds the rendezvous store)";
  }
  throw Resumable("distributed: rank " + std::to_string(rank_) + " lost contact with " +
                           (missing.empty() ? std::string("another rank") : "rank " + missing) + " during " + what +
                           " (" + cause.what() + "); the run keeps what it last recorded: run the command again "
                           "(train and last-layer with --resume) to continue");
}

void Distributed::all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what) {
  all_reduce(tensors, what, /*min=*/false);
}

void Distributed::all_reduce_min(std::vector<torch::Tensor>& tensors, const std::string& what) {
  all_reduce(tensors, what, /*min=*/true);
}

void Distributed::all_reduce(std::vector<torch::Tensor>& tensors, const std::string& what, bool min) {
  if (tensors.empty()) return;
  try {
    // One flat CPU buffer: one collective per call, whatever the number of tensors; in their
    // dtype when they share one (gradients: float32), else in float64 (exact for counts too).
    auto dtype = tensors[0].scalar_type();
    for (const auto& t : tensors) {
      if (t.scalar_type() != dtype) dtype = torch::kFloat64;
    }
    std::vector<torch::Tensor> flat = {flatten(tensors, dtype)};
    c10d::AllreduceOptions options;
    options.reduceOp = min ? c10d::ReduceOp::MIN : c10d::ReduceOp::SUM;
    impl_->group->allreduce(flat, options)->wait();
    unflatten(flat[0], tensors);
  } catch (const std::runtime_error& e) {
    lost(what, e);
  }
}

int Distributed::start_sum(torch::Tensor flat) {
  std::vector<torch::Tensor> one = {std::move(flat)};
  const int handle = impl_->next_handle++;
  try {
    impl_->pending[handle] = impl_->group->allreduce(one);
  } catch (const std::runtime_error& e) {
    lost("the start of a gradient bucket's sum", e);
  }
  return handle;
}

void Distributed::wait_sum(int handle, const std::string& what) {
  const auto it = impl_->pending.find(handle);
  if (it == impl_->pending.end()) return;
  const auto work = it->second;
  impl_->pending.erase(it);
  try {
    work->wait();
  } catch (const std::runtime_error& e) {
    lost(what, e);
  }
}

void Distributed::broadcast_weights(torch::nn::Module& module) {
  std::vector<torch::Tensor> state;
  for (const auto& p : module.parameters()) state.push_back(p.detach());
  for (const auto& b : module.buffers()) state.push_back(b);
  // A broadcast is an all-reduce of rank 0's values and zeros elsewhere: one collective, exact.
  if (rank_ != 0) {
    torch::NoGradGuard no_grad;
    for (auto& t : state) t.zero_();
  }
  all_reduce_sum(state, "the broadcast of the weights");
}

std::string Distributed::share(const std::string& key, const std::string& value) {
  const std::string full = "ppnet/share/" + key;
  if (rank_ == 0) {
    impl_->store->set(full, bytes_of("v" + value));
    return value;
  }
  std::vector<uint8_t> got;
  try {
    got = impl_->store->get(full);
  } catch (const std::exception& e) {
    throw Resumable("distributed: rank " + std::to_string(rank_) + " waited in vain for rank 0's " + key +
                             " (" + e.what() + ")");
  }
  const std::string s(got.begin(), got.end());
  if (!s.empty() && s[0] == 'e') throw std::runtime_error("rank 0 failed: " + s.substr(1));
  return s.empty() ? s : s.substr(1);
}

void Distributed::publish_error(const std::string& key, const std::string& message) {
  try {
    impl_->store->set("ppnet/share/" + key, bytes_of("e" + message));
  } catch (const std::exception&) {
    // The others will time out instead.
  }
}

#else  // built without Gloo's headers: one process only

struct Distributed::Impl {};

std::unique_ptr<Distributed> Distributed::from_environment(std::chrono::milliseconds) {
  const char* world = std::getenv("WORLD_SIZE");
  if (world && *world && std::string(world) != "1") {
    throw std::runtime_error(std::string("distributed: WORLD_SIZE=") + world +
                             ", but this ppnet was built without Gloo's headers (PPNET_DISTRIBUTED): run one process");
  }
  return nullptr;
}
Distributed::~Distributed() = default;
void Distributed::all_reduce_sum(std::vector<torch::Tensor>&, const std::string&) {}
void Distributed::all_reduce_min(std::vector<torch::Tensor>&, const std::string&) {}
int Distributed::start_sum(torch::Tensor) { return -1; }
void Distributed::wait_sum(int, const std::string&) {}
void Distributed::broadcast_weights(torch::nn::Module&) {}
std::string Distributed::share(const std::string&, const std::string& value) { return value; }
void Distributed::publish_error(const std::string&, const std::string&) {}

#endif

GradientReducer::GradientReducer(Distributed& dist, std::vector<torch::Tensor> params, int64_t bucket_bytes)
    : dist_(dist), params_(std::move(params)), bucket_of_(params_.size()), grads_(params_.size()) {
  int64_t bytes = 0, cap = std::min<int64_t>(int64_t{1} << 20, bucket_bytes);
  for (size_t k = params_.size(); k-- > 0;) {
    const int64_t size = params_[k].numel() * static_cast<int64_t>(params_[k].element_size());
    if (buckets_.empty() || (bytes > 0 && bytes + size > cap)) {
      if (!buckets_.empty()) cap = bucket_bytes;
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += size;
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    // A leaf's hook sees the whole gradient of the backward pass (every use of the parameter
    // summed), once, just before it is accumulated into .grad.
    hooks_.push_back(params_[k].register_hook([this, k](const torch::Tensor& grad) {
      arrived(k, grad);
      return torch::Tensor();  // the gradient unchanged
    }));
  }
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < params_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

void GradientReducer::begin_step() {
  for (auto& g : grads_) g = torch::Tensor();
  for (auto& b : buckets_) {
    b.ready = 0;
    b.handle = -1;
    b.flat = torch::Tensor();
  }
  next_ = 0;
}

void GradientReducer::arrived(size_t param, const torch::Tensor& grad) {
  grads_[param] = grad.detach();
  ++buckets_[bucket_of_[param]].ready;
  while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params.size()) start(buckets_[next_++]);
}

void GradientReducer::start(Bucket& b) {
  std::vector<torch::Tensor> grads;
  for (size_t k : b.params) grads.push_back(grads_[k].defined() ? grads_[k] : torch::zeros_like(params_[k]));
  b.flat = flatten(grads, params_[b.params.front()].scalar_type());
  b.handle = dist_.start_sum(b.flat);
}

void GradientReducer::finish(const std::string& what) {
  while (next_ < buckets_.size()) start(buckets_[next_++]);
  for (auto& b : buckets_) {
    dist_.wait_sum(b.handle, what);
    std::vector<torch::Tensor> grads;
    for (size_t k : b.params) {
      auto& p = params_[k];
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.mutable_grad());
    }
    unflatten(b.flat, grads);
  }
}

}  // namespace ppnet::pipeline
