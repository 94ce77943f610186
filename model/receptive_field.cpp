#include "model/receptive_field.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ppnet::model {

ReceptiveField compute_receptive_field(int64_t img_size, const std::vector<ConvInfo>& layers) {
  ReceptiveField rf{img_size, 1, 1, 0.5};
  for (const ConvInfo& l : layers) {
    const int64_t n = (rf.n - l.kernel + 2 * l.padding) / l.stride + 1;
    if (rf.n - l.kernel + 2 * l.padding < 0 || n < 1) {
      throw std::invalid_argument("image size " + std::to_string(img_size) +
                                  " is too small for this backbone: the latent grid vanishes");
    }
    rf.start += ((l.kernel - 1) / 2.0 - static_cast<double>(l.padding)) * static_cast<double>(rf.j);
    rf.r += (l.kernel - 1) * rf.j;
    rf.j *= l.stride;
    rf.n = n;
  }
  return rf;
}

std::array<int64_t, 4> cell_box(const ReceptiveField& rf, int64_t img_size, int64_t h, int64_t w) {
  const auto span = [&](int64_t i) {
    const double centre = rf.start + static_cast<double>(i * rf.j);
    const double half = static_cast<double>(rf.r) / 2.0;
    // int() in the reference truncates towards zero.
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(centre - half), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(centre + half), img_size);
    return std::pair<int64_t, int64_t>{lo, hi};
  };
  const auto [y0, y1] = span(h);
  const auto [x0, x1] = span(w);
  return {x0, y0, x1, y1};
}

std::vector<int64_t> cell_centres(const ReceptiveField& rf, int64_t img_size) {
  std::vector<int64_t> centres;
  for (int64_t i = 0; i < rf.n; ++i) {
    const auto c = static_cast<int64_t>(std::floor(rf.start + static_cast<double>(i * rf.j)));
    centres.push_back(std::clamp<int64_t>(c, 0, img_size - 1));
  }
  return centres;
}

}  // namespace ppnet::model
