#include "pipeline/stages/attribution_maps.h"

#include <torch/torch.h>

#include <algorithm>

#include "base/names.h"

namespace ppnet::pipeline {

namespace {

constexpr const char* kAttributionNames[] = {"upsample", "saliency", "smoothgrad"};

// The input rows of a group of images: each image once (saliency) or its noisy copies.
torch::Tensor input_rows(const torch::Tensor& images, int64_t first, int64_t count, const AttributionSettings& s,
                         const std::vector<uint64_t>& image_seeds) {
  if (s.method != Attribution::kSmoothGrad) return images.slice(0, first, first + count);
  std::vector<torch::Tensor> rows;
  for (int64_t i = first; i < first + count; ++i) {
    const auto image = images[i];
    auto generator = at::detail::createCPUGenerator(s.seed * 0x9e3779b97f4a7c15ull + image_seeds[static_cast<size_t>(i)]);
    const double sigma = s.noise * (image.max() - image.min()).item<double>();
    const auto noise = torch::randn({s.samples, image.size(0), image.size(1), image.size(2)}, generator, torch::kFloat32);
    rows.push_back(image.unsqueeze(0) + (noise * sigma).to(image.device(), image.scalar_type()));
  }
  return torch::cat(rows);
}

// Gradient maps of one group of images (first … first + count − 1): one forward pass, then one
// backward pass per prototype rank, each giving every row its gradient at once (rows are
// independent in eval mode).
void group_gradient_maps(model::ProtoPNetImpl& net, const torch::Tensor& images, int64_t first, int64_t count,
                         const std::vector<std::vector<int64_t>>& prototypes, const AttributionSettings& s,
                         const std::vector<uint64_t>& image_seeds, std::vector<std::vector<torch::Tensor>>& maps) {
  const int64_t copies = s.method == Attribution::kSmoothGrad ? s.samples : 1;
  const auto x = input_rows(images, first, count, s, image_seeds).detach().requires_grad_(true);
  const auto min_distances = std::get<0>(net.activations(x).distances.flatten(2).min(2));  // R×P
  const auto similarity = net.similarity(min_distances);
  size_t ranks = 0;
  for (int64_t i = first; i < first + count; ++i) ranks = std::max(ranks, prototypes[static_cast<size_t>(i)].size());
  for (size_t r = 0; r < ranks; ++r) {
    std::vector<int64_t> rows, columns;
    for (int64_t i = first; i < first + count; ++i) {
      const auto& wanted = prototypes[static_cast<size_t>(i)];
      if (r >= wanted.size()) continue;
      for (int64_t n = 0; n < copies; ++n) {
        rows.push_back((i - first) * copies + n);
        columns.push_back(wanted[r]);
      }
    }
    const auto device = similarity.device();
    const auto objective = similarity.index({torch::tensor(rows).to(device), torch::tensor(columns).to(device)}).sum();
    const auto gradient = torch::autograd::grad({objective}, {x}, {}, /*retain_graph=*/r + 1 < ranks)[0];
    // |gradient|, the largest over colour channels, averaged over an image's copies.
    const auto per_image = gradient.detach().abs().amax(1).view({count, copies, x.size(2), x.size(3)}).mean(1).cpu();
    for (int64_t i = first; i < first + count; ++i) {
      if (r < prototypes[static_cast<size_t>(i)].size()) maps[static_cast<size_t>(i)][r] = per_image[i - first].to(torch::kFloat32);
    }
  }
}

}  // namespace

const char* attribution_name(Attribution a) { return name_of(kAttributionNames, a); }
Attribution parse_attribution(const std::string& name) { return value_of<Attribution>(kAttributionNames, name); }

std::vector<std::vector<torch::Tensor>> attribution_maps(model::ProtoPNetImpl& net, const torch::Tensor& images,
                                                         const std::vector<std::vector<int64_t>>& prototypes,
                                                         const AttributionSettings& s,
                                                         const std::vector<uint64_t>& image_seeds,
                                                         const torch::Tensor& distances, int rows_per_pass) {
  const int64_t B = images.size(0);
  std::vector<std::vector<torch::Tensor>> maps(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) maps[static_cast<size_t>(i)].resize(prototypes[static_cast<size_t>(i)].size());
  if (s.method == Attribution::kUpsample) {
    torch::NoGradGuard no_grad;
    const auto d = distances.defined() ? distances : net.activations(images).distances;
    const auto sim = net.similarity(d).to(torch::kFloat32).cpu();
    for (int64_t i = 0; i < B; ++i) {
      for (size_t n = 0; n < maps[static_cast<size_t>(i)].size(); ++n) {
        maps[static_cast<size_t>(i)][n] = sim[i][prototypes[static_cast<size_t>(i)][n]];
      }
    }
    return maps;
  }
  torch::AutoGradMode enable_grad(true);
  const int64_t copies = s.method == Attribution::kSmoothGrad ? s.samples : 1;
  const int64_t group = std::max<int64_t>(1, rows_per_pass / copies);
  for (int64_t first = 0; first < B; first += group) {
    const int64_t count = std::min(group, B - first);
    const auto begin = prototypes.begin() + first;
    if (std::all_of(begin, begin + count, [](const auto& wanted) { return wanted.empty(); })) continue;  // no pass for nothing
    group_gradient_maps(net, images, first, count, prototypes, s, image_seeds, maps);
  }
  return maps;
}

void attribution_maps_of_files(model::ProtoPNetImpl& net, const std::filesystem::path& data, const ModelInput& input,
                               const std::map<std::string, std::vector<int64_t>>& of_image,
                               const AttributionSettings& settings, int batch_size, torch::Device device,
                               const std::function<void(const std::string&, int64_t, const torch::Tensor&)>& use) {
  std::vector<ListEntry> entries;
  std::vector<std::vector<int64_t>> prototypes;
  for (const auto& [path, wanted] : of_image) {
    entries.push_back({path, 0, path});
    prototypes.push_back(wanted);
  }
  BatchLoader loader(data, entries, sequential_order(entries.size()), input, batch_size, 0);
  Batch b;
  while (loader.next(&b)) {
    const auto first = static_cast<size_t>(b.index * batch_size), count = static_cast<size_t>(b.labels.size(0));
    const std::vector<std::vector<int64_t>> wanted(prototypes.begin() + static_cast<std::ptrdiff_t>(first),
                                                   prototypes.begin() + static_cast<std::ptrdiff_t>(first + count));
    std::vector<uint64_t> seeds;
    for (size_t i = first; i < first + count; ++i) seeds.push_back(std::hash<std::string>{}(entries[i].path));
    const auto maps = attribution_maps(net, b.images.to(device), wanted, settings, seeds, {}, kAttributionRows);
    for (size_t i = 0; i < count; ++i) {
      for (size_t n = 0; n < wanted[i].size(); ++n) use(entries[first + i].path, wanted[i][n], maps[i][n]);
    }
  }
}

}  // namespace ppnet::pipeline
