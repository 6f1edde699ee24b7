// The simulated (implicit) likelihood bound and the probability-flow regulariser (training/bound_terms.hpp;
// derivations in docs/fp_diffusion.md).
#include "training/bound_terms.hpp"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "core/error.hpp"

namespace sdeflow {

namespace {
constexpr int64_t kExactTraceMaxDim = 8;
}

at::Tensor field_divergence(const at::Tensor& u, const at::Tensor& x, bool create_graph, at::Generator& generator) {
  const int64_t n = x.size(1);
  if (!u.requires_grad()) return at::zeros({x.size(0)}, x.options());
  if (n > kExactTraceMaxDim) {
    const auto probe = at::randn(x.sizes(), generator, x.options().requires_grad(false));
    const auto g = torch::autograd::grad({u}, {x}, {probe.to(u.options())}, /*retain_graph=*/true, create_graph,
                                         /*allow_unused=*/true)[0];
    if (!g.defined()) return at::zeros({x.size(0)}, x.options());
    return (g * probe).sum(1);
  }
  at::Tensor trace = at::zeros({x.size(0)}, x.options());
  for (int64_t i = 0; i < n; ++i) {
    const auto g = torch::autograd::grad({u.select(1, i).sum()}, {x}, {}, /*retain_graph=*/true, create_graph,
                                         /*allow_unused=*/true)[0];
    if (g.defined()) trace = trace + g.select(1, i);
  }
  return trace;
}

at::Tensor simulated_bound(const Process& process, const ScoreFunction& score, const at::Tensor& x0,
                           const at::Tensor& t, const at::Tensor& q, int64_t steps, at::Generator& generator) {
  torch::AutoGradMode enable(true);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const auto zero = at::zeros({x0.size(0)}, f64);
  const auto big_t = at::full({x0.size(0)}, process.time_range().T, f64);
  const auto xt = process.simulate(x0.to(at::kCPU, at::kDouble), zero, t, steps, generator);
  const auto xT = process.simulate(xt, t, big_t, steps, generator);
  const auto prior = -process.prior_log_prob(xT);
  return prior + implicit_integrand(process, score, xt, t, generator) / q;
}

at::Tensor implicit_integrand(const Process& process, const ScoreFunction& score, const at::Tensor& xt_in,
                              const at::Tensor& t, at::Generator& generator) {
  torch::AutoGradMode enable(true);
  const auto xt = xt_in.requires_grad() ? xt_in : xt_in.detach().requires_grad_(true);   // a frozen process: a leaf
  const auto s = score(xt, t);
  const auto lambda_s = process.diffusion_squared(xt, t, s);
  const auto u = lambda_s - process.flow_drift(xt, t);
  return 0.5 * (s * lambda_s).sum(1) + field_divergence(u, xt, /*create_graph=*/true, generator);
}

at::Tensor flow_regulariser(const Process& process, const ScoreFunction& score, const at::Tensor& x,
                            const at::Tensor& t, double kinetic, double jacobian, at::Generator& generator) {
  torch::AutoGradMode enable(true);
  if (!x.requires_grad()) throw Error("flow_regulariser: x must be in the autograd graph");
  const auto v = process.flow_field(x, t, score(x, t));
  auto value = at::zeros({x.size(0)}, x.options());
  if (kinetic > 0) value = value + kinetic * (v * v).sum(1);
  if (jacobian > 0) {
    const auto probe = at::randn(x.sizes(), generator, x.options().requires_grad(false));
    const auto g = torch::autograd::grad({v}, {x}, {probe.to(v.options())}, /*retain_graph=*/true,
                                         /*create_graph=*/true, /*allow_unused=*/true)[0];
    if (g.defined()) value = value + jacobian * (g * g).sum(1);
  }
  return value;
}

at::Tensor gradient_only_into(const at::Tensor& value, const std::vector<at::Tensor>& only) {
  if (!value.requires_grad() || only.empty()) return value.detach();
  const auto grads = torch::autograd::grad({value}, only, {}, /*retain_graph=*/true, /*create_graph=*/false,
                                           /*allow_unused=*/true);
  auto surrogate = at::zeros({}, value.options());
  for (size_t i = 0; i < only.size(); ++i) {
    if (grads[i].defined()) surrogate = surrogate + (only[i] * grads[i].detach().to(only[i].options())).sum().to(value.options());
  }
  // value + (surrogate - surrogate's value): the value is value's, the gradient is d value / d only.
  return value.detach() + surrogate - surrogate.detach();
}

}  // namespace sdeflow
