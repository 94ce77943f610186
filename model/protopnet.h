#pragma once
// The ProtoPNet model: backbone → add-on layers → prototype layer → last layer.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "model/backbone.h"
#include "model/names.h"
#include "model/receptive_field.h"

namespace ppnet::model {

struct ProtoPNetOptions {
  std::string arch = "vgg19";
  int64_t num_classes = 200;
  int64_t prototypes_per_class = 10;
  int64_t prototype_dim = 128;  // D: channels of a latent patch and of a prototype
  AddOnType add_on = AddOnType::kRegular;
  Activation activation = Activation::kLog;
};

/// forward(): logits B×C and the minimum distance of every prototype over the grid, B×P.
struct ProtoPNetOutput {
  torch::Tensor logits;
  torch::Tensor min_distances;
};

/// What projection and explanation need: latent patches B×D×H×W and squared L2 distance maps
/// B×P×H×W.
struct ProtoPNetActivations {
  torch::Tensor latent;
  torch::Tensor distances;
};

/// Parameter names follow the reference implementation: "features.*" (torchvision names below
/// it), "add_on_layers.*", "prototype_vectors" (P×D×1×1), "last_layer.weight" (C×P, no bias);
/// buffer "prototype_class_identity" (P×C float, prototype j belongs to class j / per_class).
/// Loading a state saved from a pruned model gives this one the saved P (the archive's tensors
/// replace the module's, shapes included).
class ProtoPNetImpl : public torch::nn::Module {
 public:
  /// Throws std::invalid_argument for an unknown architecture or a non-positive count.
  explicit ProtoPNetImpl(const ProtoPNetOptions& options);

  ProtoPNetOutput forward(const torch::Tensor& images);
  ProtoPNetActivations activations(const torch::Tensor& images);

  /// Steps of forward(), exposed for tests and for stages that start from cached features.
  torch::Tensor latent(const torch::Tensor& images);  // add_on(features(x)): B×D×H×W in (0,1)
  torch::Tensor distances(const torch::Tensor& latent);  // max(0, |z|² − 2z·p + |p|²): B×P×H×W
  /// Each prototype against its own map only: `latent` P×D×H×W (map j for prototype j) gives
  /// P×H×W, the formula of distances() without the P×P×H×W of every pair.
  torch::Tensor paired_distances(const torch::Tensor& latent);
  ProtoPNetOutput head(const torch::Tensor& backbone_features);  // from features(x) onwards
  ProtoPNetOutput classify(const torch::Tensor& distances);       // from B×P×H×W distance maps
  /// Similarities from distances (any shape), by the model's activation.
  torch::Tensor similarity(const torch::Tensor& distances) const;

  const ProtoPNetOptions& options() const { return options_; }
  /// P: classes × prototypes per class, until keep_prototypes() or a loaded checkpoint of a
  /// pruned model changes it.
  int64_t num_prototypes() const { return prototype_vectors_.size(0); }
  /// Keeps only the prototypes `keep` (distinct indices, in that order): their vectors,
  /// class-identity rows and last-layer columns, in place (optimizers created afterwards see
  /// the new shapes). Throws std::invalid_argument for an index out of range or repeated.
  void keep_prototypes(const std::vector<int64_t>& keep);
  /// Largest possible squared distance: D (latent values lie in (0,1) after the Sigmoid).
  double max_distance() const { return static_cast<double>(options_.prototype_dim); }
  ReceptiveField receptive_field(int64_t img_size) const;

  BackboneImpl& backbone() { return *features_; }
  torch::nn::Sequential& add_on_layers() { return add_on_layers_; }
  torch::nn::Linear& last_layer() { return last_layer_; }
  torch::Tensor& prototype_vectors() { return prototype_vectors_; }
  const torch::Tensor& prototype_class_identity() const { return prototype_class_identity_; }
  /// The class each prototype belongs to (its identity row's one), P entries.
  std::vector<int64_t> prototype_classes() const;

  /// Weight 1 from a prototype to its own class and `incorrect` to every other class.
  void set_last_layer_connections(double incorrect = -0.5);

 private:
  torch::Tensor in_layout(const torch::Tensor& images);  // channels-last when set_channels_last(true)

  ProtoPNetOptions options_;
  std::shared_ptr<BackboneImpl> features_;
  torch::nn::Sequential add_on_layers_;
  torch::Tensor prototype_vectors_;
  torch::nn::Linear last_layer_{nullptr};
  torch::Tensor prototype_class_identity_;
};
TORCH_MODULE(ProtoPNet);

/// Builds the add-on layers from `in_channels` to `dim`, Kaiming-normal (fan_out, relu)
/// initialised with zero bias. "regular": 1×1 conv, ReLU, 1×1 conv, Sigmoid. "bottleneck":
/// pairs of 1×1 convs halving the channels down to `dim`, ReLU between, Sigmoid last.
torch::nn::Sequential make_add_on_layers(int64_t in_channels, int64_t dim, AddOnType type);

/// Process-wide mixed precision of the backbone and add-on layers (autocast to bfloat16 or
/// float16 inside latent() and forward(); kFloat: off). Distances, similarities and logits stay
/// float32. Throws std::invalid_argument for another dtype.
void set_precision(torch::ScalarType dtype);

/// Process-wide: the backbone and add-on convolutions run in channels-last (NHWC) layout, their
/// weights converted on the next forward pass (--channels-last; faster with cuDNN's tensor cores).
void set_channels_last(bool on);

/// The similarity of `activation` from distances, elementwise: similarity_from_distance or −d.
torch::Tensor similarity(const torch::Tensor& distances, Activation activation);

/// s = log((d + 1) / (d + 1e-4)), elementwise.
torch::Tensor similarity_from_distance(const torch::Tensor& distances);

}  // namespace ppnet::model
