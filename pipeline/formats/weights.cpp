#include "pipeline/formats/weights.h"

#include <torch/torch.h>

#include "pipeline/formats/weights_file.h"
#include "pipeline/runtime/runtime.h"

namespace ppnet::pipeline {

WeightsResult run_weights(const WeightsConfig& config) {
  const Runtime rt = start_runtime(config.runtime);
  auto backbone = model::make_backbone(config.arch);
  WeightsFormat format;
  const auto loaded = load_backbone_weights(*backbone, config.weights, &format);

  WeightsResult r;
  r.arch = config.arch;
  r.file = config.weights;
  r.format = weights_format_name(format);
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
