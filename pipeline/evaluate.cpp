#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/loss.h"
#include "pipeline/atomic_file.h"
#include "pipeline/commands.h"
#include "pipeline/image_data.h"
#include "pipeline/progress.h"
#include "pipeline/run_folder.h"
#include "pipeline/runtime.h"

namespace ppnet::pipeline {

namespace fs = std::filesystem;

EvaluateReport run_evaluate(const EvaluateConfig& c) {
  const auto start = std::chrono::steady_clock::now();
  const Runtime rt = start_runtime(c.runtime);
  const fs::path data(c.data);
  RunWithData opened = open_run_with_data(c.run, data);
  RunFolder& run = opened.run;
  const Manifest& manifest = opened.manifest;
  const ModelConfig& m = opened.model;
  const auto final_checkpoint = run.store().latest_final_checkpoint();
  auto net = load_latest_model(run, rt.device);
  net->eval();
  torch::NoGradGuard no_grad;

  if (c.split == "val" && !manifest.counts.count("val")) {
    throw std::runtime_error(c.data + " has no val split (prepare it with --val-fraction)");
  }
  const auto list = read_list(data, c.split);
  const int64_t C = m.num_classes;
  EvaluateReport r;
  r.run = c.run;
  r.split = c.split;
  r.checkpoint = final_checkpoint ? final_checkpoint->path : run.checkpoint_name("init");
  for (const auto& cls : manifest.classes) r.class_names.push_back(cls.name);
  r.confusion.assign(static_cast<size_t>(C), std::vector<int64_t>(static_cast<size_t>(C), 0));
  std::ostringstream predictions;
  predictions << "path,label,predicted,logit\n";
  int64_t top1 = 0, top5 = 0;
  {
    BatchLoader loader(data, list, sequential_order(list.size()), m.img_size, c.batch_size, 0);
    Progress progress("evaluate " + c.split, list.size());
    Batch b;
    while (loader.next(&b)) {
      const auto logits = net->forward(b.images.to(rt.device)).logits.cpu();
      const auto k = std::min<int64_t>(5, C);
      const auto topk = std::get<1>(logits.topk(k, 1));
      const auto pred = topk.select(1, 0);
      for (int64_t i = 0; i < b.labels.size(0); ++i) {
        const int64_t y = b.labels[i].item<int64_t>(), p = pred[i].item<int64_t>();
        ++r.confusion[static_cast<size_t>(y)][static_cast<size_t>(p)];
        top1 += y == p;
        top5 += topk[i].eq(y).any().item<bool>() ? 1 : 0;
        const auto& e = list[static_cast<size_t>(b.index * c.batch_size + i)];
        predictions << '"' << e.path << "\"," << y << ',' << p << ',' << logits[i][p].item<double>() << '\n';
      }
      progress.advance(static_cast<uint64_t>(b.labels.size(0)));
    }
  }
  r.images = static_cast<int64_t>(list.size());
  r.accuracy = r.images ? static_cast<double>(top1) / static_cast<double>(r.images) : 0.0;
  r.top5_accuracy = r.images ? static_cast<double>(top5) / static_cast<double>(r.images) : 0.0;
  for (int64_t k = 0; k < C; ++k) {
    int64_t n = 0;
    for (auto v : r.confusion[static_cast<size_t>(k)]) n += v;
    r.per_class_accuracy.push_back(n ? static_cast<double>(r.confusion[static_cast<size_t>(k)][static_cast<size_t>(k)]) / static_cast<double>(n) : 0.0);
  }
  const auto w = net->last_layer()->weight.cpu();
  const auto identity = net->prototype_class_identity().cpu();
  r.prototypes = net->num_prototypes();
  r.off_class_sparsity = model::off_class_sparsity(w, identity).item<double>();
  r.own_class_strongest = w.argmax(0).eq(identity.argmax(1)).to(torch::kFloat32).mean().item<double>();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.images_per_second = static_cast<double>(r.images) / std::max(r.seconds, 1e-9);

  if (!c.predictions_csv.empty()) write_file_atomic(c.predictions_csv, predictions.str());
  if (!c.confusion_csv.empty()) {
    std::ostringstream os;
    os << "true\\predicted";
    for (const auto& n : r.class_names) os << ",\"" << n << '"';
    os << '\n';
    for (int64_t k = 0; k < C; ++k) {
      os << '"' << r.class_names[static_cast<size_t>(k)] << '"';
      for (auto v : r.confusion[static_cast<size_t>(k)]) os << ',' << v;
      os << '\n';
    }
    write_file_atomic(c.confusion_csv, os.str());
  }
  run.store().add_evaluation({0, "", r.checkpoint, r.split, r.images, r.accuracy, r.top5_accuracy,
                              nlohmann::json{{"per_class_accuracy", r.per_class_accuracy},
                                             {"confusion", r.confusion},
                                             {"prototypes", r.prototypes},
                                             {"off_class_sparsity", r.off_class_sparsity},
                                             {"own_class_strongest", r.own_class_strongest}}
                                  .dump()});
  return r;
}

}  // namespace ppnet::pipeline
