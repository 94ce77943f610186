#pragma once
// Reader for torch.save files: the zip format (PyTorch 1.6 and later) and the legacy one
// (a sequence of pickles followed by the raw storages).

#include <torch/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/state_dict.h"

namespace ppnet::pipeline {

/// A Python value as a torch.save pickle describes it. Nothing in the file is executed: a
/// class is only its name, and an object of a class (made by pickle's NEWOBJ or
/// copyreg._reconstructor) is that name plus the state pickle's BUILD gave it (for an
/// nn.Module, its __dict__: `_parameters`, `_buffers`, `_modules` and its attributes).
/// Containers refer to their items by plain pointers into the file's arena, so a hostile pickle
/// can build cycles (a dict holding itself through the memo) that neither leak nor recurse
/// when freed; a reader walking the values must bound its own depth.
struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kSet, kDict, kGlobal, kObject, kTensor };
  Kind kind = Kind::kNone;
  int64_t i = 0;  // kInt, kBool
  double f = 0;   // kFloat
  std::string s;  // kString text; kGlobal and kObject: "module.Name"
  std::vector<const PyValue*> items;                              // kTuple, kList, kSet
  std::vector<std::pair<const PyValue*, const PyValue*>> entries;  // kDict, in file order
  const PyValue* state = nullptr;  // kObject: what BUILD set (nullptr: none)
  torch::Tensor tensor;            // kTensor: contiguous, on the CPU, its stored dtype
  int depth = 1;                   // 1 + the deepest child's depth, as far as the parser saw

  /// The value of dict entry `key` (a string key); nullptr when absent or not a dict.
  const PyValue* get(const std::string& key) const;
  /// "Name" of "module.Name" (kGlobal, kObject): forks keep the reference's classes in other modules.
  std::string class_name() const;
};

/// The values of one torch.save file; they live as long as this does.
class TorchSaveFile {
 public:
  TorchSaveFile(std::shared_ptr<std::deque<PyValue>> values, const PyValue* root, bool legacy)
      : values_(std::move(values)), root_(root), legacy_(legacy) {}
  const PyValue& root() const { return *root_; }
  bool legacy() const { return legacy_; }

 private:
  std::shared_ptr<std::deque<PyValue>> values_;
  const PyValue* root_;
  bool legacy_;
};

/// Reads a torch.save file of either format into its Python values. The pickle is interpreted
/// by a small, bounds-checked machine that understands what torch.save writes for tensors,
/// containers and objects (it runs no Python and imports nothing): a call of anything but
/// the few functions torch.save uses to rebuild tensors, parameters, ordered dicts, sets and
/// objects is refused, naming it. Throws std::runtime_error "<path>: <what is wrong>".
TorchSaveFile read_torch_save_file(const std::string& path);

/// Reads a torch.save file whose top-level object is a dict (plain or the OrderedDict that
/// `model.state_dict()` returns) of name → tensor. A dict that holds a "state_dict" or
/// "model" dict (a training checkpoint) is unwrapped; entries that are not tensors are skipped.
/// Tensors come back contiguous on the CPU in their stored dtype. A whole pickled model is
/// refused with a pointer to `ppnet import`.
model::TensorMap read_torch_save(const std::string& path);
/// The same for a file already read; `path` names it in errors.
model::TensorMap tensor_dict(const TorchSaveFile& file, const std::string& path);

/// The bytes of a zip-format torch.save file that Python's `torch.load` reads as an OrderedDict
/// of name → tensor (a state dict, in the given order; each tensor a contiguous CPU storage of
/// its own). LibTorch's own torch::save writes a TorchScript archive, which torch.load does not
/// read as a dict. Throws std::invalid_argument for a dtype torch.save has no storage type for.
std::string torch_save_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

/// True when the first bytes are those of a legacy (pre-1.6, non-zip) torch.save file.
bool is_legacy_torch_save(const std::string& first_bytes);

}  // namespace ppnet::pipeline
