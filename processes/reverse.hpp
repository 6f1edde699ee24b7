#pragma once
// Reverse-time SDE and probability-flow ODE, assembled once from any forward process and score model
// (score-based SDE models; FP-Diffusion eq. 12 and NDM appendix eqs. 23-33 for the general G(x, t)):
//   reverse SDE:  dx = [f - G G^T s - div(G G^T)] dt + G dW_bar        (integrated with dt < 0)
//   PF ODE:       dx/dt = f - 1/2 G G^T s - 1/2 div(G G^T)
#include <memory>

#include "processes/score_model.hpp"
#include "processes/process.hpp"
#include "solvers/term.hpp"

namespace sdeflow {

class ReverseSde : public SdeTerm {
 public:
  ReverseSde(std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model);
  std::string describe() const override;
  at::Tensor drift(const at::Tensor& t, const at::Tensor& y) const override;
  Diffusion diffusion(const at::Tensor& t, const at::Tensor& y) const override;
  NoiseType noise_type() const override;
  int64_t noise_dim(int64_t state_dim) const override { return process_->noise_dim(state_dim); }
  // One counted evaluation of the score model.
  at::Tensor score(const at::Tensor& t, const at::Tensor& y) const;
  const Process& process() const { return *process_; }

 private:
  std::shared_ptr<const Process> process_;
  std::shared_ptr<const ScoreModel> model_;
};

class ProbabilityFlow : public VectorField {
 public:
  ProbabilityFlow(std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model);
  std::string describe() const override;
  at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override;
  const Process& process() const { return *process_; }
  const ScoreModel& model() const { return *model_; }
  // div_y v in closed form: div f - 1/2 tr(G G^T grad s), for a state-independent G, a drift whose divergence
  // the process knows and a model with a closed-form score derivative (score_and_weighted_divergence()).
  bool has_analytic_divergence() const;
  // v and div v ([B, D], [B]) from one counted evaluation; InputError unless has_analytic_divergence().
  std::pair<at::Tensor, at::Tensor> value_and_divergence(const at::Tensor& t, const at::Tensor& y) const;

 private:
  std::shared_ptr<const Process> process_;
  std::shared_ptr<const ScoreModel> model_;
};

}  // namespace sdeflow
