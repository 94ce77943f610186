#pragma once
// How ppnet shows where a prototype looks in an image (docs/audit.md): the reference's upsampled
// similarity map, or gradient attributions of the prototype's similarity to the input pixels.
// No LibTorch here: explain, analyze and evaluate take these settings from the command line;
// pipeline/stages/attribution_maps.h computes the maps.

#include <cstdint>
#include <string>

namespace ppnet::pipeline {

/// upsample: the prototype's H×W similarity map, upsampled bicubically to the image (the
/// reference's and the paper's pictures). saliency: |∂ max similarity / ∂ input pixel|, the
/// maximum over colour channels. smoothgrad: saliency averaged over noisy copies of the input.
enum class Attribution { kUpsample, kSaliency, kSmoothGrad };

/// "upsample", "saliency" or "smoothgrad".
const char* attribution_name(Attribution a);
/// Throws std::invalid_argument "'NAME': expected upsample, saliency or smoothgrad".
Attribution parse_attribution(const std::string& name);

struct AttributionSettings {
  Attribution method = Attribution::kUpsample;
  int samples = 16;     // smoothgrad: noisy copies per image
  double noise = 0.15;  // smoothgrad: σ of the Gaussian noise as a share of the input's range
  uint64_t seed = 1;    // smoothgrad: the noise of an image depends on this and the image alone
};

}  // namespace ppnet::pipeline
