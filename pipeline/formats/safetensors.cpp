#include "pipeline/formats/safetensors.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace ppnet::pipeline {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit is 100 MB

struct Entry {
  std::string name;
  torch::Dtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

bool dtype_of(const std::string& s, torch::Dtype* dtype) {
  static const std::map<std::string, torch::Dtype> kTypes = {
      {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
      {"BF16", torch::kBFloat16}, {"I64", torch::kInt64}, {"I32", torch::kInt32},
      {"I16", torch::kInt16},   {"I8", torch::kInt8},     {"U8", torch::kUInt8},
      {"BOOL", torch::kBool}};
  auto it = kTypes.find(s);
  if (it == kTypes.end()) return false;
  *dtype = it->second;
  return true;
}

Entry parse_entry(const std::string& name, const nlohmann::json& j, uint64_t data_size) {
  auto fail = [&](const std::string& what) -> std::runtime_error {
    return std::runtime_error("tensor '" + name + "': " + what);
  };
  if (!j.is_object()) throw fail("header entry is not a JSON object");
  Entry e{name, torch::kFloat32, {}, 0, 0};
  if (!j.contains("dtype") || !j["dtype"].is_string()) throw fail("missing string field 'dtype'");
  if (!dtype_of(j["dtype"].get<std::string>(), &e.dtype)) {
    throw fail("unsupported dtype '" + j["dtype"].get<std::string>() +
               "' (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");
  }
  if (!j.contains("shape") || !j["shape"].is_array()) throw fail("missing array field 'shape'");
  uint64_t numel = 1;
  for (const auto& d : j["shape"]) {
    if (!d.is_number_unsigned()) throw fail("shape has a dimension that is not a non-negative integer");
    const uint64_t v = d.get<uint64_t>();
    if (v > (1ull << 62) || __builtin_mul_overflow(numel, v, &numel)) throw fail("shape is too large");
    e.shape.push_back(static_cast<int64_t>(v));
  }
  const auto& off = j.contains("data_offsets") ? j["data_offsets"] : nlohmann::json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned()) {
    throw fail("'data_offsets' must be two non-negative integers");
  }
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  if (e.begin > e.end || e.end > data_size) {
    throw fail("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
               "] fall outside the " + std::to_string(data_size) + " data bytes of the file");
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(torch::elementSize(e.dtype)), &bytes) ||
      bytes != e.end - e.begin) {
    throw fail("shape " + model::shape_string(e.shape) + " of " + j["dtype"].get<std::string>() +
               " needs " + std::to_string(bytes) + " bytes but data_offsets span " +
               std::to_string(e.end - e.begin));
  }
  return e;
}

}  // namespace

model::TensorMap read_safetensors(const std::string& path) {
  try {
    std::error_code ec;
    const uint64_t file_size = std::filesystem::file_size(path, ec);
    if (ec) throw std::runtime_error("cannot read file: " + ec.message());
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open file");
    if (file_size < 8) {
      throw std::runtime_error("file is " + std::to_string(file_size) +
                               " bytes, too short for a safetensors header");
    }
    unsigned char len_bytes[8];
    in.read(reinterpret_cast<char*>(len_bytes), 8);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
    if (header_len > file_size - 8 || header_len > kMaxHeaderBytes) {
      throw std::runtime_error("header length " + std::to_string(header_len) +
                               " does not fit in a file of " + std::to_string(file_size) +
                               " bytes: not a safetensors file, or a truncated one");
    }
    std::string header(header_len, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_len));
    if (!in) throw std::runtime_error("could not read the header");
    const auto json = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) {
      throw std::runtime_error("header is not a JSON object: not a safetensors file, or a corrupt one");
    }

    const uint64_t data_size = file_size - 8 - header_len;
    std::vector<Entry> entries;
    for (const auto& [name, value] : json.items()) {
      if (name == "__metadata__") continue;
      entries.push_back(parse_entry(name, value, data_size));
    }
    auto sorted = entries;
    std::sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
    for (size_t i = 1; i < sorted.size(); ++i) {
      if (sorted[i].begin < sorted[i - 1].end) {
        throw std::runtime_error("tensors '" + sorted[i - 1].name + "' and '" + sorted[i].name +
                                 "' overlap in the data");
      }
    }

    model::TensorMap out;
    const uint64_t data_start = 8 + header_len;
    for (const Entry& e : entries) {
      auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
      in.seekg(static_cast<std::streamoff>(data_start + e.begin));
      in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.end - e.begin));
      if (!in) throw std::runtime_error("could not read the data of tensor '" + e.name + "'");
      out.emplace(e.name, std::move(t));
    }
    return out;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

std::string safetensors_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  static const std::map<torch::Dtype, const char*> kNames = {
      {torch::kFloat64, "F64"}, {torch::kFloat32, "F32"}, {torch::kFloat16, "F16"}, {torch::kBFloat16, "BF16"},
      {torch::kInt64, "I64"},   {torch::kInt32, "I32"},   {torch::kInt16, "I16"},   {torch::kInt8, "I8"},
      {torch::kUInt8, "U8"},    {torch::kBool, "BOOL"}};
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto it = kNames.find(t.scalar_type());
    if (it == kNames.end()) throw std::invalid_argument("tensor '" + name + "': its dtype has no safetensors name");
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t n = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", it->second}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(c);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string out(8, '\0');
  const uint64_t length = h.size();
  std::memcpy(out.data(), &length, 8);
  out += h;
  out.reserve(out.size() + offset);
  for (const auto& c : data) out.append(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * c.element_size());
  return out;
}

}  // namespace ppnet::pipeline
