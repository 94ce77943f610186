#include "pipeline/stages/concept_inputs.h"

#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <stdexcept>

namespace ppnet::pipeline {
namespace {

// The image the concept was cut from.
cv::Mat image_of(const db::ConceptRow& k) {
  const std::vector<uchar> bytes(k.pixels.begin(), k.pixels.end());
  const cv::Mat image = bytes.empty() ? cv::Mat() : cv::imdecode(bytes, cv::IMREAD_COLOR);
  if (image.empty() || image.cols != k.image_width || image.rows != k.image_height) {
    throw std::runtime_error("concept #" + std::to_string(k.id) + " in run.sqlite: its pixels are not a PNG of its " +
                             std::to_string(k.image_width) + "×" + std::to_string(k.image_height) +
                             " image (edited by hand?): remove it with --remove " + std::to_string(k.id));
  }
  return image;
}

// The cells whose receptive-field centre lies on the box (scaled to the model input); when none
// does (a box smaller than the jump between cells), the cell nearest to the box's centre.
torch::Tensor region_of(const db::ConceptRow& k, const model::ReceptiveField& rf, int64_t size) {
  const auto centres = model::cell_centres(rf, size);
  const double sx = static_cast<double>(size) / static_cast<double>(k.image_width);
  const double sy = static_cast<double>(size) / static_cast<double>(k.image_height);
  auto region = torch::zeros({rf.n, rf.n}, torch::kBool);
  bool any = false;
  for (int64_t h = 0; h < rf.n; ++h) {
    for (int64_t w = 0; w < rf.n; ++w) {
      const double y = static_cast<double>(centres[static_cast<size_t>(h)]) + 0.5;  // pixel centre
      const double x = static_cast<double>(centres[static_cast<size_t>(w)]) + 0.5;
      const bool in = x >= static_cast<double>(k.box[0]) * sx && x < static_cast<double>(k.box[2]) * sx &&
                      y >= static_cast<double>(k.box[1]) * sy && y < static_cast<double>(k.box[3]) * sy;
      region[h][w] = in;
      any = any || in;
    }
  }
  if (!any) {
    const double cx = static_cast<double>(k.box[0] + k.box[2]) / 2.0 * sx, cy = static_cast<double>(k.box[1] + k.box[3]) / 2.0 * sy;
    const auto nearest = [&](double at) {
      int64_t best = 0;
      for (int64_t i = 1; i < rf.n; ++i) {
        if (std::abs(static_cast<double>(centres[static_cast<size_t>(i)]) + 0.5 - at) <
            std::abs(static_cast<double>(centres[static_cast<size_t>(best)]) + 0.5 - at)) {
          best = i;
        }
      }
      return best;
    };
    region[nearest(cy)][nearest(cx)] = true;
  }
  return region;
}

}  // namespace

ConceptInputs concept_inputs(const std::vector<db::ConceptRow>& concepts, const ModelInput& input,
                             const model::ReceptiveField& rf) {
  ConceptInputs out;
  std::vector<torch::Tensor> images, occluded, regions;
  const cv::Scalar mean(kImageMean[2] * 255.0, kImageMean[1] * 255.0, kImageMean[0] * 255.0);  // BGR
  std::vector<int64_t> classes;
  std::vector<uint8_t> forbid;
  for (const auto& k : concepts) {
    cv::Mat image = image_of(k);
    if (!(0 <= k.box[0] && k.box[0] < k.box[2] && k.box[2] <= image.cols && 0 <= k.box[1] && k.box[1] < k.box[3] &&
          k.box[3] <= image.rows)) {
      throw std::runtime_error("concept #" + std::to_string(k.id) + " in run.sqlite: its box is not inside its " +
                               std::to_string(image.cols) + "×" + std::to_string(image.rows) +
                               " image (edited by hand?): remove it with --remove " + std::to_string(k.id));
    }
    images.push_back(image_tensor(image, input));
    image(cv::Rect(static_cast<int>(k.box[0]), static_cast<int>(k.box[1]), static_cast<int>(k.box[2] - k.box[0]),
                   static_cast<int>(k.box[3] - k.box[1])))
        .setTo(mean);
    occluded.push_back(image_tensor(image, input));
    regions.push_back(region_of(k, rf, input.size));
    classes.push_back(k.class_index.value_or(-1));
    forbid.push_back(k.kind == db::ConceptKind::kForbid ? 1 : 0);
    out.ids.push_back(k.id);
  }
  const auto n = static_cast<int64_t>(concepts.size());
  out.images = n ? torch::stack(images) : torch::zeros({0, 3, input.size, input.size});
  out.occluded = n ? torch::stack(occluded) : torch::zeros({0, 3, input.size, input.size});
  out.centred = n ? torch::stack(regions) : torch::zeros({0, rf.n, rf.n}, torch::kBool);
  out.classes = torch::tensor(classes, torch::kInt64);
  out.forbid = torch::tensor(std::vector<int64_t>(forbid.begin(), forbid.end()), torch::kInt64).to(torch::kBool);
  return out;
}

torch::Tensor concept_region(const torch::Tensor& latent, const torch::Tensor& occluded_latent, const torch::Tensor& centred) {
  const auto change = (latent.detach().to(torch::kFloat) - occluded_latent.detach().to(torch::kFloat)).pow(2).sum(1);  // N×G×G
  const auto most = change.flatten(1).amax(1).view({-1, 1, 1});
  const auto region = change.ge(most * 0.5).logical_and(most.gt(0));
  return torch::where(most.gt(0), region, centred.to(region.device()));
}

ConceptInputs select_concepts(const ConceptInputs& all, const torch::Tensor& rows) {
  ConceptInputs out;
  out.images = all.images.index_select(0, rows);
  out.occluded = all.occluded.index_select(0, rows);
  out.centred = all.centred.index_select(0, rows);
  out.classes = all.classes.index_select(0, rows);
  out.forbid = all.forbid.index_select(0, rows);
  const auto r = rows.to(torch::kCPU);
  for (int64_t i = 0; i < r.numel(); ++i) out.ids.push_back(all.ids[static_cast<size_t>(r[i].item<int64_t>())]);
  return out;
}

}  // namespace ppnet::pipeline
