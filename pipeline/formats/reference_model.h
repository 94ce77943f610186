#pragma once
// A ProtoPNet trained by the reference implementation (cfchen-duke/ProtoPNet, or a fork that
// keeps its classes) read without Python: the whole model `torch.save(ppnet, path)` writes, or
// its state dict.

#include <cstdint>
#include <string>
#include <vector>

#include "model/protopnet.h"
#include "model/state_dict.h"

namespace ppnet::pipeline {

/// What a reference model file holds, in ppnet's terms.
struct ReferenceModel {
  model::ProtoPNetOptions options;  // arch, classes, prototypes per class, dim, add-on, activation
  int img_size = 0;
  int64_t num_prototypes = 0;  // P (a pruned model's P is no multiple of the classes)
  /// Every tensor under ppnet's names (model/protopnet.h): features.*, add_on_layers.*,
  /// prototype_vectors, last_layer.weight, prototype_class_identity. The reference's `ones` is
  /// left out (a constant of its distance computation).
  model::TensorMap state;
  std::string format;              // "whole model (zip)", "state dict (legacy)", …
  std::vector<std::string> found;  // what was read, in words, for the import stage's record
  std::vector<std::string> class_names;  // from the description `ppnet export` writes beside a state dict
};

/// What the file cannot say for itself: a state dict carries no architecture name, image size
/// or activation (a whole model does, and then these must agree with it when given).
struct ReferenceHints {
  std::string arch;     // empty: from the file
  int img_size = 0;     // 0: from the file
  std::string activation;  // "log", "linear"; empty: from the file, or "log" for a state dict
};

/// Reads `path`: a torch.save file (zip or legacy) of the whole model, whose root object is of
/// a class named PPNet, or of a state dict with the reference's names (also under "module." or
/// inside {"state_dict": …}), or a .safetensors state dict. Beside a state dict, the JSON
/// `ppnet export` writes (the file's name with .json) says what the tensors cannot: the image
/// size, activation, each prototype's class and the class names; without it, a state dict whose
/// prototype count is no multiple of its classes (a pruned model) is refused. The backbone is recognised from its
/// tensors (vgg11…19 with or without BatchNorm, resnet18…152, densenet121…201), the add-on
/// layers from theirs. Throws std::runtime_error naming the file and what was found and what
/// was expected: a class ppnet does not know (by its name and place in the model), a missing
/// attribute or tensor, shapes that disagree, an activation function of the user's own.
ReferenceModel read_reference_model(const std::string& path, const ReferenceHints& hints);

/// The architecture whose tensors `state` (ppnet's names) holds, from their names and shapes;
/// empty when none matches.
std::string infer_arch(const model::TensorMap& state);

}  // namespace ppnet::pipeline
