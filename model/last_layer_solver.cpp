#include "model/last_layer_solver.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace ppnet::model {
namespace {

// The problem in float64, with what every evaluation needs.
struct Problem {
  torch::Tensor s;       // N×P
  torch::Tensor y;       // N×1 int64
  torch::Tensor onehot;  // N×C
  torch::Tensor off;     // C×P: 1 where the L1 applies
  double l1;
  double n;

  Problem(const torch::Tensor& similarities, const torch::Tensor& labels, const torch::Tensor& class_identity,
          const torch::Tensor& weight, double lambda) {
    if (similarities.dim() != 2 || labels.dim() != 1 || similarities.size(0) != labels.size(0) ||
        class_identity.dim() != 2 || weight.dim() != 2 || class_identity.size(0) != similarities.size(1) ||
        weight.size(0) != class_identity.size(1) || weight.size(1) != similarities.size(1)) {
      throw std::invalid_argument("last-layer problem: expected similarities N×P, labels N, identity P×C, weight C×P");
    }
    if (!(lambda >= 0) || !std::isfinite(lambda)) throw std::invalid_argument("last-layer problem: λ must be ≥ 0");
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(similarities.device());
    s = similarities.to(f64);
    y = labels.to(similarities.device()).to(torch::kInt64).view({-1, 1});
    onehot = torch::zeros({s.size(0), weight.size(0)}, f64).scatter_(1, y, 1.0);
    off = 1 - class_identity.to(f64).t();
    l1 = lambda;
    n = static_cast<double>(std::max<int64_t>(1, s.size(0)));
  }

  torch::Tensor logits(const torch::Tensor& w) const { return s.mm(w.t()); }

  // Mean cross-entropy from the logits S·Wᵀ, and its gradient (C×P) when `gradient` is given.
  double smooth(const torch::Tensor& z, torch::Tensor* gradient) const {
    if (s.size(0) == 0) {
      if (gradient) *gradient = torch::zeros({onehot.size(1), s.size(1)}, s.options());
      return 0.0;
    }
    const auto log_p = z.log_softmax(1);
    const double value = -log_p.gather(1, y).sum().item<double>() / n;
    if (gradient) *gradient = (log_p.exp_() - onehot).t().mm(s) / n;
    return value;
  }
  double penalty(const torch::Tensor& w) const { return (w * off).abs().sum().item<double>(); }

  // Soft-thresholding of the off-class entries by τ; own-class entries pass unchanged.
  torch::Tensor prox(const torch::Tensor& v, double tau) const { return v - off * v.clamp(-tau, tau); }

  double residual(const torch::Tensor& w, const torch::Tensor& g) const {
    const auto on = (1 - off) * g.abs();
    const auto nonzero = (w != 0).to(w.scalar_type());
    const auto off_nonzero = off * nonzero * (g + l1 * w.sign()).abs();
    const auto off_zero = off * (1 - nonzero) * (g.abs() - l1).clamp_min(0);
    return (on + off_nonzero + off_zero).max().item<double>();
  }

  LastLayerObjective evaluate(const torch::Tensor& w) const {
    torch::Tensor g;
    LastLayerObjective o;
    o.cross_entropy = smooth(logits(w), &g);
    o.l1 = penalty(w);
    o.objective = o.cross_entropy + l1 * o.l1;
    o.residual = residual(w, g);
    return o;
  }
};

constexpr int kResidualEvery = 10;  // the residual costs a gradient at x: not every iteration

}  // namespace

LastLayerObjective last_layer_objective(const torch::Tensor& similarities, const torch::Tensor& labels,
                                        const torch::Tensor& class_identity, const torch::Tensor& weight,
                                        double l1) {
  torch::NoGradGuard no_grad;
  const Problem p(similarities, labels, class_identity, weight, l1);
  return p.evaluate(weight.detach().to(p.s.options()));
}

ProxResult solve_last_layer_prox(const torch::Tensor& similarities, const torch::Tensor& labels,
                                 const torch::Tensor& class_identity, const torch::Tensor& initial_weight,
                                 double l1, const ProxOptions& options,
                                 const std::function<bool(const ProxProgress&)>& on_progress) {
  torch::NoGradGuard no_grad;
  const Problem p(similarities, labels, class_identity, initial_weight, l1);
  ProxResult result;
  // The logits of x and y are kept: y's are a combination of z's and x's (y is), so each
  // iteration multiplies by S twice (the gradient at y, the logits of the candidate z).
  torch::Tensor x = initial_weight.detach().to(p.s.options()).clone();
  torch::Tensor logits_x = p.logits(x);
  result.initial = p.evaluate(x);
  double fx_total = result.initial.objective;
  double residual = result.initial.residual;
  torch::Tensor y = x, logits_y = logits_x;
  double t = 1.0;
  double lipschitz = 1.0;  // found by backtracking; may shrink again (×0.9 per iteration)
  int64_t k = 0;
  while (k < options.max_iterations && residual > options.tolerance) {
    ++k;
    torch::Tensor gy;
    const double fy = p.smooth(logits_y, &gy);
    lipschitz *= 0.9;
    torch::Tensor z, logits_z;
    double fz = 0;
    for (;;) {  // backtracking: the quadratic model at y must bound f at z
      z = p.prox(y - gy / lipschitz, p.l1 / lipschitz);
      logits_z = p.logits(z);
      fz = p.smooth(logits_z, nullptr);
      const auto d = z - y;
      const double bound = fy + (gy * d).sum().item<double>() + 0.5 * lipschitz * (d * d).sum().item<double>();
      if (fz <= bound + 1e-12 * std::abs(fy) || lipschitz > 1e12) break;
      lipschitz *= 2.0;
      ++result.backtracks;
    }
    const double fz_total = fz + p.l1 * p.penalty(z);
    if (fz_total > fx_total) {  // momentum overshot: restart from x without it
      t = 1.0;
      y = x;
      logits_y = logits_x;
    } else {
      const double t_next = 0.5 * (1.0 + std::sqrt(1.0 + 4.0 * t * t));
      const double beta = (t - 1.0) / t_next;
      y = z + beta * (z - x);
      logits_y = logits_z + beta * (logits_z - logits_x);
      x = z;
      logits_x = logits_z;
      t = t_next;
      fx_total = fz_total;
    }
    ProxProgress progress{k, fx_total, -1};
    if (k % kResidualEvery == 0) {
      torch::Tensor gx;
      p.smooth(logits_x, &gx);
      residual = p.residual(x, gx);
      progress.residual = residual;
    }
    if (on_progress && !on_progress(progress)) {
      result.stopped = true;
      break;
    }
  }
  result.iterations = k;
  result.final = p.evaluate(x);
  result.converged = result.final.residual <= options.tolerance;
  result.weight = x.to(initial_weight.options());
  return result;
}

}  // namespace ppnet::model
