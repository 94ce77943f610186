#pragma once
// `ppnet export`: a run's latest model as a state dict that Python reads, with a JSON beside it
// saying what the model is.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <string>

#include "pipeline/runtime/runtime_config.h"

namespace ppnet::pipeline {

struct ExportConfig {
  std::string run;
  std::string out;                     // the state dict file; the JSON goes to out with extension .json
  std::string format = "safetensors";  // or "pth": a zip-format torch.save of an OrderedDict
  std::string names = "reference";     // or "ppnet"
  bool json = false;
  RuntimeConfig runtime;
};

struct ExportResult {
  std::string run, out, description;  // description: the JSON file beside `out`
  std::string format, names;
  std::string checkpoint;  // the run's checkpoint exported (relative to the run)
  int64_t stage_id = 0;    // the stage that wrote it (0: the model as created)
  int64_t tensors = 0, bytes = 0;
  std::string sha256;  // of `out`
  double seconds = 0;
};

/// Writes the model as the run's latest finished stage left it. Names "reference": the
/// reference implementation's state_dict() (features.*, add_on_layers.*, prototype_vectors,
/// ones, last_layer.weight), so that `ppnet.load_state_dict(sd, strict=True)` takes it; "ppnet":
/// ppnet's own (prototype_class_identity instead of ones). The JSON holds the architecture,
/// image size, prototype shape, activation, add-on type, each prototype's class, the class
/// names, the input's mean and std, and the latest projection's records. Both files are written
/// atomically; the run is only read.
ExportResult run_export(const ExportConfig& config);

}  // namespace ppnet::pipeline
