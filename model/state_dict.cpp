#include "model/state_dict.h"

#include <torch/torch.h>

#include <regex>
#include <sstream>
#include <stdexcept>

namespace ppnet::model {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_head_key(const std::string& key) {
  for (const char* p : {"fc.", "classifier.", "head.", "pre_logits."}) {
    if (starts_with(key, p)) return true;
  }
  return false;
}

std::string normalise_key(std::string key) {
  if (starts_with(key, "module.")) key = key.substr(7);
  // torchvision's own remapping of pre-0.3 DenseNet checkpoints.
  static const std::regex kOldDense(
      R"(^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$)");
  std::smatch m;
  if (std::regex_match(key, m, kOldDense)) key = m[1].str() + m[2].str();
  return key;
}

}  // namespace

std::string shape_string(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < sizes.size(); ++i) os << (i ? ", " : "") << sizes[i];
  os << ']';
  return os.str();
}

StateLoadResult load_torchvision_state(torch::nn::Module& module, const TensorMap& weights) {
  StateLoadResult report;
  TensorMap by_name;
  for (const auto& [raw, tensor] : weights) {
    const std::string key = normalise_key(raw);
    if (is_head_key(key)) {
      report.ignored.push_back(raw);
      continue;
    }
    if (!by_name.emplace(key, tensor).second) {
      throw std::runtime_error("two tensors map to '" + key + "' (one of them is '" + raw + "')");
    }
  }

  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // destination, source
  auto match = [&](const std::string& name, const torch::Tensor& dest, bool optional) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (optional) {
        report.defaulted.push_back(name);
        return;
      }
      throw std::runtime_error("missing tensor '" + name + "' (expected shape " +
                               shape_string(dest.sizes()) + ")");
    }
    if (it->second.sizes() != dest.sizes()) {
      throw std::runtime_error("tensor '" + name + "' has shape " +
                               shape_string(it->second.sizes()) + " but the model expects " +
                               shape_string(dest.sizes()));
    }
    copies.emplace_back(dest, it->second);
    by_name.erase(it);
  };
  for (const auto& p : module.named_parameters()) {
    match(p.key(), p.value(), false);
    report.parameters += p.value().numel();
  }
  for (const auto& b : module.named_buffers()) match(b.key(), b.value(), ends_with(b.key(), "num_batches_tracked"));

  if (!by_name.empty()) {
    std::string examples;
    int shown = 0;
    for (const auto& kv : by_name) {
      if (shown++ == 3) break;
      examples += (examples.empty() ? "'" : ", '") + kv.first + "'";
    }
    throw std::runtime_error(std::to_string(by_name.size()) +
                             " tensors do not belong to this architecture (" + examples +
                             "): were the weights made for another one?");
  }

  torch::NoGradGuard no_grad;
  for (auto& [dest, src] : copies) dest.copy_(src);
  report.loaded = static_cast<int64_t>(copies.size());
  return report;
}

}  // namespace ppnet::model
