#pragma once
// One batched pass over a list of images that keeps each prototype's k nearest latent patches
// (one per image): what `analyze` reports and `prune` decides by.

#include <torch/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "model/nearest_patches.h"
#include "model/protopnet.h"
#include "pipeline/data/manifest.h"
#include "pipeline/stages/image_data.h"

namespace ppnet::pipeline {

/// Runs every image of `list` (paths relative to `data`, as `input` says) through `net`
/// in batches of `batch_size`; image ids in the result are indices into `list`. Shows progress
/// on stderr as `label`. Throws Interrupted after SIGINT/SIGTERM (nothing is written).
model::NearestPatches search_nearest_patches(model::ProtoPNetImpl& net, const std::filesystem::path& data,
                                             const std::vector<ListEntry>& list, const ModelInput& input, int batch_size,
                                             int64_t k, torch::Device device, const std::string& label);

}  // namespace ppnet::pipeline
