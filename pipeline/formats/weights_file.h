#pragma once
// Pretrained weights files: format detection, reading, and loading into a backbone.

#include <string>

#include "model/backbone.h"
#include "model/state_dict.h"

namespace ppnet::pipeline {

enum class WeightsFormat { kSafetensors, kTorchSaveZip, kTorchSaveLegacy };

/// Decides by the first bytes: a zip archive is a torch.save file of today's format, the
/// pickled magic number one of the legacy format (PyTorch < 1.6 or
/// `_use_new_zipfile_serialization=False`); anything else is read as safetensors. Throws
/// std::runtime_error naming the file when it cannot be opened.
WeightsFormat detect_weights_format(const std::string& path);

/// "safetensors", "torch.save (zip)" or "torch.save (legacy)".
const char* weights_format_name(WeightsFormat format);

/// Reads every tensor of a weights file of either format. Throws std::runtime_error naming
/// the file and what is wrong with it.
model::TensorMap read_weights_file(const std::string& path, WeightsFormat* format = nullptr);

/// Reads `path` and loads it into `backbone` (see model::load_torchvision_state). Throws
/// std::runtime_error "<path>: <arch>: …" naming the key and shapes when it does not fit.
model::StateLoadResult load_backbone_weights(model::BackboneImpl& backbone, const std::string& path,
                                             WeightsFormat* format = nullptr);

}  // namespace ppnet::pipeline
