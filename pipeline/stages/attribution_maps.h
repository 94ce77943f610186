#pragma once
// Attribution maps: where in an image a prototype finds its similarity (attribution.h names the
// methods). One forward pass per group of images (with smoothgrad: the noisy copies of an image)
// and one backward pass per explained prototype rank, on the model's device.

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/protopnet.h"
#include "pipeline/stages/attribution.h"
#include "pipeline/stages/image_data.h"

namespace ppnet::pipeline {

/// The input rows of one gradient pass where a command's batch size is meant for inference
/// (evaluate's 100, analyze's 75): a backward pass of vgg16 at 224 px holds ~0.1 GB per row.
inline constexpr int kAttributionRows = 16;

/// The maps of prototypes `prototypes[i]` on image i of `images` (B×3×S×S, normalised model
/// input on the model's device), as float CPU tensors [i][n]: the H×W similarity map for
/// upsample (taken from `distances`, B×P×H×W, when defined, else computed), an S×S map for the
/// gradient methods. `image_seeds[i]` seeds image i's smoothgrad noise (with settings.seed), so
/// a map does not depend on the batch it was computed in. `rows_per_pass` bounds the input rows
/// of one pass (an image's noisy copies always share one): a backward pass holds their
/// activations, as training a batch of that size does. The model should be in eval mode;
/// gradients are enabled inside, parameter gradients are not touched.
std::vector<std::vector<torch::Tensor>> attribution_maps(model::ProtoPNetImpl& net, const torch::Tensor& images,
                                                         const std::vector<std::vector<int64_t>>& prototypes,
                                                         const AttributionSettings& settings,
                                                         const std::vector<uint64_t>& image_seeds,
                                                         const torch::Tensor& distances = {}, int rows_per_pass = 16);

/// attribution_maps for images of a data folder: for each image (path relative to `data`) of
/// `of_image`, the maps of its prototypes, `batch_size` images decoded at a time and attributed
/// kAttributionRows rows at a time;
/// calls use(path, prototype, map) for each. An image's smoothgrad noise is seeded by its path.
void attribution_maps_of_files(model::ProtoPNetImpl& net, const std::filesystem::path& data, const ModelInput& input,
                               const std::map<std::string, std::vector<int64_t>>& of_image,
                               const AttributionSettings& settings, int batch_size, torch::Device device,
                               const std::function<void(const std::string&, int64_t, const torch::Tensor&)>& use);

}  // namespace ppnet::pipeline
