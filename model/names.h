#pragma once
// The closed sets of names a model's configuration holds — its backbone, its add-on layers and
// its prototype activation — with one function each to name and parse them. No LibTorch here,
// so that the run folder's configuration (pipeline/run) can hold them as types and the command
// line can offer them.

#include <stdexcept>
#include <string>
#include <vector>

namespace ppnet::model {

/// Names accepted by make_backbone (model/backbone.h): vgg11/13/16/19 (+ "_bn"),
/// resnet18/34/50/101/152, densenet121/161/169/201, and "small" / "small_bn" (three 3×3
/// conv+ReLU stages, with BatchNorm for "_bn", and two max-pools: 28 px in gives a 7×7 grid of
/// 128 channels; meant for small images trained from scratch, and for fast tests).
inline const std::vector<std::string>& backbone_names() {
  static const std::vector<std::string> kNames = {
      "vgg11",       "vgg11_bn",    "vgg13",       "vgg13_bn",    "vgg16",    "vgg16_bn",
      "vgg19",       "vgg19_bn",    "resnet18",    "resnet34",    "resnet50", "resnet101",
      "resnet152",   "densenet121", "densenet161", "densenet169", "densenet201", "small", "small_bn"};
  return kNames;
}

enum class AddOnType { kRegular, kBottleneck };

/// The prototype activation: the reference's "log", log((d + 1) / (d + 1e-4)), or "linear", −d.
enum class Activation { kLog, kLinear };

/// Parses "regular" or "bottleneck"; throws std::invalid_argument otherwise.
inline AddOnType parse_add_on_type(const std::string& name) {
  if (name == "regular") return AddOnType::kRegular;
  if (name == "bottleneck") return AddOnType::kBottleneck;
  throw std::invalid_argument("unknown add-on type '" + name + "' (expected regular or bottleneck)");
}

inline std::string to_string(AddOnType type) { return type == AddOnType::kRegular ? "regular" : "bottleneck"; }

/// Parses "log" or "linear"; throws std::invalid_argument otherwise.
inline Activation parse_activation(const std::string& name) {
  if (name == "log") return Activation::kLog;
  if (name == "linear") return Activation::kLinear;
  throw std::invalid_argument("unknown prototype activation '" + name + "' (expected log or linear)");
}

inline std::string to_string(Activation activation) { return activation == Activation::kLog ? "log" : "linear"; }

/// IAIA-BL's fine-annotation loss forms (model/loss.h): one norm of all of an image's maps
/// (serial), or one norm per own-class prototype (l2).
enum class FineAnnotationForm { kSerial, kL2 };

/// Parses "serial" or "l2"; throws std::invalid_argument otherwise.
inline FineAnnotationForm parse_fine_annotation_form(const std::string& name) {
  if (name == "serial") return FineAnnotationForm::kSerial;
  if (name == "l2") return FineAnnotationForm::kL2;
  throw std::invalid_argument("'" + name + "': expected serial or l2");
}

inline std::string to_string(FineAnnotationForm form) { return form == FineAnnotationForm::kSerial ? "serial" : "l2"; }

}  // namespace ppnet::model
