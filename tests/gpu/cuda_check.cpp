// The ProtoPNet model on CUDA agrees with the same model on the CPU: forward outputs, distance
// maps, every loss term and the gradients of one joint step. Prints a line per check and the
// vgg16 forward/backward throughput; exits 1 on a mismatch.
#include <torch/torch.h>

#include <chrono>
#include <iostream>

#include "model/loss.h"
#include "model/protopnet.h"

using namespace ppnet::model;

namespace {
int failures = 0;
void check(const char* what, const torch::Tensor& cpu, const torch::Tensor& cuda, double tol) {
  const double scale = std::max(cpu.abs().max().item<double>(), 1e-12);
  const double err = (cpu - cuda.cpu()).abs().max().item<double>() / scale;
  std::cout << (err <= tol ? "ok   " : "FAIL ") << what << ": relative error " << err << "\n";
  failures += err <= tol ? 0 : 1;
}
}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::cout << "no CUDA device\n";
    return 1;
  }
  const torch::Device gpu(torch::kCUDA);
  // Compare in full fp32: cuDNN convolutions default to TF32 (about 1e-3 relative precision).
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  for (const char* arch : {"small_bn", "resnet18", "densenet121"}) {
    torch::manual_seed(0);
    ProtoPNetOptions o;
    o.arch = arch;
    o.num_classes = 4;
    o.prototypes_per_class = 3;
    o.prototype_dim = 32;
    ProtoPNet cpu(o), cuda(o);
    {
      torch::NoGradGuard no_grad;
      auto src = cpu->named_parameters();
      for (auto& p : cuda->named_parameters()) p.value().copy_(src[p.key()]);
      auto srcb = cpu->named_buffers();
      for (auto& b : cuda->named_buffers()) b.value().copy_(srcb[b.key()]);
    }
    cuda->to(gpu);
    cpu->train();
    cuda->train();
    const int size = std::string(arch) == "small_bn" ? 28 : 64;
    const auto x = torch::randn({6, 3, size, size});
    const auto y = torch::tensor({0, 1, 2, 3, 0, 1}, torch::kInt64);
    const auto oc = cpu->forward(x), og = cuda->forward(x.to(gpu));
    const std::string a = arch;
    check((a + " logits").c_str(), oc.logits, og.logits, 1e-3);
    check((a + " min distances").c_str(), oc.min_distances, og.min_distances, 1e-3);
    const auto tc = compute_loss_terms(oc.logits, oc.min_distances, y, cpu->prototype_class_identity(),
                                       cpu->last_layer()->weight, cpu->max_distance());
    const auto tg = compute_loss_terms(og.logits, og.min_distances, y.to(gpu), cuda->prototype_class_identity(),
                                       cuda->last_layer()->weight, cuda->max_distance());
    check((a + " cross-entropy").c_str(), tc.cross_entropy, tg.cross_entropy, 1e-3);
    check((a + " cluster").c_str(), tc.cluster, tg.cluster, 1e-3);
    check((a + " separation").c_str(), tc.separation, tg.separation, 1e-3);
    check((a + " l1").c_str(), tc.l1, tg.l1, 1e-5);
    total_loss(tc, {}).backward();
    total_loss(tg, {}).backward();
    check((a + " prototype gradient").c_str(), cpu->prototype_vectors().grad(), cuda->prototype_vectors().grad(), 1e-2);
    const auto ac = cpu->activations(x), ag = cuda->activations(x.to(gpu));
    check((a + " distance maps").c_str(), ac.distances, ag.distances, 1e-3);
    check((a + " pairwise").c_str(), mean_pairwise_prototype_distance(cpu->prototype_vectors()),
          mean_pairwise_prototype_distance(cuda->prototype_vectors()), 1e-4);
  }
  // Throughput of the vgg16 ProtoPNet (200 classes × 10 prototypes) at 224, batch 80, with TF32
  // convolutions allowed again, as PyTorch does by default.
  at::globalContext().setAllowTF32CuDNN(true);
  ProtoPNetOptions o;
  o.arch = "vgg16";
  ProtoPNet net(o);
  net->to(gpu);
  const auto x = torch::randn({80, 3, 224, 224}, torch::TensorOptions().device(gpu));
  const auto y = torch::randint(0, 200, {80}, torch::TensorOptions().dtype(torch::kInt64).device(gpu));
  for (int warm = 0; warm < 2; ++warm) net->forward(x);
  torch::cuda::synchronize();
  auto t = std::chrono::steady_clock::now();
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 10; ++i) net->forward(x);
  }
  torch::cuda::synchronize();
  const double fwd = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  t = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    net->zero_grad();
    const auto out = net->forward(x);
    total_loss(compute_loss_terms(out.logits, out.min_distances, y, net->prototype_class_identity(),
                                  net->last_layer()->weight, net->max_distance()),
               {})
        .backward();
  }
  torch::cuda::synchronize();
  const double step = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  std::cout << "vgg16 ProtoPNet 224px batch 80 on CUDA (fp32, TF32 convolutions): forward " << 800 / fwd << " images/s, forward+backward "
            << 800 / step << " images/s\n";
  std::cout << (failures ? "FAILED" : "all CUDA checks passed") << "\n";
  return failures ? 1 : 0;
}
