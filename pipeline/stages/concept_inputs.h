#pragma once
// A run's concepts (pipeline/run/concepts.h) as model input: the image each was cut from, resized
// as the run's images are, and the same image with the concept's box greyed out (the
// normalisation's mean colour, zero after normalising). The latent cells *on* a concept are those
// whose value depends on its pixels: the cells that change by at least half as much as the
// most changed one when the box is greyed out (concept_region). So the region follows what the
// backbone really sees, whatever its receptive field: a small network's cells beside a corner
// mark that see it are on it; a deep one's cells far from a bird's wing, whose theoretical
// receptive field is the whole image, are not.

#include <torch/types.h>

#include <vector>

#include "db/run_store.h"
#include "model/receptive_field.h"
#include "pipeline/stages/image_data.h"

namespace ppnet::pipeline {

struct ConceptInputs {
  torch::Tensor images;    // N×3×S×S float (CPU)
  torch::Tensor occluded;  // the same with the box greyed out
  torch::Tensor centred;   // N×G×G bool: the cells whose receptive-field centre lies in the box
                           // (at least one: the nearest to its centre), where none changes
  torch::Tensor classes;  // N int64: the class whose prototypes it concerns, −1 for all
  torch::Tensor forbid;   // N bool: forbidden (true) or remembered
  std::vector<int64_t> ids;
};

/// Throws std::runtime_error naming the concept when its stored pixels are not a PNG of its
/// box's size (run.sqlite edited by hand).
ConceptInputs concept_inputs(const std::vector<db::ConceptRow>& concepts, const ModelInput& input,
                             const model::ReceptiveField& rf);

/// The cells on each concept (N×G×G bool) from the latent grids of its image and of its occluded
/// copy (N×D×G×G): those whose squared change is at least half the largest; `centred` for an
/// image in which nothing changes.
torch::Tensor concept_region(const torch::Tensor& latent, const torch::Tensor& occluded_latent, const torch::Tensor& centred);

/// Rows `rows` of `all` (a subset of the concepts, e.g. one batch's share).
ConceptInputs select_concepts(const ConceptInputs& all, const torch::Tensor& rows);

}  // namespace ppnet::pipeline
