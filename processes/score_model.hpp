#pragma once
// The learned (or exact) part of a diffusion model seen as a score s(x, t) = grad_x log p_t(x), and the
// conversions between score, noise (eps) and data (x0) predictions through a linear process's marginal
// x_t = alpha(t) x0 + sigma(t) eps (score-based SDE models; NDM appendix eq. 36 for eps).
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "networks/network.hpp"
#include "solvers/term.hpp"

namespace sdeflow {

class LinearProcess;
class Process;

class ScoreModel {
 public:
  virtual ~ScoreModel() = default;
  virtual at::Tensor score(const at::Tensor& x, const at::Tensor& t) const = 0;   // [B, D]
  virtual int64_t dim() const = 0;
  // Closed forms that analytic models (the exact Gaussian mixture) have and networks do not.
  // The score and its divergence (the Laplacian of log p_t, [B]) from one evaluation.
  virtual bool has_score_divergence() const { return false; }
  virtual std::pair<at::Tensor, at::Tensor> score_and_divergence(const at::Tensor& x, const at::Tensor& t) const;
  // The score and tr(G G^T grad_x s) ([B, D], [B]) for a state-independent G, from one evaluation: the
  // probability flow's divergence is div f - 1/2 of it. Default: a scalar G times score_and_divergence()'s
  // Laplacian (InputError for a matrix G); models with a full Hessian (the mixture under a matrix process)
  // override it.
  virtual std::pair<at::Tensor, at::Tensor> score_and_weighted_divergence(const at::Tensor& x, const at::Tensor& t,
                                                                          const Diffusion& g) const;
  // log p_t(x) of the model's own marginal ([B]); used as the exact terminal density (--prior exact).
  virtual bool has_log_prob() const { return false; }
  virtual at::Tensor marginal_log_prob(const at::Tensor& x, const at::Tensor& t) const;
};

enum class Parameterisation { score, noise, data };
Parameterisation parse_parameterisation(const std::string& name);   // "score" | "noise" | "data"
std::string to_string(Parameterisation p);

// Converts a prediction in parameterisation `from` at (x, t) to a score, and a score back to `to`.
at::Tensor prediction_to_score(Parameterisation from, const at::Tensor& prediction, const at::Tensor& x,
                               const at::Tensor& t, const LinearProcess& process);
// Any process: the scalar conversions above for a LinearProcess; for a process with a Gaussian denoising kernel
// (fp, cld) the noise parameterisation s = -L_t^{-T} eps (the others: InputError naming the process).
at::Tensor prediction_to_score(Parameterisation from, const at::Tensor& prediction, const at::Tensor& x,
                               const at::Tensor& t, const Process& process);
at::Tensor score_to_prediction(Parameterisation to, const at::Tensor& score, const at::Tensor& x,
                               const at::Tensor& t, const LinearProcess& process);

// A score model built from any predictor (a network's forward pass) in the given parameterisation, so
// that solvers and the likelihood code see one interface.
class ParameterisedScore : public ScoreModel {
 public:
  using Predictor = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t)>;
  ParameterisedScore(Predictor predictor, Parameterisation parameterisation,
                     std::shared_ptr<const LinearProcess> process, int64_t dim);
  at::Tensor score(const at::Tensor& x, const at::Tensor& t) const override;
  int64_t dim() const override { return dim_; }

 private:
  Predictor predictor_;
  Parameterisation parameterisation_;
  std::shared_ptr<const LinearProcess> process_;
  int64_t dim_;
};

// A network as a ScoreModel: x [B, D] (D = prod(data_shape)) is reshaped to the network's data shape and
// converted to its device and dtype; the prediction is converted back to x's dtype and device and turned into
// a score through the process's marginal. Differentiable in x (the likelihood's traces use autograd).
class NetworkScore : public ScoreModel {
 public:
  NetworkScore(std::shared_ptr<ScoreNetwork> network, Parameterisation parameterisation,
               std::shared_ptr<const Process> process);
  at::Tensor score(const at::Tensor& x, const at::Tensor& t) const override;
  at::Tensor prediction(const at::Tensor& x, const at::Tensor& t) const;   // the raw output, [B, D]
  int64_t dim() const override { return dim_; }
  const std::shared_ptr<ScoreNetwork>& network() const { return network_; }
  Parameterisation parameterisation() const { return parameterisation_; }

 private:
  std::shared_ptr<ScoreNetwork> network_;
  Parameterisation parameterisation_;
  std::shared_ptr<const Process> process_;
  int64_t dim_;
};

}  // namespace sdeflow
