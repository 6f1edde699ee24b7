#pragma once
// The diffusion-specific predictors of score-based SDE models, above the processes: the reverse-diffusion
// predictor inverts a process's discrete forward transition, and the predictor-corrector sampler adds
// Langevin moves along the score. Both step a ReverseSde (processes/reverse.hpp).
#include <string>

#include "solvers/stepper.hpp"

namespace sdeflow {

// Reverse-diffusion predictor (score-based SDE models, Alg. 2/3): inverts the process's discrete
// transition, x_mean = x - f_disc + G_disc G_disc^T s(x, t), x = x_mean + G_disc z.
class ReverseDiffusionPredictor : public Stepper {
 public:
  std::string name() const override { return "reverse-diffusion"; }
  int order() const override { return 1; }
  double strong_order() const override { return 0.5; }
  bool stochastic() const override { return true; }
  void check_term(const Term& term) const override;
  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override;
};

// Predictor-corrector sampler: `corrector_steps` Langevin moves at time t with the signal-to-noise step
// rule eps = 2 a (snr mean|z| / mean|s|)^2 (norms averaged over the batch), then one reverse-diffusion predictor step.
class PredictorCorrector : public Stepper {
 public:
  PredictorCorrector(double snr, int corrector_steps);
  std::string name() const override { return "pc"; }
  int order() const override { return 1; }
  double strong_order() const override { return 0.5; }
  bool stochastic() const override { return true; }
  void check_term(const Term& term) const override;
  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override;
  // The Langevin corrector alone, applied at time t (|dt| sets the VP step scale a).
  at::Tensor correct(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                     StepContext& context) const;

 private:
  double snr_;
  int corrector_steps_;
  ReverseDiffusionPredictor predictor_;
};

}  // namespace sdeflow
