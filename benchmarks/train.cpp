// Training throughput for the closing notes: a bare backbone forward+backward, one full joint
// ProtoPNet step (head, losses, Adam), and `ppnet train` itself (data pipeline included) on a
// small synthetic data set of 2 classes, all at the same architecture, size, batch and thread
// count; then the stages — joint training, evaluation, projection — against the same work of the
// same model (2 classes × 10 prototypes) on in-memory tensors, timed over the same number of
// batches, the first included.
// Usage: ppnet_bench_train [arch=vgg16] [img_size=224] [batch=8] [threads=2] [iterations=3] [batches=3]
#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <limits>

#include "benchmarks/workload.h"
#include "model/protopnet.h"
#include "pipeline/data/prepare.h"
#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/evaluate.h"
#include "pipeline/stages/project.h"
#include "pipeline/stages/train.h"
#include "pipeline/runtime/runtime.h"
#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

int main(int argc, char** argv) {
  using namespace ppnet;
  const auto [arch, img, batch, threads, iterations] = bench::start_model_workload(argc, argv, 8);
  const auto x = torch::randn({batch, 3, img, img});
  const auto y = torch::randint(0, 200, {batch}, torch::kInt64);

  // (a) the bare backbone: forward alone (no grad), then forward and backward.
  auto backbone = model::make_backbone(arch);
  double bare_forward = 0;
  {
    torch::NoGradGuard no_grad;
    backbone->eval();
    backbone->forward(x);
    const auto t0 = Clock::now();
    for (int i = 0; i < iterations; ++i) backbone->forward(x);
    bare_forward = seconds_since(t0) / iterations;
  }
  backbone->train();
  auto step_bare = [&] {
    backbone->zero_grad();
    backbone->forward(x).sum().backward();
  };
  step_bare();
  auto t = Clock::now();
  for (int i = 0; i < iterations; ++i) step_bare();
  const double bare = seconds_since(t) / iterations;

  // (b) a joint step of the whole ProtoPNet: forward, loss terms, backward, Adam.
  bench::JointModel joint_model(arch);
  auto step_joint = [&] { joint_model.step(x, y); };
  step_joint();
  t = Clock::now();
  for (int i = 0; i < iterations; ++i) step_joint();
  const double joint = seconds_since(t) / iterations;

  std::cout << arch << " " << img << "px batch " << batch << " threads " << threads << "\n"
            << "  bare backbone forward (no grad)  " << batch / bare_forward << " images/s\n"
            << "  bare backbone forward+backward   " << batch / bare << " images/s (" << bare << " s/batch)\n"
            << "  ProtoPNet joint step             " << batch / joint << " images/s (" << joint << " s/batch, +"
            << 100.0 * (joint - bare) / bare << "% over the bare backbone)\n";

  // (c) ppnet train itself, one epoch of each stage on 2 classes × `batches` batches of images.
  const int batches = argc > 6 ? std::stoi(argv[6]) : 3;
  test::TempDir dir;
  test::make_pattern_folder(dir.path() / "images", 2, batch * batches / 2 * 4 / 3 + 1, img);
  pipeline::PrepareConfig p;
  p.folder = (dir.path() / "images").string();
  p.out = (dir.path() / "data").string();
  p.copies = 0;
  p.threads = threads;
  pipeline::run_prepare(p);
  for (const char* stage : {"warm", "joint"}) {
    pipeline::TrainConfig c;
    c.stage = stage;
    c.data = p.out;
    c.run = (dir.path() / "run").string();
    c.arch = arch;
    c.img_size = img;
    c.epochs = 1;
    c.batch_size = batch;
    c.runtime.threads = threads;
    const auto r = pipeline::run_train(c);
    std::cout << "  ppnet train --stage " << stage << "        " << r.epochs[0].images_per_second
              << " images/s (data pipeline included)\n";
    if (std::string(stage) == "joint") {
      // The same model in memory, from its first batch: what the stage would do without its data.
      bench::JointModel same(arch, 2);
      const auto labels = torch::randint(0, 2, {batch}, torch::kInt64);
      t = Clock::now();
      for (int i = 0; i < batches; ++i) same.step(x, labels);
      const double in_memory = batch * batches / seconds_since(t);
      std::cout << "  the same model in memory         " << in_memory << " images/s over " << batches
                << " batches: the stage at " << r.epochs[0].images_per_second / in_memory << " of it\n";
    }
  }

  // (d) ppnet evaluate and ppnet project over the push images, whole commands (model load and
  // memory probe included), against the same passes of the same model on in-memory tensors.
  pipeline::EvaluateConfig e;
  e.run = (dir.path() / "run").string();
  e.data = p.out;
  e.split = "push";
  e.batch_size = batch;
  e.runtime.threads = threads;
  const auto evaluated = pipeline::run_evaluate(e);
  pipeline::ProjectConfig pc;
  pc.run = e.run;
  pc.data = p.out;
  pc.batch_size = batch;
  pc.runtime.threads = threads;
  const auto projected = pipeline::run_project(pc);

  bench::JointModel same(arch, 2);
  auto& net = same.net;
  net->eval();
  const int64_t pass_batches = (evaluated.images + batch - 1) / batch;
  t = Clock::now();
  for (int64_t i = 0; i < pass_batches; ++i) {
    torch::NoGradGuard no_grad;
    net->forward(x).logits.argmax(1);
  }
  const double evaluation = batch * pass_batches / seconds_since(t);
  const auto labels = torch::randint(0, 2, {batch}, torch::kInt64);
  const auto own = net->prototype_class_identity().index_select(1, labels).t() > 0;  // B×P
  t = Clock::now();
  for (int64_t i = 0; i < pass_batches; ++i) {
    torch::NoGradGuard no_grad;
    const auto d = net->activations(x).distances.flatten(2).min(2);
    std::get<0>(std::get<0>(d).masked_fill(own.logical_not(), std::numeric_limits<float>::infinity()).min(0));
  }
  const double push = batch * pass_batches / seconds_since(t);
  std::cout << "  ppnet evaluate                   " << evaluated.images_per_second << " images/s over "
            << evaluated.images << " images (the whole command)\n"
            << "  the same model in memory         " << evaluation << " images/s over " << pass_batches
            << " batches: the stage at " << evaluated.images_per_second / evaluation << " of it\n"
            << "  ppnet project                    " << projected.images_per_second
            << " images/s (the search; pictures after it)\n"
            << "  the same search in memory        " << push << " images/s over " << pass_batches
            << " batches: the stage at " << projected.images_per_second / push << " of it\n";
}
