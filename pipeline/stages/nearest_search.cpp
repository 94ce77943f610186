#include "pipeline/stages/nearest_search.h"

#include <torch/torch.h>

#include "pipeline/stages/image_data.h"
#include "base/interrupt.h"
#include "base/progress.h"

namespace ppnet::pipeline {

model::NearestPatches search_nearest_patches(model::ProtoPNetImpl& net, const std::filesystem::path& data,
                                             const std::vector<ListEntry>& list, const ModelInput& input, int batch_size,
                                             int64_t k, torch::Device device, const std::string& label) {
  torch::NoGradGuard no_grad;
  model::NearestPatches nearest(net.num_prototypes(), k);
  BatchLoader loader(data, list, sequential_order(list.size()), input, batch_size, 0);
  Progress progress(label, list.size());
  Batch b;
  int64_t offset = 0;
  while (loader.next(&b)) {
    const int64_t B = b.images.size(0);
    nearest.add(net.activations(b.images.to(device)).distances, torch::arange(offset, offset + B, torch::kInt64));
    offset += B;
    progress.advance(static_cast<uint64_t>(B));
    stop_if_requested("interrupted; the run is unchanged");
  }
  return nearest;
}

}  // namespace ppnet::pipeline
