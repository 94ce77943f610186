#pragma once
// The arguments the model benchmarks share — [arch=vgg16] [img_size=224] [batch] [threads=2]
// [iterations=3] — and the runtime started with those threads.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/loss.h"
#include "model/protopnet.h"
#include "pipeline/runtime/runtime.h"
#include "pipeline/runtime/runtime_config.h"

namespace ppnet::bench {

struct ModelWorkload {
  std::string arch;
  int img_size, batch, threads, iterations;
};

inline ModelWorkload start_model_workload(int argc, char** argv, int default_batch) {
  const auto number = [&](int i, int fallback) { return argc > i ? std::stoi(argv[i]) : fallback; };
  ModelWorkload w{argc > 1 ? argv[1] : "vgg16", number(2, 224), number(3, default_batch), number(4, 2), number(5, 3)};
  pipeline::RuntimeConfig rc;
  rc.threads = w.threads;
  pipeline::start_runtime(rc);
  return w;
}

// A ProtoPNet of `arch` in train mode with Adam on everything but the last layer, and the joint
// step `ppnet train --stage joint` takes per batch without its data pipeline: forward, the loss
// terms, backward, Adam.
struct JointModel {
  model::ProtoPNet net;
  torch::optim::Adam adam;

  explicit JointModel(const std::string& arch, int64_t classes = 200)
      : net(options(arch, classes)), adam(trainable(net), torch::optim::AdamOptions(1e-4)) {
    net->train();
  }

  void step(const torch::Tensor& images, const torch::Tensor& labels) {
    adam.zero_grad();
    const auto out = net->forward(images);
    const auto terms = model::compute_loss_terms(out.logits, out.min_distances, labels, net->prototype_class_identity(),
                                                 net->last_layer()->weight, net->max_distance());
    model::total_loss(terms, {}).backward();
    adam.step();
  }

 private:
  static model::ProtoPNetOptions options(const std::string& arch, int64_t classes) {
    model::ProtoPNetOptions o;
    o.arch = arch;
    o.num_classes = classes;
    return o;
  }
  static std::vector<torch::Tensor> trainable(model::ProtoPNet& net) {
    net->last_layer()->weight.set_requires_grad(false);
    std::vector<torch::Tensor> params;
    for (auto& p : net->parameters()) {
      if (p.requires_grad()) params.push_back(p);
    }
    return params;
  }
};

}  // namespace ppnet::bench
