#pragma once
// Reader for zip-format torch.save files (PyTorch 1.6 and later) that hold tensors in dicts.

#include <string>

#include "model/state_dict.h"

namespace ppnet::pipeline {

/// Reads a zip-format torch.save file whose top-level object is a dict (plain or the
/// OrderedDict that `model.state_dict()` returns) of name → tensor. A dict that holds a
/// "state_dict" or "model" dict (a training checkpoint) is unwrapped; entries that are not
/// tensors are skipped. Tensors come back contiguous on the CPU in their stored dtype.
///
/// The pickle is interpreted by a small, bounds-checked machine that understands only what
/// torch.save writes for tensors and dicts (it runs no Python), so LibTorch's own
/// torch::pickle_load limitations (no OrderedDict) do not apply. Throws std::runtime_error
/// "<path>: <what is wrong>" for anything else, including legacy (pre-1.6) files, for which the
/// message carries the one-line Python conversion to run.
model::TensorMap read_torch_save(const std::string& path);

/// True when the first bytes are those of a legacy (pre-1.6, non-zip) torch.save file.
bool is_legacy_torch_save(const std::string& first_bytes);

/// The command that converts a legacy torch.save file to the zip format ppnet reads.
std::string legacy_conversion_command(const std::string& path);

}  // namespace ppnet::pipeline
