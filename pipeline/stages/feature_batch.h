#pragma once
// The batch of a pass over images that only computes features (no gradients), chosen so that the
// process stays within its memory budget (--memory-budget).

#include <cstdint>
#include <string>

#include "model/protopnet.h"
#include "pipeline/runtime/runtime.h"
#include "pipeline/stages/image_data.h"

namespace ppnet::pipeline {

/// What one image of a feature pass costs, measured on the model itself.
struct FeatureCost {
  int64_t per_image = 0;  // bytes that grow with the batch: activations, the loader's decoded images
  int64_t fixed = 0;      // bytes a batch of any size needs besides (weights reordered for the kernels, say)
};

/// Runs `net`'s forward pass, without gradients and in evaluation mode (its mode is restored),
/// on 1 and on 3 blank images of `input` on `device`; the growth of LibTorch's peak allocation
/// between the two gives the bytes per image. The loader's decoded batches (those it prefetches,
/// the one being decoded and the one in use) are added to them.
FeatureCost measure_feature_cost(model::ProtoPNetImpl& net, const ModelInput& input, torch::Device device);

/// A cheaper, larger figure: the whole peak of one forward pass of two blank images (the kernels'
/// one-off set-up and the per-batch bytes included) plus the loader's share, all counted per image
/// and nothing fixed: at least twice what an image adds plus what a batch needs besides, so a
/// batch that fits by it fits. (Not one image: a batch of one takes other paths and can peak
/// below what each image of a larger batch adds.)
FeatureCost bound_feature_cost(model::ProtoPNetImpl& net, const ModelInput& input, torch::Device device);

/// The largest batch of at most `requested` images whose pass fits in `budget` bytes beside
/// `held` bytes (what the process holds now and will hold besides, such as the rows being
/// gathered), a tenth of the room kept back for the allocator's slack; at least 1.
int batch_within_budget(const FeatureCost& cost, int requested, int64_t budget, int64_t held);

/// batch_within_budget() with rt's budget and device and what the process holds now plus
/// `reserved`, by bound_feature_cost() when `requested` fits by it (two images through the
/// model), else by measure_feature_cost(); logs a line naming `what` when the batch is lowered
/// (and, with --verbose, the figures in any case).
int feature_batch_size(model::ProtoPNetImpl& net, const ModelInput& input, int requested, const Runtime& rt,
                       int64_t reserved, const std::string& what);

}  // namespace ppnet::pipeline
