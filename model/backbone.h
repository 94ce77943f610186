#pragma once
// CNN feature extractors, cut where the reference ProtoPNet cuts them.

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "model/names.h"
#include "model/receptive_field.h"

namespace ppnet::model {

/// A backbone `f`: B×3×H×W float images → B×out_channels()×H'×W' features.
///
/// Parameter and buffer names are torchvision's ("features.0.weight" for VGG,
/// "layer1.0.conv1.weight" for ResNet, "features.denseblock1.denselayer1.norm1.weight" for
/// DenseNet), so torchvision and timm state dicts load without renaming. Convolutions start
/// with torchvision's initialisation (Kaiming-normal fan_out, zero bias; BatchNorm 1 and 0).
class BackboneImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;

  const std::string& arch() const { return arch_; }
  int64_t out_channels() const { return out_channels_; }
  /// Kernel, stride and padding of each layer on the path that sets the receptive field.
  const std::vector<ConvInfo>& layers() const { return layers_; }

 protected:
  std::string arch_;
  int64_t out_channels_ = 0;
  std::vector<ConvInfo> layers_;
};

/// Builds a freshly initialised backbone. Throws std::invalid_argument naming the known
/// architectures when `arch` is not one of them.
std::shared_ptr<BackboneImpl> make_backbone(const std::string& arch);

/// Re-initialises every Conv2d and BatchNorm2d under `module` as torchvision's constructor of
/// `arch` does: convolutions Kaiming-normal for ReLU, fan_out for VGG and ResNet, fan_in
/// (torch's default mode) for DenseNet; BatchNorm weight 1, bias 0; conv biases 0.
void init_like_torchvision(torch::nn::Module& module, const std::string& arch);

}  // namespace ppnet::model
