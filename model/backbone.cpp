#include "model/backbone.h"

#include <torch/torch.h>

#include <map>
#include <stdexcept>

namespace ppnet::model {
namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;
using torch::nn::MaxPool2d;
using torch::nn::MaxPool2dOptions;
using torch::nn::ReLU;
using torch::nn::ReLUOptions;
using torch::nn::Sequential;

Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, bool bias) {
  return Conv2d(Conv2dOptions(in, out, k).stride(s).padding(p).bias(bias));
}
ReLU relu() { return ReLU(ReLUOptions(true)); }
MaxPool2d max_pool(int64_t k, int64_t s, int64_t p) {
  return MaxPool2d(MaxPool2dOptions(k).stride(s).padding(p));
}

// ---------------------------------------------------------------- VGG (and "small")

constexpr int kPool = 0;  // an "M" entry in torchvision's VGG configurations

class VggImpl : public BackboneImpl {
 public:
  VggImpl(std::string arch, const std::vector<int>& cfg, bool batch_norm) {
    arch_ = std::move(arch);
    Sequential f;
    int64_t in = 3;
    for (int v : cfg) {
      if (v == kPool) {
        f->push_back(max_pool(2, 2, 0));
        layers_.push_back({2, 2, 0});
        continue;
      }
      f->push_back(conv(in, v, 3, 1, 1, true));
      if (batch_norm) f->push_back(BatchNorm2d(v));
      f->push_back(relu());
      layers_.push_back({3, 1, 1});
      in = v;
    }
    features_ = register_module("features", f);
    out_channels_ = in;
  }
  torch::Tensor forward(torch::Tensor x) override { return features_->forward(x); }

 private:
  Sequential features_;
};

// ---------------------------------------------------------------- ResNet

// The 1×1 conv + BN shortcut of a block that changes resolution or width.
Sequential projection(int64_t in, int64_t out, int64_t stride) {
  return Sequential(conv(in, out, 1, stride, 0, false), BatchNorm2d(out));
}

class BasicBlockImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1_(register_module("conv1", conv(in, planes, 3, stride, 1, false))),
        bn1_(register_module("bn1", BatchNorm2d(planes))),
        conv2_(register_module("conv2", conv(planes, planes, 3, 1, 1, false))),
        bn2_(register_module("bn2", BatchNorm2d(planes))) {
    if (stride != 1 || in != planes * kExpansion) {
      downsample_ = register_module("downsample", projection(in, planes * kExpansion, stride));
    }
  }
  static std::vector<ConvInfo> conv_info(int64_t stride) { return {{3, stride, 1}, {3, 1, 1}}; }
  torch::Tensor forward(torch::Tensor x) {
    auto out = torch::relu(bn1_(conv1_(x)));
    out = bn2_(conv2_(out));
    return torch::relu(out + (downsample_ ? downsample_->forward(x) : x));
  }

 private:
  Conv2d conv1_;
  BatchNorm2d bn1_;
  Conv2d conv2_;
  BatchNorm2d bn2_;
  Sequential downsample_{nullptr};
};

// torchvision's "ResNet v1.5" bottleneck: the stride sits on the 3×3 convolution.
class BottleneckImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1_(register_module("conv1", conv(in, planes, 1, 1, 0, false))),
        bn1_(register_module("bn1", BatchNorm2d(planes))),
        conv2_(register_module("conv2", conv(planes, planes, 3, stride, 1, false))),
        bn2_(register_module("bn2", BatchNorm2d(planes))),
        conv3_(register_module("conv3", conv(planes, planes * kExpansion, 1, 1, 0, false))),
        bn3_(register_module("bn3", BatchNorm2d(planes * kExpansion))) {
    if (stride != 1 || in != planes * kExpansion) {
      downsample_ = register_module("downsample", projection(in, planes * kExpansion, stride));
    }
  }
  static std::vector<ConvInfo> conv_info(int64_t stride) {
    return {{1, 1, 0}, {3, stride, 1}, {1, 1, 0}};
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = torch::relu(bn1_(conv1_(x)));
    out = torch::relu(bn2_(conv2_(out)));
    out = bn3_(conv3_(out));
    return torch::relu(out + (downsample_ ? downsample_->forward(x) : x));
  }

 private:
  Conv2d conv1_;
  BatchNorm2d bn1_;
  Conv2d conv2_;
  BatchNorm2d bn2_;
  Conv2d conv3_;
  BatchNorm2d bn3_;
  Sequential downsample_{nullptr};
};

class ResNetImpl : public BackboneImpl {
 public:
  template <class Block>
  static std::shared_ptr<ResNetImpl> make(std::string arch, const std::vector<int64_t>& blocks) {
    auto net = std::make_shared<ResNetImpl>(std::move(arch));
    int64_t in = 64;
    const int64_t planes[] = {64, 128, 256, 512};
    for (size_t l = 0; l < 4; ++l) {
      Sequential layer;
      for (int64_t b = 0; b < blocks[l]; ++b) {
        const int64_t stride = (b == 0 && l > 0) ? 2 : 1;
        layer->push_back(std::make_shared<Block>(in, planes[l], stride));
        for (const ConvInfo& c : Block::conv_info(stride)) net->layers_.push_back(c);
        in = planes[l] * Block::kExpansion;
      }
      net->stages_.push_back(net->register_module("layer" + std::to_string(l + 1), layer));
    }
    net->out_channels_ = in;
    return net;
  }

  explicit ResNetImpl(std::string arch)
      : conv1_(register_module("conv1", conv(3, 64, 7, 2, 3, false))),
        bn1_(register_module("bn1", BatchNorm2d(64))) {
    arch_ = std::move(arch);
    layers_ = {{7, 2, 3}, {3, 2, 1}};
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = torch::max_pool2d(torch::relu(bn1_(conv1_(x))), 3, 2, 1);
    for (auto& stage : stages_) x = stage->forward(x);
    return x;
  }

 private:
  Conv2d conv1_;
  BatchNorm2d bn1_;
  std::vector<Sequential> stages_;
};

// ---------------------------------------------------------------- DenseNet

class DenseLayerImpl : public torch::nn::Module {
 public:
  DenseLayerImpl(int64_t in, int64_t growth, int64_t bn_size)
      : norm1_(register_module("norm1", BatchNorm2d(in))),
        conv1_(register_module("conv1", conv(in, bn_size * growth, 1, 1, 0, false))),
        norm2_(register_module("norm2", BatchNorm2d(bn_size * growth))),
        conv2_(register_module("conv2", conv(bn_size * growth, growth, 3, 1, 1, false))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return conv2_(torch::relu(norm2_(conv1_(torch::relu(norm1_(x))))));
  }

 private:
  BatchNorm2d norm1_;
  Conv2d conv1_;
  BatchNorm2d norm2_;
  Conv2d conv2_;
};
TORCH_MODULE(DenseLayer);

class DenseBlockImpl : public torch::nn::Module {
 public:
  DenseBlockImpl(int64_t layers, int64_t in, int64_t growth, int64_t bn_size) {
    for (int64_t i = 0; i < layers; ++i) {
      layers_.push_back(register_module("denselayer" + std::to_string(i + 1),
                                        DenseLayer(in + i * growth, growth, bn_size)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    std::vector<torch::Tensor> features{std::move(x)};
    for (auto& layer : layers_) features.push_back(layer->forward(torch::cat(features, 1)));
    return torch::cat(features, 1);
  }

 private:
  std::vector<DenseLayer> layers_;
};
TORCH_MODULE(DenseBlock);

class TransitionImpl : public torch::nn::Module {
 public:
  TransitionImpl(int64_t in, int64_t out)
      : norm_(register_module("norm", BatchNorm2d(in))),
        conv_(register_module("conv", conv(in, out, 1, 1, 0, false))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::avg_pool2d(conv_(torch::relu(norm_(x))), 2, 2);
  }

 private:
  BatchNorm2d norm_;
  Conv2d conv_;
};
TORCH_MODULE(Transition);

class DenseNetImpl : public BackboneImpl {
 public:
  DenseNetImpl(std::string arch, int64_t growth, const std::vector<int64_t>& blocks,
               int64_t init_features) {
    constexpr int64_t kBnSize = 4;
    arch_ = std::move(arch);
    Sequential f;
    f->push_back("conv0", conv(3, init_features, 7, 2, 3, false));
    f->push_back("norm0", BatchNorm2d(init_features));
    f->push_back("relu0", relu());
    f->push_back("pool0", max_pool(3, 2, 1));
    layers_ = {{7, 2, 3}, {3, 2, 1}};
    int64_t c = init_features;
    for (size_t b = 0; b < blocks.size(); ++b) {
      f->push_back("denseblock" + std::to_string(b + 1), DenseBlock(blocks[b], c, growth, kBnSize));
      for (int64_t i = 0; i < blocks[b]; ++i) {
        layers_.push_back({1, 1, 0});
        layers_.push_back({3, 1, 1});
      }
      c += blocks[b] * growth;
      if (b + 1 == blocks.size()) break;
      f->push_back("transition" + std::to_string(b + 1), Transition(c, c / 2));
      layers_.push_back({1, 1, 0});
      layers_.push_back({2, 2, 0});
      c /= 2;
    }
    f->push_back("norm5", BatchNorm2d(c));
    features_ = register_module("features", f);
    out_channels_ = c;
  }
  // torchvision applies the ReLU after norm5 in forward(); the reference keeps it.
  torch::Tensor forward(torch::Tensor x) override { return torch::relu(features_->forward(x)); }

 private:
  Sequential features_;
};

// ---------------------------------------------------------------- registry

const std::map<std::string, std::vector<int>>& vgg_configs() {
  static const std::map<std::string, std::vector<int>> kConfigs = {
      {"vgg11", {64, kPool, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool}},
      {"vgg13",
       {64, 64, kPool, 128, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool}},
      {"vgg16", {64, 64, kPool, 128, 128, kPool, 256, 256, 256, kPool, 512, 512, 512, kPool, 512,
                 512, 512, kPool}},
      {"vgg19", {64, 64, kPool, 128, 128, kPool, 256, 256, 256, 256, kPool, 512, 512, 512, 512,
                 kPool, 512, 512, 512, 512, kPool}},
  };
  return kConfigs;
}

std::shared_ptr<BackboneImpl> build(const std::string& arch) {
  const std::string base = arch.size() > 3 && arch.substr(arch.size() - 3) == "_bn"
                               ? arch.substr(0, arch.size() - 3)
                               : arch;
  if (auto it = vgg_configs().find(base); it != vgg_configs().end()) {
    return std::make_shared<VggImpl>(arch, it->second, base != arch);
  }
  if (base == "small") return std::make_shared<VggImpl>(arch, std::vector<int>{32, kPool, 64, kPool, 128}, base != arch);
  if (arch == "resnet18") return ResNetImpl::make<BasicBlockImpl>(arch, {2, 2, 2, 2});
  if (arch == "resnet34") return ResNetImpl::make<BasicBlockImpl>(arch, {3, 4, 6, 3});
  if (arch == "resnet50") return ResNetImpl::make<BottleneckImpl>(arch, {3, 4, 6, 3});
  if (arch == "resnet101") return ResNetImpl::make<BottleneckImpl>(arch, {3, 4, 23, 3});
  if (arch == "resnet152") return ResNetImpl::make<BottleneckImpl>(arch, {3, 8, 36, 3});
  if (arch == "densenet121") return std::make_shared<DenseNetImpl>(arch, 32, std::vector<int64_t>{6, 12, 24, 16}, 64);
  if (arch == "densenet161") return std::make_shared<DenseNetImpl>(arch, 48, std::vector<int64_t>{6, 12, 36, 24}, 96);
  if (arch == "densenet169") return std::make_shared<DenseNetImpl>(arch, 32, std::vector<int64_t>{6, 12, 32, 32}, 64);
  if (arch == "densenet201") return std::make_shared<DenseNetImpl>(arch, 32, std::vector<int64_t>{6, 12, 48, 32}, 64);
  return nullptr;
}

}  // namespace

std::shared_ptr<BackboneImpl> make_backbone(const std::string& arch) {
  auto net = build(arch);
  if (!net) {
    std::string known;
    for (const auto& n : backbone_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown architecture '" + arch + "' (known: " + known + ")");
  }
  init_like_torchvision(*net, arch);
  return net;
}

void init_like_torchvision(torch::nn::Module& module, const std::string& arch) {
  const torch::nn::init::FanModeType mode =
      arch.rfind("densenet", 0) == 0 ? torch::nn::init::FanModeType(torch::kFanIn) : torch::nn::init::FanModeType(torch::kFanOut);
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, mode, torch::kReLU);
      if (c->bias.defined()) torch::nn::init::zeros_(c->bias);
    } else if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    }
  }
}

}  // namespace ppnet::model
