#pragma once
// The closed sets of names a model's configuration holds — its add-on layers and its prototype
// activation — with one function each to name and parse them. No LibTorch here, so that the run
// folder's configuration (pipeline/run) can hold them as types.

#include <stdexcept>
#include <string>

namespace ppnet::model {

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
