#pragma once
// Receptive-field arithmetic of a latent cell, as the reference ProtoPNet computes it.

#include <array>
#include <cstdint>
#include <vector>

namespace ppnet::model {

/// One layer on the path that sets the receptive field: square kernel, stride, padding.
struct ConvInfo {
  int64_t kernel;
  int64_t stride;
  int64_t padding;
};

/// What a latent grid looks like in input pixels: grid size n, jump j (pixels between
/// neighbouring cells), receptive-field size r, centre of cell 0 (`start`).
struct ReceptiveField {
  int64_t n;
  int64_t j;
  int64_t r;
  double start;
};

/// Composes `layers` from n = img_size, j = 1, r = 1, start = 0.5 with
/// n' = floor((n - k + 2p)/s) + 1, j' = j*s, r' = r + (k-1)*j, start' = start + ((k-1)/2 - p)*j.
/// Throws std::invalid_argument when a layer would shrink the grid below one cell.
ReceptiveField compute_receptive_field(int64_t img_size, const std::vector<ConvInfo>& layers);

/// Pixel box [x0, y0, x1, y1) (x1/y1 exclusive) covered by latent cell (h, w): centre ± r/2,
/// truncated to integers as the reference does and clipped to the image.
std::array<int64_t, 4> cell_box(const ReceptiveField& rf, int64_t img_size, int64_t h, int64_t w);

/// The pixel (row or column index in an img_size input) at the centre of each latent row or
/// column: floor(start + i·j), clipped to the image. What "a cell lies on a region" means.
std::vector<int64_t> cell_centres(const ReceptiveField& rf, int64_t img_size);

}  // namespace ppnet::model
