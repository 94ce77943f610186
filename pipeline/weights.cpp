#include "pipeline/weights.h"

#include <torch/torch.h>

#include <fstream>
#include <stdexcept>

#include "pipeline/commands.h"
#include "pipeline/runtime.h"
#include "pipeline/safetensors.h"
#include "pipeline/torch_pickle.h"

namespace ppnet::pipeline {

WeightsFormat detect_weights_format(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open weights file");
  std::string head(4, '\0');
  in.read(head.data(), 4);
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.rfind("PK", 0) == 0 || is_legacy_torch_save(head)) return WeightsFormat::kTorchZip;
  return WeightsFormat::kSafetensors;
}

model::TensorMap read_weights_file(const std::string& path, WeightsFormat* format) {
  const WeightsFormat f = detect_weights_format(path);
  if (format) *format = f;
  return f == WeightsFormat::kTorchZip ? read_torch_save(path) : read_safetensors(path);
}

model::StateLoadReport load_backbone_weights(model::BackboneImpl& backbone, const std::string& path,
                                             WeightsFormat* format) {
  const auto tensors = read_weights_file(path, format);
  try {
    return model::load_torchvision_state(backbone, tensors);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not weights for " + backbone.arch() + ": " + e.what());
  }
}

WeightsReport run_weights(const WeightsConfig& config) {
  const Runtime rt = start_runtime(config.runtime);
  auto backbone = model::make_backbone(config.arch);
  WeightsFormat format;
  const auto loaded = load_backbone_weights(*backbone, config.weights, &format);

  WeightsReport r;
  r.arch = config.arch;
  r.file = config.weights;
  r.format = format == WeightsFormat::kSafetensors ? "safetensors" : "torch.save (zip)";
  r.tensors_loaded = loaded.loaded;
  r.parameters = loaded.parameters;
  r.ignored = loaded.ignored;
  r.defaulted = loaded.defaulted;
  const auto rf = model::compute_receptive_field(config.img_size, backbone->layers());
  r.out_channels = backbone->out_channels();
  r.grid = rf.n;
  r.receptive_field = rf.r;
  r.img_size = config.img_size;
  r.threads = rt.threads;
  return r;
}

}  // namespace ppnet::pipeline
