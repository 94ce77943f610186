#pragma once
// Reader for Hugging Face .safetensors files.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/state_dict.h"

namespace ppnet::pipeline {

/// Reads every tensor of a .safetensors file into contiguous CPU tensors (their stored dtype).
///
/// Layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape,
/// data_offsets}} (plus optional "__metadata__"), then the data. Everything in the header is
/// validated against the file size before any tensor is allocated: header length, JSON syntax,
/// known dtype, non-negative shape whose byte size matches its offsets, offsets inside the data
/// and not overlapping. Throws std::runtime_error "<path>: <what is wrong>" otherwise; a hostile
/// file never causes an out-of-bounds read or an allocation larger than the file.
model::TensorMap read_safetensors(const std::string& path);

/// The bytes of a .safetensors file holding `tensors` (any device; written from contiguous CPU
/// copies, little-endian) in the given order, and `metadata` as its "__metadata__" (string
/// values, as the format requires). Throws std::invalid_argument for a dtype the format lacks.
std::string safetensors_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata);

}  // namespace ppnet::pipeline
