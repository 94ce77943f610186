#pragma once
// `ppnet import`: a run from a ProtoPNet trained elsewhere (the reference implementation's
// whole pickled model, or its state dict), so that every later command works on it.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/runtime/runtime_config.h"

namespace ppnet::pipeline {

struct ImportConfig {
  std::string reference;  // the model file
  std::string run;        // a new run folder
  std::string data;       // optional: the prepared data it was trained on (its classes are the run's)
  std::string class_names;  // optional, without data: a file with one class name per line, in class order
  // What a state dict cannot say (a whole model says it itself; given, they must agree).
  std::string arch;
  int img_size = 0;
  std::string activation;
  bool json = false;
  RuntimeConfig runtime;
};

struct ImportResult {
  std::string run, reference;
  std::string sha256;  // of the reference file
  std::string format;  // "whole model (zip torch.save)", "state dict (safetensors)", …
  std::string arch, add_on, activation;
  int img_size = 0;
  int64_t classes = 0, prototypes = 0, prototype_dim = 0;
  std::string class_names_from;  // "data", "file" (--class-names), "description" (ppnet export's JSON) or "numbers"
  std::vector<std::string> found;
  int64_t stage_id = 0;
  std::string checkpoint;  // relative to the run
  double seconds = 0;
};

/// Reads `config.reference` (pipeline/formats/reference_model.h), loads every tensor into a
/// ppnet model of the architecture found (strictly: a tensor missing, left over or of another
/// shape is an error naming it), and creates the run in `config.run`, which must not hold one
/// yet: the model as the final checkpoint of a first stage of kind "import" whose record names
/// the source file, its SHA-256, its format and what was found. Nothing is written to the run
/// before the file has been read and checked; killed at any moment, the folder holds either no
/// run or the whole imported one.
ImportResult run_import(const ImportConfig& config);

}  // namespace ppnet::pipeline
