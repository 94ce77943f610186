#include "model/last_layer_solver.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace ppnet::model {
namespace {

// The largest violation of the optimality conditions of weights w with smooth gradient g, L1
// coefficient λ where `penalised` is 1 (last_layer_objective's residual): of the problem, or of
// Newton's quadratic model when g is the model's gradient.
double optimality_residual(const torch::Tensor& w, const torch::Tensor& g, const torch::Tensor& penalised, double l1) {
  const auto on = (1 - penalised) * g.abs();
  const auto nonzero = (w != 0).to(w.scalar_type());
  const auto off_nonzero = penalised * nonzero * (g + l1 * w.sign()).abs();
  const auto off_zero = penalised * (1 - nonzero) * (g.abs() - l1).clamp_min(0);
  return (on + off_nonzero + off_zero).max().item<double>();
}

// The problem, with what every evaluation needs. S in float64 when its copy takes at most
// `copy_bytes`; else as given (float32, or float16 from a compact cache), the products taking a
// block of its rows at a time in float64, about `block_bytes` of them.
struct Problem {
  torch::Tensor s;       // N×P
  torch::Tensor y;       // N×1 int64
  torch::Tensor onehot;  // N×C
  torch::Tensor off;     // C×P: 1 where the L1 applies
  torch::TensorOptions f64;
  double l1;
  double n;
  int64_t block_rows;
  mutable int64_t passes = 0;  // products with S so far

  Problem(const torch::Tensor& similarities, const torch::Tensor& labels, const torch::Tensor& class_identity,
          const torch::Tensor& weight, double lambda, const ProxOptions& options) {
    if (similarities.dim() != 2 || labels.dim() != 1 || similarities.size(0) != labels.size(0) ||
        class_identity.dim() != 2 || weight.dim() != 2 || class_identity.size(0) != similarities.size(1) ||
        weight.size(0) != class_identity.size(1) || weight.size(1) != similarities.size(1)) {
      throw std::invalid_argument("last-layer problem: expected similarities N×P, labels N, identity P×C, weight C×P");
    }
    if (!similarities.is_floating_point()) throw std::invalid_argument("last-layer problem: similarities must be floats");
    if (!(lambda >= 0) || !std::isfinite(lambda)) throw std::invalid_argument("last-layer problem: λ must be ≥ 0");
    f64 = torch::TensorOptions().dtype(torch::kFloat64).device(similarities.device());
    const bool copy = similarities.numel() <= options.copy_bytes / 8;
    s = copy ? similarities.to(torch::kFloat64).contiguous() : similarities.contiguous();
    y = labels.to(similarities.device()).to(torch::kInt64).view({-1, 1});
    onehot = torch::zeros({s.size(0), weight.size(0)}, f64).scatter_(1, y, 1.0);
    off = 1 - class_identity.to(f64).t();
    l1 = lambda;
    n = static_cast<double>(std::max<int64_t>(1, s.size(0)));
    block_rows = s.scalar_type() == torch::kFloat64
                     ? std::max<int64_t>(1, s.size(0))
                     : std::max<int64_t>(1, options.block_bytes / (8 * std::max<int64_t>(1, s.size(1))));
  }

  // Rows [begin, end) of S in `dtype`.
  torch::Tensor rows(int64_t begin, int64_t end, torch::ScalarType dtype) const {
    return s.slice(0, begin, end).to(dtype);
  }

  torch::Tensor logits(const torch::Tensor& w) const {
    ++passes;
    auto z = torch::empty({s.size(0), w.size(0)}, f64);
    const auto wt = w.t();
    for (int64_t b = 0; b < s.size(0); b += block_rows) {
      const int64_t e = std::min(s.size(0), b + block_rows);
      auto out = z.slice(0, b, e);
      torch::mm_out(out, rows(b, e, torch::kFloat64), wt);
    }
    return z;
  }

  // Rᵀ·S (C×P) for R N×C in float64.
  torch::Tensor transposed_product(const torch::Tensor& r) const {
    auto g = torch::zeros({r.size(1), s.size(1)}, f64);
    for (int64_t b = 0; b < s.size(0); b += block_rows) {
      const int64_t e = std::min(s.size(0), b + block_rows);
      g.addmm_(r.slice(0, b, e).t(), rows(b, e, torch::kFloat64));
    }
    return g;
  }

  // Mean cross-entropy from the logits S·Wᵀ, and its gradient (C×P) when `gradient` is given.
  double smooth(const torch::Tensor& z, torch::Tensor* gradient) const {
    if (s.size(0) == 0) {
      if (gradient) *gradient = torch::zeros({onehot.size(1), s.size(1)}, f64);
      return 0.0;
    }
    const auto log_p = z.log_softmax(1);
    const double value = -log_p.gather(1, y).sum().item<double>() / n;
    if (gradient) {
      ++passes;
      *gradient = transposed_product(log_p.exp_() - onehot) / n;
    }
    return value;
  }
  double penalty(const torch::Tensor& w) const { return (w * off).abs().sum().item<double>(); }

  // Soft-thresholding of the off-class entries by τ; own-class entries pass unchanged.
  torch::Tensor prox(const torch::Tensor& v, double tau) const { return v - off * v.clamp(-tau, tau); }

  double residual(const torch::Tensor& w, const torch::Tensor& g) const { return optimality_residual(w, g, off, l1); }

  // The cross-entropy's Hessian at logits z, (C·P)×(C·P) with W flattened row by row:
  // (1/N) Σ_i (diag p_i − p_i p_iᵀ) ⊗ s_i s_iᵀ, p_i = softmax(z_i); block (c, d) is
  // Sᵀ diag(p_c ⊙ (δ_cd − p_d)) S / N. Products in float32, a block of S's rows at a time: a
  // Newton direction needs no more, and the line search and the residual stay in float64. One
  // pass over S, the upper triangle's blocks summed and the lower one mirrored.
  torch::Tensor hessian(const torch::Tensor& z) const {
    ++passes;
    const int64_t classes = onehot.size(1), features = s.size(1);
    const auto prob = z.softmax(1).to(torch::kFloat32);
    auto h = torch::zeros({classes * features, classes * features}, s.options().dtype(torch::kFloat32));
    const int64_t block = 2 * block_rows;  // float32 rows: the same bytes
    for (int64_t b = 0; b < s.size(0); b += block) {
      const int64_t e = std::min(s.size(0), b + block);
      const auto s32 = rows(b, e, torch::kFloat32);
      const auto p = prob.slice(0, b, e);
      for (int64_t c = 0; c < classes; ++c) {
        const auto rows_c = torch::indexing::Slice(c * features, (c + 1) * features);
        for (int64_t d = c; d < classes; ++d) {
          const auto weight = p.select(1, c) * ((c == d ? 1.0 : 0.0) - p.select(1, d));
          h.index({rows_c, torch::indexing::Slice(d * features, (d + 1) * features)})
              .addmm_((s32 * weight.unsqueeze(1)).t(), s32);
        }
      }
    }
    for (int64_t c = 0; c < classes; ++c) {
      const auto rows_c = torch::indexing::Slice(c * features, (c + 1) * features);
      for (int64_t d = c + 1; d < classes; ++d) {
        const auto cols_d = torch::indexing::Slice(d * features, (d + 1) * features);
        h.index_put_({cols_d, rows_c}, h.index({rows_c, cols_d}).t());
      }
    }
    return h.to(torch::kFloat64).div_(n);
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

// The step d minimising the quadratic model g·d + ½ dᵀHd + λ Σ_off |x + d|, by FISTA on the
// model (step 1/λmax(H), gradient-based adaptive restart) until the model's optimality
// residual is at most `tolerance` or 20,000 iterations. The model is badly conditioned like the problem itself, but
// an iteration costs one product with H instead of two passes over the features. Vectors of
// C·P float64 entries; `penalised` is 1 where the L1 applies.
torch::Tensor newton_step(const torch::Tensor& h, const torch::Tensor& g, const torch::Tensor& x,
                          const torch::Tensor& penalised, double l1, double tolerance) {
  constexpr int kMaxIterations = 20000, kCheckEvery = 10;
  auto b = torch::linspace(1.0, 2.0, x.numel(), x.options());  // λmax(H) by power iteration, H ⪰ 0
  double lmax = 0;
  for (int i = 0; i < 100; ++i) {
    b = h.mv(b);
    lmax = b.norm().item<double>();
    if (!(lmax > 0)) return torch::zeros_like(x);  // H = 0: no curvature, no model to minimise
    b /= lmax;
  }
  const double step = 1.0 / (1.05 * lmax);  // the estimate approaches λmax from below
  auto prox = [&](const torch::Tensor& v) { return v - penalised * v.clamp(-l1 * step, l1 * step); };
  auto model_gradient = [&](const torch::Tensor& u) { return g + h.mv(u - x); };
  torch::Tensor u = x, v = x;
  double t = 1.0;
  for (int k = 1; k <= kMaxIterations; ++k) {
    const auto next = prox(v - step * model_gradient(v));
    if (((v - next) * (next - u)).sum().item<double>() > 0) {  // momentum against the descent: restart
      t = 1.0;
      v = next;
    } else {
      const double t_next = 0.5 * (1.0 + std::sqrt(1.0 + 4.0 * t * t));
      v = next + ((t - 1.0) / t_next) * (next - u);
      t = t_next;
    }
    u = next;
    if (k % kCheckEvery == 0 && optimality_residual(u, model_gradient(u), penalised, l1) <= tolerance) break;
  }
  return u - x;
}

ProxResult solve_fista(const Problem& p, const torch::Tensor& initial_weight, const ProxOptions& options,
                       const std::function<bool(const ProxProgress&)>& on_progress);
ProxResult solve_newton(const Problem& p, const torch::Tensor& initial_weight, const ProxOptions& options,
                        const std::function<bool(const ProxProgress&)>& on_progress);

}  // namespace

LastLayerObjective last_layer_objective(const torch::Tensor& similarities, const torch::Tensor& labels,
                                        const torch::Tensor& class_identity, const torch::Tensor& weight,
                                        double l1) {
  torch::NoGradGuard no_grad;
  const Problem p(similarities, labels, class_identity, weight, l1, ProxOptions());
  return p.evaluate(weight.detach().to(p.f64));
}

const char* prox_method_name(ProxMethod m) {
  switch (m) {
    case ProxMethod::kFista: return "fista";
    case ProxMethod::kNewton: return "newton";
    case ProxMethod::kAuto: break;
  }
  return "auto";
}

ProxResult solve_last_layer_prox(const torch::Tensor& similarities, const torch::Tensor& labels,
                                 const torch::Tensor& class_identity, const torch::Tensor& initial_weight,
                                 double l1, const ProxOptions& options,
                                 const std::function<bool(const ProxProgress&)>& on_progress) {
  torch::NoGradGuard no_grad;
  const Problem p(similarities, labels, class_identity, initial_weight, l1, options);
  ProxMethod method = options.method;
  if (method == ProxMethod::kAuto) {
    method = initial_weight.numel() <= kNewtonMaxUnknowns ? ProxMethod::kNewton : ProxMethod::kFista;
  }
  ProxResult result = method == ProxMethod::kNewton ? solve_newton(p, initial_weight, options, on_progress)
                                                    : solve_fista(p, initial_weight, options, on_progress);
  result.method = method;
  result.passes = p.passes;
  result.weight = result.weight.to(initial_weight.options());
  return result;
}

namespace {

ProxResult solve_fista(const Problem& p, const torch::Tensor& initial_weight, const ProxOptions& options,
                       const std::function<bool(const ProxProgress&)>& on_progress) {
  ProxResult result;
  // The logits of x and y are kept: y's are a combination of z's and x's (y is), so each
  // iteration multiplies by S twice (the gradient at y, the logits of the candidate z).
  torch::Tensor x = initial_weight.detach().to(p.f64).clone();
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
  result.weight = x;
  return result;
}

// Proximal Newton: the Hessian's quadratic model solved to a residual a hundredth of the
// current one, then a backtracking line search on F with the sufficient decrease of Lee, Sun &
// Saunders (σ = 1e-4).
ProxResult solve_newton(const Problem& p, const torch::Tensor& initial_weight, const ProxOptions& options,
                        const std::function<bool(const ProxProgress&)>& on_progress) {
  constexpr int64_t kMaxNewtonIterations = 100;
  ProxResult result;
  const auto penalised = p.off.reshape({-1});
  torch::Tensor x = initial_weight.detach().to(p.f64).clone();
  torch::Tensor logits_x = p.logits(x);
  const int64_t cap = std::min(options.max_iterations, kMaxNewtonIterations);
  int64_t k = 0;
  for (;; ++k) {
    torch::Tensor g;
    const double fx = p.smooth(logits_x, &g);
    const double objective = fx + p.l1 * p.penalty(x);
    const double residual = p.residual(x, g);
    if (k == 0) result.initial = LastLayerObjective{objective, fx, p.penalty(x), residual};
    if (k > 0 && on_progress && !on_progress(ProxProgress{k, objective, residual})) {
      result.stopped = true;
      break;
    }
    if (residual <= options.tolerance || k >= cap) break;
    const auto d = newton_step(p.hessian(logits_x), g.reshape({-1}), x.reshape({-1}), penalised, p.l1,
                               0.01 * residual)
                       .view_as(x);
    // F's directional decrease bound: g·d + λ(‖x+d‖ − ‖x‖) ≤ 0 at the model's minimiser.
    const double decrease = (g * d).sum().item<double>() + p.l1 * (p.penalty(x + d) - p.penalty(x));
    double t = 1.0;
    bool accepted = false;
    torch::Tensor candidate, logits_c;
    for (int halving = 0; halving < 40; ++halving, t *= 0.5) {
      candidate = x + t * d;
      logits_c = p.logits(candidate);
      const double fc = p.smooth(logits_c, nullptr) + p.l1 * p.penalty(candidate);
      if (fc <= objective + 1e-4 * t * decrease) {
        accepted = true;
        break;
      }
      ++result.backtracks;
    }
    if (!accepted) break;  // no decrease left in float64: as close as this arithmetic gets
    x = candidate;
    logits_x = logits_c;
  }
  result.iterations = k;
  result.final = p.evaluate(x);
  result.converged = result.final.residual <= options.tolerance;
  result.weight = x;
  return result;
}

}  // namespace

}  // namespace ppnet::model
