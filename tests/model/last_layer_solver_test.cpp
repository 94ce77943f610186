#include "model/last_layer_solver.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/loss.h"
#include "model/protopnet.h"
#include "pipeline/runtime/memory.h"

namespace ppnet::model {
namespace {

struct Case {
  torch::Tensor similarities, labels, identity, weight;
};

// Similarities of a trained-like model: 3 classes × 4 prototypes, own-class prototypes nearer.
Case make_case(int64_t n = 300, int64_t classes = 3, int64_t per_class = 4) {
  torch::manual_seed(5);
  const int64_t p = classes * per_class;
  Case c;
  c.identity = torch::zeros({p, classes});
  for (int64_t j = 0; j < p; ++j) c.identity[j][j / per_class] = 1;
  c.labels = torch::randint(classes, {n}, torch::kInt64);
  auto d = torch::rand({n, p}) * 6 - 2.5 * c.identity.index_select(1, c.labels).t() * torch::rand({n, p});
  c.similarities = similarity_from_distance(d.clamp_min(0));
  c.weight = c.identity.t() - 0.5 * (1 - c.identity.t());
  return c;
}

// The optimality conditions, checked with a gradient from autograd (not the solver's own).
double kkt_violation(const Case& c, const torch::Tensor& w, double l1) {
  auto v = w.to(torch::kFloat64).detach().clone().set_requires_grad(true);
  const auto ce = torch::nn::functional::cross_entropy(c.similarities.to(torch::kFloat64).mm(v.t()), c.labels);
  const auto g = torch::autograd::grad({ce}, {v})[0];
  const auto off = 1 - c.identity.t().to(torch::kFloat64);
  double worst = 0;
  for (int64_t i = 0; i < w.size(0); ++i) {
    for (int64_t j = 0; j < w.size(1); ++j) {
      const double gij = g[i][j].item<double>(), wij = v[i][j].item<double>();
      double violation;
      if (off[i][j].item<double>() == 0) {
        violation = std::abs(gij);
      } else if (wij != 0) {
        violation = std::abs(gij + l1 * (wij > 0 ? 1 : -1));
      } else {
        violation = std::max(0.0, std::abs(gij) - l1);
      }
      worst = std::max(worst, violation);
    }
  }
  return worst;
}

// 20 epochs of the reference's Adam (lr 1e-4, batch 80) on the same cached problem.
torch::Tensor adam_epochs(const Case& c, double l1, int epochs = 20) {
  auto w = c.weight.clone().set_requires_grad(true);
  torch::optim::Adam adam({w}, torch::optim::AdamOptions(1e-4));
  const int64_t n = c.similarities.size(0);
  for (int e = 0; e < epochs; ++e) {
    for (int64_t b = 0; b < n; b += 80) {
      const auto s = c.similarities.slice(0, b, std::min(n, b + 80)), y = c.labels.slice(0, b, std::min(n, b + 80));
      adam.zero_grad();
      const auto loss = torch::nn::functional::cross_entropy(s.mm(w.t()), y) + l1 * off_class_l1(w, c.identity);
      loss.backward();
      adam.step();
    }
  }
  return w.detach();
}

// Every test of the exact solver runs with both methods.
class LastLayerProx : public ::testing::TestWithParam<ProxMethod> {
 protected:
  ProxOptions options() const {
    ProxOptions o;
    o.method = GetParam();
    return o;
  }
};

TEST_P(LastLayerProx, ReachesTheOptimumItsConditionsDescribe) {
  const Case c = make_case();
  for (const double l1 : {1e-4, 5e-3, 3e-2}) {
    ProxOptions options = this->options();
    options.tolerance = 1e-7;
    const auto r = solve_last_layer_prox(c.similarities, c.labels, c.identity, c.weight, l1, options);
    EXPECT_TRUE(r.converged) << "λ " << l1 << ": residual " << r.final.residual;
    EXPECT_LE(r.final.residual, 1e-7);
    EXPECT_LT(kkt_violation(c, r.weight, l1), 1e-6) << "λ " << l1;
    EXPECT_LT(r.final.objective, r.initial.objective);
    EXPECT_EQ(r.weight.scalar_type(), torch::kFloat32);
    EXPECT_EQ(r.weight.sizes(), c.weight.sizes());
    EXPECT_EQ(r.method, GetParam());
  }
}

TEST_P(LastLayerProx, OffClassWeightsAreExactlyZeroWhereTheOptimumSaysSo) {
  const Case c = make_case();
  const auto off = (1 - c.identity.t()) > 0;
  int64_t previous_zeros = -1;
  for (const double l1 : {1e-4, 5e-3, 3e-2, 1.0}) {
    const auto r = solve_last_layer_prox(c.similarities, c.labels, c.identity, c.weight, l1, options());
    const int64_t zeros = (r.weight.eq(0) & off).sum().item<int64_t>();
    EXPECT_GE(zeros, previous_zeros) << "a larger λ must not make the solution denser";
    previous_zeros = zeros;
    EXPECT_EQ((r.weight.eq(0) & off.logical_not()).sum().item<int64_t>(), 0) << "own-class weights are not penalised";
  }
  EXPECT_EQ(previous_zeros, off.sum().item<int64_t>()) << "a huge λ zeros every off-class weight";
}

TEST_P(LastLayerProx, BeatsTwentyAdamEpochsOnTheSameCache) {
  const Case c = make_case();
  const double l1 = 1e-4;
  const auto adam = last_layer_objective(c.similarities, c.labels, c.identity, adam_epochs(c, l1), l1);
  const auto prox = solve_last_layer_prox(c.similarities, c.labels, c.identity, c.weight, l1, options());
  EXPECT_LT(prox.final.objective, adam.objective);
  EXPECT_GT(adam.residual, 100 * prox.final.residual);
}

// Without room for a float64 copy the products take blocks of S's rows (here 8 rows at a time,
// the last block shorter), and S may come as float16 from a compact cache: the same optimum, to
// float64's rounding, as the copy of the same values.
TEST_P(LastLayerProx, BlocksOfRowsAndCompactSimilaritiesFindTheSameOptimum) {
  const Case c = make_case(301);
  const auto compact = c.similarities.to(torch::kHalf);
  const auto widened = compact.to(torch::kFloat);
  const auto off = (1 - c.identity.t()) > 0;
  ProxOptions options = this->options();
  options.tolerance = 1e-7;
  const auto whole = solve_last_layer_prox(widened, c.labels, c.identity, c.weight, 5e-3, options);
  options.copy_bytes = 0;
  options.block_bytes = 8 * 12 * 8;  // 8 rows of 12 prototypes in float64
  for (const auto& s : {widened, compact}) {
    const auto blocks = solve_last_layer_prox(s, c.labels, c.identity, c.weight, 5e-3, options);
    ASSERT_TRUE(whole.converged && blocks.converged);
    EXPECT_NEAR(blocks.final.objective, whole.final.objective, 1e-9 * whole.final.objective) << s.scalar_type();
    EXPECT_TRUE(torch::equal(blocks.weight.eq(0) & off, whole.weight.eq(0) & off)) << s.scalar_type();
    EXPECT_EQ(blocks.weight.scalar_type(), torch::kFloat32);
  }
  EXPECT_NEAR(last_layer_objective(compact, c.labels, c.identity, whole.weight, 5e-3).objective, whole.final.objective,
              1e-12 * whole.final.objective);
  EXPECT_THROW(solve_last_layer_prox(c.similarities.gt(0.5), c.labels, c.identity, c.weight, 5e-3, options),
               std::invalid_argument);
}

// Without room for a float64 copy of S (N·P·8 bytes, 16 MiB here) the solver allocates a block of
// rows and its N×C and C×P matrices beside the similarities, not even a float32 copy; with room,
// it makes the copy.
TEST_P(LastLayerProx, CopiesTheSimilaritiesOnlyWhereThereIsRoom) {
  const Case c = make_case(20000, 2, 50);
  ProxOptions options = this->options();
  options.max_iterations = 3;
  const int64_t copy32 = c.similarities.numel() * 4;
  const auto peak = [&] {
    return pipeline::peak_allocation(
        [&] { solve_last_layer_prox(c.similarities, c.labels, c.identity, c.weight, 1e-3, options); });
  };
  EXPECT_GE(peak(), 2 * copy32);
  options.copy_bytes = 2 * copy32 - 1;
  const int64_t lean = peak();
  EXPECT_LT(lean, copy32 * 3 / 4) << lean << " bytes at the peak; a float32 copy is " << copy32;
}

TEST(LastLayerProx, ObjectiveMatchesTheTrainingLoss) {
  const Case c = make_case();
  const double l1 = 1e-2;
  const auto o = last_layer_objective(c.similarities, c.labels, c.identity, c.weight, l1);
  const double ce = torch::nn::functional::cross_entropy(c.similarities.to(torch::kFloat64).mm(c.weight.t().to(torch::kFloat64)),
                                                         c.labels).item<double>();
  EXPECT_NEAR(o.cross_entropy, ce, 1e-12);
  EXPECT_NEAR(o.l1, off_class_l1(c.weight, c.identity).item<double>(), 1e-5);
  EXPECT_NEAR(o.objective, ce + l1 * o.l1, 1e-12);
}

TEST_P(LastLayerProx, StopsWhenTheCallbackSaysSoAndRefusesBadInput) {
  const Case c = make_case();
  int64_t calls = 0;
  const auto r = solve_last_layer_prox(c.similarities, c.labels, c.identity, c.weight, 1e-4, options(),
                                       [&](const ProxProgress& p) { return ++calls < 3 && p.iteration < 3; });
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.iterations, 3);
  EXPECT_THROW(solve_last_layer_prox(c.similarities, c.labels, c.identity, c.weight, -1.0, options()),
               std::invalid_argument);
  EXPECT_THROW(solve_last_layer_prox(c.similarities, c.labels, c.identity, c.weight.t(), 1e-4, options()),
               std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Method, LastLayerProx, ::testing::Values(ProxMethod::kFista, ProxMethod::kNewton),
                         [](const auto& info) { return std::string(prox_method_name(info.param)); });

// Both methods on one larger problem (8 classes × 10 prototypes, 2,000 images): the same
// objective to 1e-7 relative, the same exact zeros, and Newton in under a fifth of the passes.
TEST(LastLayerProxMethods, NewtonAndFistaFindTheSameOptimumNewtonInFarFewerPasses) {
  const Case c = make_case(2000, 8, 10);
  const auto off = (1 - c.identity.t()) > 0;
  for (const double l1 : {1e-4, 3e-3}) {
    ProxOptions options;
    options.tolerance = 1e-8;
    options.max_iterations = 100000;
    options.method = ProxMethod::kFista;
    const auto fista = solve_last_layer_prox(c.similarities, c.labels, c.identity, c.weight, l1, options);
    options.method = ProxMethod::kNewton;
    const auto newton = solve_last_layer_prox(c.similarities, c.labels, c.identity, c.weight, l1, options);
    ASSERT_TRUE(fista.converged && newton.converged) << fista.final.residual << " " << newton.final.residual;
    EXPECT_NEAR(newton.final.objective, fista.final.objective, 1e-7 * fista.final.objective) << "λ " << l1;
    EXPECT_TRUE(torch::equal(newton.weight.eq(0) & off, fista.weight.eq(0) & off)) << "λ " << l1;
    EXPECT_LT(kkt_violation(c, newton.weight, l1), 1e-7);
    EXPECT_LT(newton.iterations, 30);
    EXPECT_LT(5 * newton.passes, fista.passes) << newton.passes << " vs " << fista.passes;
  }
}

TEST(LastLayerProxMethods, AutoTakesNewtonWhileTheHessianIsSmallFistaBeyond) {
  const Case small = make_case(50, 4, 5);
  ProxOptions options;
  options.max_iterations = 2;
  EXPECT_EQ(solve_last_layer_prox(small.similarities, small.labels, small.identity, small.weight, 1e-4, options).method,
            ProxMethod::kNewton);
  const int64_t per_class = kNewtonMaxUnknowns / 4 + 1;  // 2 classes × 513 prototypes each: C·P = 2,052
  const Case large = make_case(20, 2, per_class);
  EXPECT_EQ(solve_last_layer_prox(large.similarities, large.labels, large.identity, large.weight, 1e-4, options).method,
            ProxMethod::kFista);
}

}  // namespace
}  // namespace ppnet::model
