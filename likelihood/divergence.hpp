#pragma once
// The augmented probability-flow ODE of the instantaneous change of variables (FFJORD; score-based SDE
// models, appendix D.2): the state [x, l] in R^(D+1) with dx/dt = v(x, t) and dl/dt = div_x v(x, t).
// The divergence is the trace of the Jacobian, computed
//   exact:                  D vector-Jacobian products with the unit vectors (autograd), for small D;
//   hutchinson-gauss/-rademacher: (1/K) sum_k e_k^T (dv/dx) e_k with K probes per sample, drawn once per
//                          solve and fixed for it (each sample keeps its own probes, whatever subset of the
//                          batch the solver evaluates);
//   analytic:               in closed form where the model provides it (the Gaussian mixture).
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "processes/reverse.hpp"
#include "solvers/term.hpp"

namespace sdeflow {

enum class TraceMethod { exact, hutchinson_gauss, hutchinson_rademacher, analytic };
TraceMethod parse_trace_method(const std::string& name);   // "exact" | "hutchinson-gauss" | ... ; InputError
std::string to_string(TraceMethod method);
std::vector<std::string> trace_method_names();

// Divergence of any differentiable vector field by autograd: exact, or Hutchinson with the given probes
// ([K, B, D]). Returns v (detached) and div v ([B]).
std::pair<at::Tensor, at::Tensor> value_and_trace(const VectorField& field, const at::Tensor& t, const at::Tensor& x,
                                                  const at::Tensor& probes);

class AugmentedFlow : public VectorField {
 public:
  // `batch` rows; probes are drawn from `generator` for hutchinson methods (K = probes per sample).
  AugmentedFlow(std::shared_ptr<const ProbabilityFlow> flow, TraceMethod method, int64_t probes, int64_t batch,
                const at::TensorOptions& options, at::Generator generator);
  std::string describe() const override;
  // y = [x, l] ([B, D + 1]) -> [v, div v].
  at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override;
  void bind_samples(const at::Tensor& index) const override { index_ = index; }
  const at::Tensor& probes() const { return probes_; }   // [K, B, D], undefined unless hutchinson

 private:
  std::shared_ptr<const ProbabilityFlow> flow_;
  TraceMethod method_;
  at::Tensor probes_;
  mutable at::Tensor index_;
};

}  // namespace sdeflow
