#pragma once
// Loading pretrained weights (a name → tensor map) into a module with torchvision names.

#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace ppnet::model {

using TensorMap = std::map<std::string, torch::Tensor>;

struct StateLoadResult {
  int64_t loaded = 0;                // tensors copied into the module
  int64_t parameters = 0;            // scalar parameters in the module
  std::vector<std::string> ignored;  // classification-head keys the cut backbone has no use for
  std::vector<std::string> defaulted;  // optional buffers absent from the map (num_batches_tracked)
};

/// Copies every parameter and buffer of `module` from `weights` (dtype converted to the
/// module's, device kept). Before matching, keys lose a "module." prefix (DataParallel), old
/// DenseNet keys ("denselayer1.norm.1.weight") become current ones ("denselayer1.norm1.weight"),
/// and classification-head keys ("fc.", "classifier.", "head.", "pre_logits.") are ignored.
/// "num_batches_tracked" buffers are optional.
/// Throws std::runtime_error naming the key — with both shapes on a mismatch — when a key
/// the module needs is missing, has another shape, or the map has keys the module lacks.
/// Nothing is modified unless every check passes.
StateLoadResult load_torchvision_state(torch::nn::Module& module, const TensorMap& weights);

/// "[64, 3, 7, 7]"
std::string shape_string(at::IntArrayRef sizes);

}  // namespace ppnet::model
