#include "pipeline/formats/weights_file.h"

#include <fstream>
#include <stdexcept>

#include "pipeline/formats/safetensors.h"
#include "pipeline/formats/torch_pickle.h"

namespace ppnet::pipeline {

WeightsFormat detect_weights_format(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open weights file");
  std::string head(4, '\0');
  in.read(head.data(), 4);
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.rfind("PK", 0) == 0) return WeightsFormat::kTorchSaveZip;
  if (is_legacy_torch_save(head)) return WeightsFormat::kTorchSaveLegacy;
  return WeightsFormat::kSafetensors;
}

const char* weights_format_name(WeightsFormat format) {
  switch (format) {
    case WeightsFormat::kSafetensors: return "safetensors";
    case WeightsFormat::kTorchSaveZip: return "torch.save (zip)";
    case WeightsFormat::kTorchSaveLegacy: return "torch.save (legacy)";
  }
  return "?";
}

model::TensorMap read_weights_file(const std::string& path, WeightsFormat* format) {
  const WeightsFormat f = detect_weights_format(path);
  if (format) *format = f;
  return f == WeightsFormat::kSafetensors ? read_safetensors(path) : read_torch_save(path);
}

model::StateLoadResult load_backbone_weights(model::BackboneImpl& backbone, const std::string& path,
                                             WeightsFormat* format) {
  const auto tensors = read_weights_file(path, format);
  try {
    return model::load_torchvision_state(backbone, tensors);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not weights for " + backbone.arch() + ": " + e.what());
  }
}

}  // namespace ppnet::pipeline
