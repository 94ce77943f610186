#include "model/protopnet.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <atomic>
#include <stdexcept>

namespace ppnet::model {
namespace {
constexpr double kSimilarityEpsilon = 1e-4;
std::atomic<bool> channels_last{false};
std::atomic<torch::ScalarType> precision{torch::kFloat};

// LibTorch 2.4 replaced the per-device autocast switches by ones that take the device type.
// (The dtype stays set when autocast is switched off: 1.13's CPU autocast accepts only bfloat16.)
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
void enable_autocast(torch::DeviceType device, torch::ScalarType dtype) {
  at::autocast::set_autocast_dtype(device, dtype);
  at::autocast::set_autocast_enabled(device, true);
}
void disable_autocast(torch::DeviceType device) { at::autocast::set_autocast_enabled(device, false); }
#else
void enable_autocast(torch::DeviceType device, torch::ScalarType dtype) {
  if (device == torch::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
  }
}
void disable_autocast(torch::DeviceType device) {
  if (device == torch::kCUDA) {
    at::autocast::set_enabled(false);
  } else {
    at::autocast::set_cpu_enabled(false);
  }
}
#endif

// The backbone and add-on layers in the process's mixed precision (set_precision), and nothing
// else: a distance is a difference of nearly equal sums (|z|² − 2z·p + |p|²) and the
// similarity's log ratio magnifies its error near 0, so distances, similarities and logits are
// float32, as is whatever a caller computes around the model (the last-layer solver's products).
// On leaving, autocast's cache of cast weights is cleared, as torch.autocast does: weights change
// between training steps.
class PrecisionRegion {
 public:
  explicit PrecisionRegion(torch::DeviceType device) : device_(device), dtype_(precision) {
    if (dtype_ != torch::kFloat) enable_autocast(device_, dtype_);
  }
  ~PrecisionRegion() {
    if (dtype_ == torch::kFloat) return;
    disable_autocast(device_);
    at::autocast::clear_cache();
  }
  PrecisionRegion(const PrecisionRegion&) = delete;
  PrecisionRegion& operator=(const PrecisionRegion&) = delete;

 private:
  torch::DeviceType device_;
  torch::ScalarType dtype_;
};

torch::nn::Conv2d conv1x1(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1));
}
}  // namespace

torch::Tensor similarity(const torch::Tensor& distances, Activation activation) {
  return activation == Activation::kLog ? similarity_from_distance(distances) : -distances;
}

torch::Tensor ProtoPNetImpl::similarity(const torch::Tensor& distances) const {
  return model::similarity(distances, options_.activation);
}


torch::nn::Sequential make_add_on_layers(int64_t in_channels, int64_t dim, AddOnType type) {
  torch::nn::Sequential seq;
  if (type == AddOnType::kRegular) {
    seq->push_back(conv1x1(in_channels, dim));
    seq->push_back(torch::nn::ReLU());
    seq->push_back(conv1x1(dim, dim));
    seq->push_back(torch::nn::Sigmoid());
  } else {
    int64_t in = in_channels;
    while (in > dim || seq->size() == 0) {
      const int64_t out = std::max(dim, in / 2);
      seq->push_back(conv1x1(in, out));
      seq->push_back(torch::nn::ReLU());
      seq->push_back(conv1x1(out, out));
      if (out > dim) {
        seq->push_back(torch::nn::ReLU());
      } else {
        seq->push_back(torch::nn::Sigmoid());
      }
      in /= 2;
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& m : seq->modules(false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      torch::nn::init::zeros_(c->bias);
    }
  }
  return seq;
}

torch::Tensor similarity_from_distance(const torch::Tensor& distances) {
  return torch::log((distances + 1) / (distances + kSimilarityEpsilon));
}

ProtoPNetImpl::ProtoPNetImpl(const ProtoPNetOptions& options) : options_(options) {
  if (options.num_classes < 1 || options.prototypes_per_class < 1 || options.prototype_dim < 1) {
    throw std::invalid_argument(
        "classes, prototypes per class and prototype depth must all be at least 1");
  }
  features_ = register_module("features", make_backbone(options.arch));
  add_on_layers_ = register_module(
      "add_on_layers",
      make_add_on_layers(features_->out_channels(), options.prototype_dim, options.add_on));
  const int64_t p = options.num_classes * options.prototypes_per_class;
  prototype_vectors_ =
      register_parameter("prototype_vectors", torch::rand({p, options.prototype_dim, 1, 1}));
  last_layer_ = register_module(
      "last_layer",
      torch::nn::Linear(torch::nn::LinearOptions(p, options.num_classes).bias(false)));
  auto identity = torch::zeros({p, options.num_classes});
  for (int64_t j = 0; j < p; ++j) identity[j][j / options.prototypes_per_class] = 1.0;
  prototype_class_identity_ = register_buffer("prototype_class_identity", identity);
  set_last_layer_connections();
}

void ProtoPNetImpl::set_last_layer_connections(double incorrect) {
  torch::NoGradGuard no_grad;
  const auto own = prototype_class_identity_.t();  // C×P
  last_layer_->weight.copy_(own + incorrect * (1 - own));
}

std::vector<int64_t> ProtoPNetImpl::prototype_classes() const {
  const auto classes = prototype_class_identity_.argmax(1).to(torch::kCPU, torch::kInt64).contiguous();
  return {classes.data_ptr<int64_t>(), classes.data_ptr<int64_t>() + classes.numel()};
}

void ProtoPNetImpl::keep_prototypes(const std::vector<int64_t>& keep) {
  const int64_t P = num_prototypes();
  std::vector<bool> seen(static_cast<size_t>(P), false);
  for (int64_t j : keep) {
    if (j < 0 || j >= P) throw std::invalid_argument("keep_prototypes: index " + std::to_string(j) + " out of range");
    if (seen[static_cast<size_t>(j)]) throw std::invalid_argument("keep_prototypes: index " + std::to_string(j) + " twice");
    seen[static_cast<size_t>(j)] = true;
  }
  torch::NoGradGuard no_grad;
  const auto index = torch::tensor(keep, torch::kInt64).to(prototype_vectors_.device());
  prototype_vectors_.set_data(prototype_vectors_.index_select(0, index));
  prototype_class_identity_.set_data(prototype_class_identity_.index_select(0, index));
  last_layer_->weight.set_data(last_layer_->weight.index_select(1, index));
  last_layer_->options.in_features(static_cast<int64_t>(keep.size()));
}

void set_channels_last(bool on) { channels_last = on; }

void set_precision(torch::ScalarType dtype) {
  if (dtype != torch::kFloat && dtype != torch::kBFloat16 && dtype != torch::kHalf) {
    throw std::invalid_argument("precision must be float32, bfloat16 or float16");
  }
  precision = dtype;
}

torch::Tensor ProtoPNetImpl::in_layout(const torch::Tensor& images) {
  if (!channels_last) return images;
  // Weights loaded or created since the last call arrive in the default layout.
  for (torch::nn::Module* module : {static_cast<torch::nn::Module*>(features_.get()), static_cast<torch::nn::Module*>(add_on_layers_.ptr().get())}) {
    for (auto& p : module->parameters()) {
      if (p.dim() == 4 && !p.is_contiguous(at::MemoryFormat::ChannelsLast)) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
  return images.contiguous(at::MemoryFormat::ChannelsLast);
}

torch::Tensor ProtoPNetImpl::latent(const torch::Tensor& images) {
  const PrecisionRegion amp(images.device().type());
  return add_on_layers_->forward(features_->forward(in_layout(images)));
}

torch::Tensor ProtoPNetImpl::distances(const torch::Tensor& latent_any) {
  const auto latent = latent_any.to(prototype_vectors_.scalar_type()).contiguous();  // float32 under --amp
  const auto z2 = (latent * latent).sum(1, /*keepdim=*/true);
  const auto p2 = (prototype_vectors_ * prototype_vectors_).sum({1, 2, 3}).view({1, -1, 1, 1});
  const auto zp = torch::conv2d(latent, prototype_vectors_);
  // Same order of operations as the reference, so rounding agrees too.
  return torch::relu(z2 + (-2 * zp + p2));
}

torch::Tensor ProtoPNetImpl::paired_distances(const torch::Tensor& latent_any) {
  const auto latent = latent_any.to(prototype_vectors_.scalar_type());
  const auto p = prototype_vectors_.view({num_prototypes(), -1, 1, 1});
  return torch::relu((latent * latent).sum(1) + (-2 * (latent * p).sum(1) + (p * p).sum(1)));
}

ProtoPNetOutput ProtoPNetImpl::head(const torch::Tensor& backbone_features) {
  return classify(distances(add_on_layers_->forward(backbone_features)));
}

ProtoPNetOutput ProtoPNetImpl::classify(const torch::Tensor& d) {
  auto min_d = std::get<0>(d.flatten(2).min(2));
  auto logits = last_layer_(similarity(min_d));
  return {logits, min_d};
}

ProtoPNetOutput ProtoPNetImpl::forward(const torch::Tensor& images) {
  return classify(distances(latent(images)));
}

ProtoPNetActivations ProtoPNetImpl::activations(const torch::Tensor& images) {
  auto z = latent(images);
  auto d = distances(z);
  return {z, d};
}

ReceptiveField ProtoPNetImpl::receptive_field(int64_t img_size) const {
  auto layers = features_->layers();
  layers.push_back({1, 1, 0});  // the 1×1 prototype "kernel"
  return compute_receptive_field(img_size, layers);
}

}  // namespace ppnet::model
