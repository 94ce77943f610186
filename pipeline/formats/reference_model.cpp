#include "pipeline/formats/reference_model.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>

#include "pipeline/formats/safetensors.h"
#include "pipeline/formats/torch_pickle.h"
#include "pipeline/formats/weights_file.h"

namespace ppnet::pipeline {
namespace {

using Kind = PyValue::Kind;

// Module classes a reference model is made of: torch.nn's and the reference's feature
// extractors and their blocks (models/*_features.py), by class name.
const std::set<std::string>& known_modules() {
  static const std::set<std::string> kKnown = {
      "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Sequential", "Sigmoid",
      "Linear", "Dropout", "Identity", "VGG_features", "ResNet_features", "DenseNet_features", "BasicBlock",
      "Bottleneck", "_DenseLayer", "_DenseBlock", "_Transition", "PPNet"};
  return kKnown;
}

std::string known_list() {
  std::string out;
  for (const auto& k : known_modules()) out += (out.empty() ? "" : ", ") + k;
  return out;
}

std::string kind_word(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "a bool";
    case Kind::kInt: return "an integer";
    case Kind::kFloat: return "a float";
    case Kind::kString: return "a string";
    case Kind::kTuple: return "a tuple";
    case Kind::kList: return "a list";
    case Kind::kSet: return "a set";
    case Kind::kDict: return "a dict";
    case Kind::kGlobal: return "a class or function";
    case Kind::kObject: return "an object";
    case Kind::kTensor: return "a tensor";
  }
  return "?";
}

std::string kind_name(const PyValue* v) {
  if (!v) return "absent";
  if (v->kind == Kind::kGlobal) return "the class or function " + v->s;
  if (v->kind == Kind::kObject) return "an object of " + v->s;
  return kind_word(v->kind);
}

// The tensors of nn.Module `module` (its __dict__ after BUILD) under `prefix`, as state_dict()
// names them: _parameters, then persistent _buffers, then each submodule's.
void collect(const PyValue& module, const std::string& name, int depth, model::TensorMap& out) {
  if (depth > 64) throw std::runtime_error("modules nested deeper than 64 at '" + name + "'");
  if (module.kind != Kind::kObject) throw std::runtime_error("'" + name + "' is " + kind_name(&module) + ", not a module");
  if (!known_modules().count(module.class_name())) {
    throw std::runtime_error("'" + (name.empty() ? std::string("the model") : name) + "' is a " + module.s +
                             ", a module class ppnet does not know (it knows " + known_list() + ")");
  }
  const PyValue* state = module.state;
  if (!state || state->kind != Kind::kDict) throw std::runtime_error("module '" + name + "' (" + module.s + ") has no attributes");
  const std::string prefix = name.empty() ? "" : name + ".";
  std::set<std::string> transient;
  if (const PyValue* set = state->get("_non_persistent_buffers_set"); set && set->kind == Kind::kSet) {
    for (const PyValue* v : set->items) {
      if (v->kind == Kind::kString) transient.insert(v->s);
    }
  }
  for (const char* field : {"_parameters", "_buffers"}) {
    const PyValue* tensors = state->get(field);
    if (!tensors) continue;
    if (tensors->kind != Kind::kDict) throw std::runtime_error("module '" + name + "': " + field + " is not a dict");
    for (const auto& [k, v] : tensors->entries) {
      if (k->kind != Kind::kString) throw std::runtime_error("module '" + name + "': a tensor name is not a string");
      if (v->kind == Kind::kNone || transient.count(k->s)) continue;  // e.g. a convolution without bias
      if (v->kind != Kind::kTensor) throw std::runtime_error("'" + prefix + k->s + "' is " + kind_name(v) + ", not a tensor");
      out[prefix + k->s] = v->tensor;
    }
  }
  if (const PyValue* children = state->get("_modules")) {
    if (children->kind != Kind::kDict) throw std::runtime_error("module '" + name + "': _modules is not a dict");
    for (const auto& [k, v] : children->entries) {
      if (k->kind != Kind::kString) throw std::runtime_error("module '" + name + "': a submodule name is not a string");
      if (v->kind == Kind::kNone) continue;
      collect(*v, prefix + k->s, depth + 1, out);
    }
  }
}

const PyValue& attribute(const PyValue& state, const std::string& key, Kind kind) {
  const PyValue* v = state.get(key);
  if (!v || v->kind != kind) {
    throw std::runtime_error("the PPNet object's attribute '" + key + "' is " + kind_name(v) + ", not " + kind_word(kind));
  }
  return *v;
}

std::string shape_of(const torch::Tensor& t) { return model::shape_string(t.sizes()); }

const torch::Tensor& tensor(const model::TensorMap& state, const std::string& name, int64_t dims) {
  auto it = state.find(name);
  if (it == state.end()) throw std::runtime_error("it has no tensor '" + name + "'");
  if (it->second.dim() != dims) {
    throw std::runtime_error("'" + name + "' has shape " + shape_of(it->second) + ", not " + std::to_string(dims) + " dimensions");
  }
  return it->second;
}

// Convolutions of the add-on layers, in order, and so the type: "regular" is two 1×1 convs
// from the backbone's channels to D; "bottleneck" halves the channels pair by pair.
model::AddOnType add_on_type(const model::TensorMap& state, int64_t dim) {
  std::map<int, torch::Tensor> convs;
  static const std::regex kConv(R"(add_on_layers\.(\d{1,6})\.weight)");
  for (const auto& [k, v] : state) {
    std::smatch m;
    if (std::regex_match(k, m, kConv)) convs[std::stoi(m[1])] = v;
  }
  if (convs.empty()) throw std::runtime_error("it has no add-on layers (add_on_layers.*.weight)");
  if (convs.size() == 2 && convs.begin()->second.size(0) == dim) return model::AddOnType::kRegular;
  return model::AddOnType::kBottleneck;
}

// A state dict as the reference's model.state_dict() names it, from the file's keys: a
// DataParallel "module." prefix goes.
model::TensorMap reference_names(const model::TensorMap& raw) {
  model::TensorMap out;
  for (const auto& [raw_key, t] : raw) {
    const std::string key = raw_key.rfind("module.", 0) == 0 ? raw_key.substr(7) : raw_key;
    if (!out.emplace(key, t).second) throw std::runtime_error("two tensors are named '" + key + "'");
  }
  return out;
}

model::Activation activation_named(const std::string& name) {
  try {
    return model::parse_activation(name);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());
  }
}

// The whole model: a PPNet object, its tensors from its module tree, its attributes.
void read_whole_model(const PyValue& root, ReferenceModel& m) {
  if (root.kind != Kind::kObject || root.class_name() != "PPNet") {
    throw std::runtime_error("holds " + kind_name(&root) + ", not the reference's PPNet (nor a dict of tensors)");
  }
  collect(root, "", 0, m.state);
  const PyValue& state = *root.state;
  const int64_t img_size = attribute(state, "img_size", Kind::kInt).i;
  if (img_size < 8 || img_size > 4096) {
    throw std::runtime_error("its img_size is " + std::to_string(img_size) + ", not an image size ppnet takes (8 to 4096 px)");
  }
  m.img_size = static_cast<int>(img_size);
  const PyValue* activation = state.get("prototype_activation_function");
  if (!activation || activation->kind != Kind::kString) {
    throw std::runtime_error("its prototype activation function is " + kind_name(activation) +
                             ": ppnet runs only the reference's 'log' and 'linear', not a function of its own");
  }
  m.options.activation = activation_named(activation->s);
  if (const PyValue* eps = state.get("epsilon"); eps && eps->kind == Kind::kFloat && m.options.activation == model::Activation::kLog &&
                                                  std::abs(eps->f - 1e-4) > 1e-12) {
    throw std::runtime_error("its epsilon is " + std::to_string(eps->f) + "; ppnet's log activation uses the reference's 1e-4");
  }
  const PyValue& identity = attribute(state, "prototype_class_identity", Kind::kTensor);
  m.state["prototype_class_identity"] = identity.tensor;
  m.found.push_back("a whole PPNet object (" + root.s + ") with features of class " +
                    [&] {
                      const PyValue* mods = state.get("_modules");
                      const PyValue* f = mods ? mods->get("features") : nullptr;
                      return f && f->kind == Kind::kObject ? f->s : std::string("?");
                    }());
}

// The identity the reference gives prototype j: class j / (P / C), P a multiple of C.
torch::Tensor standard_identity(int64_t prototypes, int64_t classes) {
  auto t = torch::zeros({prototypes, classes});
  for (int64_t j = 0; j < prototypes; ++j) t[j][j / (prototypes / classes)] = 1;
  return t;
}

void check_identity(const torch::Tensor& identity, int64_t prototypes, int64_t classes) {
  if (identity.dim() != 2 || identity.size(0) != prototypes || identity.size(1) != classes) {
    throw std::runtime_error("prototype_class_identity has shape " + shape_of(identity) + ", not [" +
                             std::to_string(prototypes) + ", " + std::to_string(classes) + "]");
  }
  const auto t = identity.to(torch::kFloat32);
  const auto ones = (t == 1).sum(1), zeros = (t == 0).sum(1);
  for (int64_t j = 0; j < prototypes; ++j) {
    if (ones[j].item<int64_t>() != 1 || zeros[j].item<int64_t>() != classes - 1) {
      throw std::runtime_error("prototype_class_identity row " + std::to_string(j) + " does not name exactly one class");
    }
  }
}

// The description `ppnet export` writes beside a state dict (absent: nothing to add).
void read_description(const std::string& path, ReferenceModel& m, ReferenceHints& hints) {
  const std::filesystem::path json_path = std::filesystem::path(path).replace_extension(".json");
  std::error_code ec;
  if (json_path == std::filesystem::path(path) || !std::filesystem::is_regular_file(json_path, ec)) return;
  std::ifstream in(json_path);
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("ppnet_export")) return;  // someone else's JSON
  try {
    const std::string arch = j.at("arch").get<std::string>();
    if (!hints.arch.empty() && hints.arch != arch) throw std::runtime_error("it says arch " + arch + ", not --arch " + hints.arch);
    hints.arch = arch;
    if (hints.img_size == 0) hints.img_size = j.at("img_size").get<int>();
    if (hints.activation.empty()) hints.activation = j.at("prototype_activation_function").get<std::string>();
    const auto classes = j.at("prototype_classes").get<std::vector<int64_t>>();
    m.class_names = j.at("class_names").get<std::vector<std::string>>();
    auto identity = torch::zeros({static_cast<int64_t>(classes.size()), static_cast<int64_t>(m.class_names.size())});
    for (size_t k = 0; k < classes.size(); ++k) {
      if (classes[k] < 0 || classes[k] >= identity.size(1)) throw std::runtime_error("prototype_classes[" + std::to_string(k) + "] is no class");
      identity[static_cast<int64_t>(k)][classes[k]] = 1;
    }
    m.state["prototype_class_identity"] = identity;
  } catch (const std::exception& e) {
    throw std::runtime_error(json_path.string() + ", the description beside it: " + e.what());
  }
  m.found.push_back("the description beside it (" + json_path.filename().string() + ")");
}

}  // namespace

std::string infer_arch(const model::TensorMap& state) {
  // Indices of at most 6 digits: any name is input, and std::stoi throws beyond int.
  static const std::regex kVgg(R"(features\.features\.(\d{1,6})\.weight)");
  static const std::regex kResNet(R"(features\.layer(\d)\.(\d{1,6})\.conv(\d)\.weight)");
  static const std::regex kDense(R"(features\.features\.denseblock(\d)\.denselayer(\d{1,6})\.conv1\.weight)");
  int vgg_convs = 0;
  bool batch_norm = false, bottleneck = false;
  std::map<int, std::set<int>> blocks;  // layer or dense block → its blocks or layers
  bool dense = false;
  for (const auto& [k, t] : state) {
    std::smatch m;
    if (std::regex_match(k, m, kDense)) {
      dense = true;
      blocks[std::stoi(m[1])].insert(std::stoi(m[2]));
    } else if (std::regex_match(k, m, kResNet)) {
      blocks[std::stoi(m[1])].insert(std::stoi(m[2]));
      bottleneck = bottleneck || m[3] == "3";
    } else if (std::regex_match(k, m, kVgg)) {
      if (t.dim() == 4) ++vgg_convs;
    }
    if (k.rfind("features.features.", 0) == 0 && k.find("running_var") != std::string::npos) batch_norm = true;
  }
  std::vector<size_t> counts;
  for (const auto& [b, members] : blocks) counts.push_back(members.size());
  using V = std::vector<size_t>;
  if (dense) {
    auto conv0 = state.find("features.features.conv0.weight");
    const bool wide = conv0 != state.end() && conv0->second.size(0) == 96;
    if (counts == V{6, 12, 24, 16} && !wide) return "densenet121";
    if (counts == V{6, 12, 36, 24} && wide) return "densenet161";
    if (counts == V{6, 12, 32, 32} && !wide) return "densenet169";
    if (counts == V{6, 12, 48, 32} && !wide) return "densenet201";
    return "";
  }
  if (!blocks.empty()) {
    if (counts == V{2, 2, 2, 2} && !bottleneck) return "resnet18";
    if (counts == V{3, 4, 6, 3}) return bottleneck ? "resnet50" : "resnet34";
    if (counts == V{3, 4, 23, 3} && bottleneck) return "resnet101";
    if (counts == V{3, 8, 36, 3} && bottleneck) return "resnet152";
    return "";
  }
  static const std::map<int, std::string> kVggDepth = {{3, "small"}, {8, "vgg11"}, {10, "vgg13"}, {13, "vgg16"}, {16, "vgg19"}};
  auto it = kVggDepth.find(vgg_convs);
  if (it == kVggDepth.end()) return "";
  return it->second + (batch_norm ? "_bn" : "");
}

ReferenceModel read_reference_model(const std::string& path, const ReferenceHints& given) {
  try {
    ReferenceModel m;
    ReferenceHints hints = given;
    if (detect_weights_format(path) == WeightsFormat::kSafetensors) {
      m.state = reference_names(read_safetensors(path));
      m.format = "state dict (safetensors)";
    } else {
      const TorchSaveFile file = read_torch_save_file(path);
      const std::string format = file.legacy() ? " (legacy torch.save)" : " (zip torch.save)";
      if (file.root().kind == Kind::kObject) {
        read_whole_model(file.root(), m);
        m.format = "whole model" + format;
      } else {
        m.state = reference_names(tensor_dict(file, path));
        m.format = "state dict" + format;
      }
    }
    const bool whole = m.format.rfind("whole", 0) == 0;
    m.state.erase("ones");  // the reference's constant for its distance convolution
    if (!whole) read_description(path, m, hints);

    const torch::Tensor& prototypes = tensor(m.state, "prototype_vectors", 4);
    const torch::Tensor& last = tensor(m.state, "last_layer.weight", 2);
    const int64_t p = prototypes.size(0), d = prototypes.size(1);
    if (prototypes.size(2) != 1 || prototypes.size(3) != 1) {
      throw std::runtime_error("prototype_vectors has shape " + shape_of(prototypes) + ": ppnet's prototypes are 1×1 patches (P×D×1×1)");
    }
    if (last.size(1) != p) {
      throw std::runtime_error("last_layer.weight has shape " + shape_of(last) + " but there are " + std::to_string(p) + " prototypes");
    }
    const int64_t c = last.size(0);
    if (c < 1 || p < 1) throw std::runtime_error(std::to_string(p) + " prototypes for " + std::to_string(c) + " classes");
    const std::string arch = infer_arch(m.state);
    if (!hints.arch.empty() && !arch.empty() && hints.arch != arch) {
      throw std::runtime_error("its backbone's tensors are those of " + arch + ", not --arch " + hints.arch);
    }
    m.options.arch = hints.arch.empty() ? arch : hints.arch;
    if (m.options.arch.empty()) {
      throw std::runtime_error("its backbone's tensors are none of ppnet's architectures (vgg11…19[_bn], resnet18…152, densenet121…201)");
    }
    if (hints.img_size > 0 && m.img_size > 0 && hints.img_size != m.img_size) {
      throw std::runtime_error("the model was made for " + std::to_string(m.img_size) + " px images, not --img-size " +
                               std::to_string(hints.img_size));
    }
    if (hints.img_size > 0) m.img_size = hints.img_size;
    if (m.img_size <= 0) throw std::runtime_error("a state dict does not say the image size: give --img-size");
    if (m.img_size < 8 || m.img_size > 4096) {
      throw std::runtime_error("its image size " + std::to_string(m.img_size) + " is not one ppnet takes (8 to 4096 px)");
    }
    if (!hints.activation.empty()) {
      const model::Activation a = activation_named(hints.activation);
      if (whole && a != m.options.activation) throw std::runtime_error("the model's activation is not --activation " + hints.activation);
      m.options.activation = a;
    }

    if (!m.state.count("prototype_class_identity")) {
      if (p % c != 0) {
        throw std::runtime_error(std::to_string(p) + " prototypes for " + std::to_string(c) +
                                 " classes (a pruned model?): a state dict does not say which class each belongs to; "
                                 "import the whole model, or put the JSON ppnet export writes beside it");
      }
      m.state["prototype_class_identity"] = standard_identity(p, c);
    }
    m.state["prototype_class_identity"] = m.state["prototype_class_identity"].to(torch::kFloat32);
    check_identity(m.state["prototype_class_identity"], p, c);
    m.options.num_classes = c;
    m.options.prototypes_per_class = std::max<int64_t>(1, p / c);
    m.options.prototype_dim = d;
    m.options.add_on = add_on_type(m.state, d);
    m.num_prototypes = p;
    m.found.push_back(m.options.arch + " backbone, " + model::to_string(m.options.add_on) + " add-on layers, " +
                      std::to_string(p) + " prototypes of " + std::to_string(d) + " channels for " + std::to_string(c) +
                      " classes, " + model::to_string(m.options.activation) + " activation, " + std::to_string(m.img_size) +
                      " px images");
    return m;
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw std::runtime_error(what.rfind(path, 0) == 0 ? what : path + ": " + what);
  }
}

}  // namespace ppnet::pipeline
