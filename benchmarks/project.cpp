// Projection and last-layer figures for the closing notes: push images/s with pictures saved,
// for a few classes and for 200 classes × 10 prototypes, beside the bare forward at the same
// batch; and the wall time of last-layer epochs with the similarity cache versus recomputing.
// Usage: ppnet_bench_project [arch=vgg16] [img_size=224] [batch=25] [threads=2]
#include <torch/torch.h>

#include <chrono>
#include <iostream>

#include "benchmarks/workload.h"
#include "model/protopnet.h"
#include "pipeline/data/prepare.h"
#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/explain.h"
#include "pipeline/stages/last_layer.h"
#include "pipeline/stages/project.h"
#include "pipeline/data/manifest.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/runtime/runtime.h"
#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"

namespace {
using namespace ppnet;
namespace fs = std::filesystem;

// A run whose model is freshly initialised (no training: projection speed does not care).
void make_run(const fs::path& data, const fs::path& dir, const std::string& arch, int img, int per_class) {
  const auto manifest = pipeline::read_manifest(data);
  auto run = pipeline::RunFolder::open_or_create(dir);
  pipeline::ModelConfig m{arch, img, static_cast<int>(manifest.classes.size()), per_class, 128, model::AddOnType::kRegular};
  model::ProtoPNet net(pipeline::to_model_options(m));
  const std::string init = run.checkpoint_name("init");
  const std::string sha256 = pipeline::save_checkpoint(run.absolute(init), *net, nullptr, nullptr);
  run.store().create_run({db::utc_now(), "bench", pipeline::model_config_json(m), data.string(),
                          pipeline::manifest_to_json(manifest)},
                         {init, sha256});
}

fs::path make_data(const test::TempDir& dir, const std::string& name, int classes, int per_class, int img, int threads) {
  test::make_pattern_folder(dir.path() / (name + "-images"), classes, per_class, img);
  pipeline::PrepareConfig p;
  p.folder = (dir.path() / (name + "-images")).string();
  p.out = (dir.path() / name).string();
  p.copies = 0;
  p.test_fraction = 0.0;
  p.threads = threads;
  pipeline::run_prepare(p);
  return p.out;
}
}  // namespace

int main(int argc, char** argv) {
  const auto [arch, img, batch, threads, iterations] = bench::start_model_workload(argc, argv, 25);
  (void)iterations;  // projection runs once per configuration
  test::TempDir dir;

  {
    model::ProtoPNetOptions o;
    o.arch = arch;
    model::ProtoPNet net(o);
    net->eval();
    torch::NoGradGuard no_grad;
    const auto x = torch::randn({batch, 3, img, img});
    net->forward(x);
    const auto t = std::chrono::steady_clock::now();
    net->forward(x);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    std::cout << arch << " " << img << "px batch " << batch << " threads " << threads << "\n"
              << "  bare ProtoPNet forward, no grad          " << batch / s << " images/s\n";
  }
  for (const auto& [classes, per_class, images_per_class] : {std::tuple{5, 10, 10}, std::tuple{200, 10, 1}}) {
    const auto data = make_data(dir, "d" + std::to_string(classes), classes, images_per_class, img, threads);
    const auto run = dir.path() / ("r" + std::to_string(classes));
    make_run(data, run, arch, img, per_class);
    for (const bool images : {true, false}) {
      pipeline::ProjectConfig c;
      c.data = data.string();
      c.run = run.string();
      c.batch_size = batch;
      c.save_images = images;
      c.runtime.threads = threads;
      const auto r = pipeline::run_project(c);
      std::cout << "  project, " << classes * per_class << " prototypes / " << classes << " classes, "
                << (images ? "with pictures   " : "without pictures") << " "
                << static_cast<double>(classes * images_per_class) / r.seconds << " images/s (search alone "
                << r.images_per_second << ")\n";
    }
    if (classes == 5) {  // explain the same images with the projected model, top-k 10
      pipeline::ExplainConfig e;
      e.run = run.string();
      e.dir = (fs::path(data) / "push").string();
      e.out = (dir.path() / "explained").string();
      e.top_k = 10;
      e.batch_size = batch;
      e.runtime.threads = threads;
      const auto r = pipeline::run_explain(e);
      std::cout << "  explain, top-k 10, " << r.explained << " images            " << r.images_per_second
                << " images/s (everything written)\n";
    }
  }
  // Last layer: 20 epochs, similarity cache versus recomputing the network every epoch.
  const auto data = make_data(dir, "ll", 2, 8, img, threads);
  for (const bool recompute : {false, true}) {
    const auto run = dir.path() / (recompute ? "ll-recompute" : "ll-cache");
    make_run(data, run, arch, img, 10);
    pipeline::LastLayerConfig c;
    c.data = data.string();
    c.run = run.string();
    c.solver = pipeline::Solver::kAdam;  // epochs through the cache: what recomputing is compared with
    c.epochs = 20;
    c.batch_size = 8;
    c.eval_batch_size = batch;
    c.recompute = recompute;
    c.runtime.threads = threads;
    const auto r = pipeline::run_last_layer(c);
    std::cout << "  last-layer, 20 epochs on 16 images, " << (recompute ? "recomputing" : "cached     ") << "  "
              << r.seconds << " s\n";
  }
}
