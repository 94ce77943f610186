// The last layer on a real run's cached similarities, or on a synthetic cache of any size: the
// exact solvers (FISTA, and proximal Newton while its Hessian takes at most 512 MiB) against the
// reference's 20 Adam epochs (lr 1e-4, batch 80) from the same start (own class 1, other classes
// −0.5): objective, optimality residual, iterations and passes over the features, sparsity,
// accuracy and wall time.
// Usage: ppnet_bench_last_layer RUN DATA [threads=2] [l1=1e-4] [tolerance] [max_iterations]
//        ppnet_bench_last_layer --synthetic N P C [threads=2] [l1=1e-4] [tolerance] [max_iterations]
//   (N training images, P prototypes, C classes: similarities in [0, 10], an image's own-class
//   prototypes higher by a random margin, so that the classes overlap as a trained model's do)
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "model/last_layer_solver.h"
#include "model/loss.h"
#include "pipeline/stages/image_data.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/runtime/runtime.h"

namespace {
using namespace ppnet;
using Clock = std::chrono::steady_clock;

std::pair<torch::Tensor, torch::Tensor> similarities(model::ProtoPNetImpl& net, const std::string& data,
                                                     const std::string& split, const pipeline::ModelInput& img) {
  torch::NoGradGuard no_grad;
  const auto list = pipeline::read_list(data, split);
  pipeline::BatchLoader loader(data, list, pipeline::sequential_order(list.size()), img, 200, 0);
  std::vector<torch::Tensor> s, y;
  pipeline::Batch b;
  while (loader.next(&b)) {
    s.push_back(net.similarity(net.forward(b.images).min_distances));  // by the run's activation
    y.push_back(b.labels);
  }
  return {torch::cat(s), torch::cat(y)};
}

double accuracy(const torch::Tensor& s, const torch::Tensor& y, const torch::Tensor& w) {
  return s.mm(w.t()).argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
}

void print(const char* name, const model::LastLayerObjective& o, const torch::Tensor& w, const torch::Tensor& identity,
           double test_acc, double seconds) {
  const double zero = model::off_class_sparsity(w, identity, 1.2e-38).item<double>();
  std::printf("%-22s objective %.6f  residual %.2e  off-class exactly 0 %5.1f%%  test acc %.4f  %7.2f s\n", name,
              o.objective, o.residual, 100 * zero, test_acc, seconds);
}

struct Cache {
  torch::Tensor s, y, test_s, test_y, identity, w0;
};

Cache from_run(const std::string& run_dir, const std::string& data) {
  auto run = pipeline::RunFolder::open(run_dir);
  auto net = pipeline::load_latest_model(run, torch::kCPU);
  net->eval();
  const auto img = pipeline::model_input(run.model_config());
  Cache c;
  std::tie(c.s, c.y) = similarities(*net, data, "train", img);
  std::tie(c.test_s, c.test_y) = similarities(*net, data, "test", img);
  c.identity = net->prototype_class_identity().clone();
  net->set_last_layer_connections(-0.5);
  c.w0 = net->last_layer()->weight.detach().clone();
  return c;
}

Cache synthetic(int64_t n, int64_t p, int64_t classes) {
  torch::manual_seed(7);
  Cache c;
  const auto prototype_class = torch::arange(p) % classes;
  c.identity = torch::one_hot(prototype_class, classes).to(torch::kFloat32);
  auto make = [&](int64_t count, torch::Tensor& s, torch::Tensor& y) {
    y = torch::randint(classes, {count}, torch::kInt64);
    const auto own = prototype_class.unsqueeze(0).eq(y.unsqueeze(1)).to(torch::kFloat32);
    s = (torch::rand({count, p}) * 6 + own * torch::rand({count, 1}) * 4).clamp(0, 10);
  };
  make(n, c.s, c.y);
  make(n / 5, c.test_s, c.test_y);
  c.w0 = c.identity.t() * 1.5 - 0.5;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const bool synthetic_cache = argc > 1 && std::string(argv[1]) == "--synthetic";
  const int first = synthetic_cache ? 5 : 3;  // index of the optional arguments
  if (argc < first) {
    std::cerr << "usage: ppnet_bench_last_layer RUN DATA | --synthetic N P C  [threads=2] [l1=1e-4] [tolerance] [max_iterations]\n";
    return 2;
  }
  pipeline::RuntimeConfig rc;
  rc.threads = argc > first ? std::stoi(argv[first]) : 2;
  pipeline::start_runtime(rc);
  const double l1 = argc > first + 1 ? std::stod(argv[first + 1]) : 1e-4;
  model::ProxOptions options;
  if (argc > first + 2) options.tolerance = std::stod(argv[first + 2]);
  if (argc > first + 3) options.max_iterations = std::stoll(argv[first + 3]);
  const Cache c = synthetic_cache ? synthetic(std::stoll(argv[2]), std::stoll(argv[3]), std::stoll(argv[4]))
                                  : from_run(argv[1], argv[2]);
  const auto& [s, y, ts, ty, identity, w0] = c;
  std::printf("%lld training images, %lld prototypes, %lld classes, l1 %g, %d threads, tolerance %g\n",
              static_cast<long long>(s.size(0)), static_cast<long long>(s.size(1)), static_cast<long long>(w0.size(0)), l1,
              rc.threads, options.tolerance);
  print("start", model::last_layer_objective(s, y, identity, w0, l1), w0, identity, accuracy(ts, ty, w0), 0);

  auto t0 = Clock::now();
  auto w = w0.clone().set_requires_grad(true);
  torch::optim::Adam adam({w}, torch::optim::AdamOptions(1e-4));
  const int64_t n = s.size(0);
  for (int e = 0; e < 20; ++e) {
    const auto order = torch::tensor(pipeline::epoch_order(n, 1, e));
    const auto es = s.index_select(0, order), ey = y.index_select(0, order);
    for (int64_t b = 0; b < n; b += 80) {
      const auto bs = es.slice(0, b, std::min(n, b + 80)), by = ey.slice(0, b, std::min(n, b + 80));
      adam.zero_grad();
      (torch::nn::functional::cross_entropy(bs.mm(w.t()), by) + l1 * model::off_class_l1(w, identity)).backward();
      adam.step();
    }
  }
  const double adam_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto wa = w.detach();
  print("adam, 20 epochs", model::last_layer_objective(s, y, identity, wa, l1), wa, identity, accuracy(ts, ty, wa), adam_s);

  for (const auto method : {model::ProxMethod::kFista, model::ProxMethod::kNewton}) {
    if (method == model::ProxMethod::kNewton && w0.numel() > 4 * model::kNewtonMaxUnknowns) continue;  // Hessian > 512 MiB
    options.method = method;
    t0 = Clock::now();
    const auto r = model::solve_last_layer_prox(s, y, identity, w0, l1, options);
    const double prox_s = std::chrono::duration<double>(Clock::now() - t0).count();
    char name[64];
    std::snprintf(name, sizeof name, "%s, %lld it, %lld passes", model::prox_method_name(r.method),
                  static_cast<long long>(r.iterations), static_cast<long long>(r.passes));
    print(name, r.final, r.weight, identity, accuracy(ts, ty, r.weight), prox_s);
  }
}
