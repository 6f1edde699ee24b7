// Divergence estimators and the augmented ODE (docs/likelihood.md).
#include "likelihood/divergence.hpp"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "core/error.hpp"

namespace sdeflow {

TraceMethod parse_trace_method(const std::string& name) {
  if (name == "exact") return TraceMethod::exact;
  if (name == "hutchinson-gauss") return TraceMethod::hutchinson_gauss;
  if (name == "hutchinson-rademacher") return TraceMethod::hutchinson_rademacher;
  if (name == "analytic") return TraceMethod::analytic;
  throw InputError("unknown trace estimator '" + name + "' (known: exact, hutchinson-gauss, hutchinson-rademacher, analytic)");
}

std::string to_string(TraceMethod method) {
  switch (method) {
    case TraceMethod::exact: return "exact";
    case TraceMethod::hutchinson_gauss: return "hutchinson-gauss";
    case TraceMethod::hutchinson_rademacher: return "hutchinson-rademacher";
    case TraceMethod::analytic: return "analytic";
  }
  return "?";
}

std::vector<std::string> trace_method_names() {
  return {"exact", "hutchinson-gauss", "hutchinson-rademacher", "analytic"};
}

std::pair<at::Tensor, at::Tensor> value_and_trace(const VectorField& field, const at::Tensor& t, const at::Tensor& x,
                                                  const at::Tensor& probes) {
  torch::AutoGradMode enable(true);
  const auto input = x.detach().requires_grad_(true);
  const auto value = field(t, input);
  if (!value.requires_grad()) {
    // v does not depend on x through autograd (e.g. a constant field): its divergence is zero.
    return {value.detach(), at::zeros({x.size(0)}, x.options())};
  }
  const int64_t dim = x.size(1);
  at::Tensor trace = at::zeros({x.size(0)}, x.options());
  if (!probes.defined()) {
    // Exact: row i of the Jacobian's diagonal from the VJP with e_i (one backward pass per dimension).
    for (int64_t i = 0; i < dim; ++i) {
      auto unit = at::zeros_like(value);
      unit.select(1, i).fill_(1.0);
      const auto grad = torch::autograd::grad({value}, {input}, {unit}, /*retain_graph=*/i + 1 < dim,
                                              /*create_graph=*/false, /*allow_unused=*/true)[0];
      if (grad.defined()) trace = trace + grad.select(1, i);
    }
  } else {
    const int64_t k = probes.size(0);
    for (int64_t j = 0; j < k; ++j) {
      const auto probe = probes[j];
      const auto grad = torch::autograd::grad({value}, {input}, {probe}, /*retain_graph=*/j + 1 < k,
                                              /*create_graph=*/false, /*allow_unused=*/true)[0];
      if (grad.defined()) trace = trace + (grad * probe).sum(1);
    }
    trace = trace / static_cast<double>(k);
  }
  return {value.detach(), trace.detach()};
}

AugmentedFlow::AugmentedFlow(std::shared_ptr<const ProbabilityFlow> flow, TraceMethod method, int64_t probes,
                             int64_t batch, const at::TensorOptions& options, at::Generator generator)
    : flow_(std::move(flow)), method_(method) {
  if (method_ == TraceMethod::analytic && !flow_->has_analytic_divergence()) {
    throw InputError("--trace analytic needs a model with a closed-form divergence (the Gaussian mixture); "
                     "use exact or hutchinson-*");
  }
  if (method_ == TraceMethod::hutchinson_gauss || method_ == TraceMethod::hutchinson_rademacher) {
    if (probes <= 0) throw InputError("number of probes must be positive, got " + std::to_string(probes));
    const int64_t dim = flow_->model().dim();
    // Drawn on the CPU in float64 from the seeded generator, so the probes do not depend on the device.
    const auto cpu = at::TensorOptions().dtype(at::kDouble);
    if (method_ == TraceMethod::hutchinson_gauss) {
      probes_ = at::randn({probes, batch, dim}, generator, cpu);
    } else {
      probes_ = at::randint(0, 2, {probes, batch, dim}, generator, cpu) * 2.0 - 1.0;
    }
    probes_ = probes_.to(options);
  }
}

std::string AugmentedFlow::describe() const {
  return "augmented " + flow_->describe() + " with " + to_string(method_) + " divergence";
}

at::Tensor AugmentedFlow::operator()(const at::Tensor& t, const at::Tensor& y) const {
  count_evaluation();
  const int64_t dim = y.size(1) - 1;
  const auto x = y.narrow(1, 0, dim);
  at::Tensor value, divergence;
  if (method_ == TraceMethod::analytic) {
    std::tie(value, divergence) = flow_->value_and_divergence(t, x);
  } else {
    at::Tensor probes;
    if (probes_.defined()) probes = index_.defined() ? probes_.index_select(1, index_) : probes_;
    std::tie(value, divergence) = value_and_trace(*flow_, t, x, probes);
  }
  return at::cat({value, divergence.unsqueeze(1)}, 1);
}

}  // namespace sdeflow
