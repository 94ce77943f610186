#pragma once
// The last layer as the convex problem of the paper (§2.2, "convex optimization of last layer").
//
// With the features frozen, every training image is a fixed similarity vector s_i (P values),
// and fitting the last layer W (C×P) is
//     F(W) = (1/N) Σ_i CE(W s_i, y_i) + λ · Σ_{c ≠ class(j)} |W_cj|,
// a smooth convex term plus an L1 term on the off-class weights only. A proximal method solves
// it exactly, off-class weights that the optimum sets to zero become exactly 0.

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <limits>

namespace ppnet::model {

struct LastLayerObjective {
  double objective = 0;      // F(W)
  double cross_entropy = 0;  // its mean cross-entropy part
  double l1 = 0;             // Σ |off-class W| (unscaled)
  double residual = 0;       // first-order optimality residual (below)
};

/// F(W) and its parts for similarities N×P, labels N (int64), class_identity P×C, weight C×P
/// and the L1 coefficient λ ≥ 0. residual is the largest violation of the optimality
/// conditions: |∂f/∂W| for own-class weights; |∂f/∂W + λ·sign W| for non-zero off-class
/// weights; max(0, |∂f/∂W| − λ) for zero ones. 0 exactly at the minimiser. Computed in float64.
LastLayerObjective last_layer_objective(const torch::Tensor& similarities, const torch::Tensor& labels,
                                        const torch::Tensor& class_identity, const torch::Tensor& weight,
                                        double l1);

// How the convex problem is solved; both reach the same optimum (the same exact zeros).
//  - kFista: accelerated proximal gradient. Each iteration reads the features twice; it needs
//    hundreds to thousands of iterations (the problem is badly conditioned), but keeps only a
//    few C×P matrices.
//  - kNewton: proximal Newton (Lee, Sun & Saunders 2014). Each iteration builds the exact
//    Hessian of the cross-entropy, (C·P)² entries from C(C+1)/2 float32 products over the
//    features (about N·(C·P)²/2 multiply-adds), minimises the L1-regularised quadratic model
//    (FISTA on the model, which costs no pass over the features), and line-searches F; it
//    needs about ten iterations.
//  - kAuto: kNewton while C·P ≤ kNewtonMaxUnknowns, kFista beyond (where ~4,000 passes of
//    N·C·P cost less than ten Hessians; measured by `make bench-last-layer`).
enum class ProxMethod { kAuto, kFista, kNewton };
constexpr int64_t kNewtonMaxUnknowns = 2048;  // C·P; the Hessian then takes ≤ 32 MiB

struct ProxOptions {
  int64_t max_iterations = 10000;  // iteration limit (Newton's is at most 100)
  double tolerance = 1e-5;  // stop once the optimality residual is at most this
  ProxMethod method = ProxMethod::kAuto;
  // A float64 copy of the similarities (N·P·8 bytes) when it takes at most copy_bytes: each
  // product then reads it directly. Otherwise, or when they are float64 already, no copy: the
  // products take block_bytes of rows at a time, converted to float64 (some 5–15 % slower).
  int64_t copy_bytes = std::numeric_limits<int64_t>::max();
  int64_t block_bytes = int64_t{1} << 20;
};

struct ProxProgress {
  int64_t iteration = 0;
  double objective = 0;
  double residual = -1;  // computed every few iterations; -1 when not at this one
};

struct ProxResult {
  torch::Tensor weight;  // C×P, dtype and device of the initial weight
  LastLayerObjective initial, final;
  ProxMethod method = ProxMethod::kFista;  // the one used (never kAuto)
  int64_t iterations = 0;
  int64_t passes = 0;      // passes over the features (products with S, Hessian builds)
  int64_t backtracks = 0;  // line-search steps that had to shrink the step
  bool converged = false;  // residual ≤ tolerance
  bool stopped = false;    // the callback asked to stop
};

/// Minimises F from `initial_weight` by `options.method`. FISTA (Beck & Teboulle 2009) uses
/// backtracking line search on the Lipschitz constant and function-value restarts (monotone),
/// soft-thresholding the off-class weights; Newton is described at ProxMethod. Full batch,
/// float64 on the device of the inputs. The similarities may be float16, float32 or float64;
/// without room for a float64 copy (options.copy_bytes) the products take blocks of their rows
/// (Newton's Hessian, in float32), so the solver adds a block and its C×P and N×C matrices to
/// the memory they hold.
/// `on_progress`, if given, is called every iteration; returning false stops early
/// (result.stopped). Throws std::invalid_argument on mismatched shapes, similarities that are not
/// floats, or a negative λ.
ProxResult solve_last_layer_prox(const torch::Tensor& similarities, const torch::Tensor& labels,
                                 const torch::Tensor& class_identity, const torch::Tensor& initial_weight,
                                 double l1, const ProxOptions& options,
                                 const std::function<bool(const ProxProgress&)>& on_progress = {});

/// "fista" or "newton" (kAuto: "auto").
const char* prox_method_name(ProxMethod m);

}  // namespace ppnet::model
