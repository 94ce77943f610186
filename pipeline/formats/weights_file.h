#pragma once
// Pretrained weights files: format detection, reading, and loading into a backbone.

#include <string>

#include "model/backbone.h"
#include "model/state_dict.h"

namespace ppnet::pipeline {

enum class WeightsFormat { kSafetensors, kTorchZip };

/// Decides by content: a zip archive is a torch.save file; a legacy torch.save pickle is
/// refused with the conversion command; anything else is read as safetensors.
WeightsFormat detect_weights_format(const std::string& path);

/// Reads every tensor of a weights file of either format. Throws std::runtime_error naming
/// the file and what is wrong with it.
model::TensorMap read_weights_file(const std::string& path, WeightsFormat* format = nullptr);

/// Reads `path` and loads it into `backbone` (see model::load_torchvision_state). Throws
/// std::runtime_error "<path>: <arch>: …" naming the key and shapes when it does not fit.
model::StateLoadResult load_backbone_weights(model::BackboneImpl& backbone, const std::string& path,
                                             WeightsFormat* format = nullptr);

}  // namespace ppnet::pipeline
