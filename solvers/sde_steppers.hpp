#pragma once
// Higher-order and embedded SDE steppers for Ito SDEs dy = b(t, y) dt + G(t, y) dW (formulas, orders and
// measured convergence: docs/sde_solvers.md). All accept negative dt (reverse-time integration): the drift
// takes the signed step, the noise the increments of the Brownian path with variance |dt|. Like
// Euler-Maruyama, a last step with StepContext::denoise_last returns the noise-free update.
#include <memory>
#include <string>

#include "solvers/stepper.hpp"

namespace sdeflow {

// Derivative-free Milstein (Runge-Kutta-Milstein, Kloeden & Platen 11.1): with the supporting value
// Y~ = y + b h + g sqrt|h|,  y1 = y + b h + g dW + (g(Y~) - g(y)) / (2 sqrt|h|) (dW^2 - |h|), component-wise.
// Strong order 1.0 for scalar noise and for diagonal noise in the strict sense (g_i depends on y_i only;
// a scalar-kind g [B, 1] with D > 1 must not depend on y). Weak order 1. Refuses a full diffusion matrix
// unless the noise is additive (then the correction vanishes and it is Euler-Maruyama).
class Milstein : public Stepper {
 public:
  std::string name() const override { return "milstein"; }
  int order() const override { return 1; }
  double strong_order() const override { return 1.0; }
  bool stochastic() const override { return true; }
  void check_term(const Term& term) const override;
  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override;
};

// Rossler's SRA1 (2010) for additive noise, two drift evaluations, strong order 1.5 (weak order 2). Uses the
// increment and the space-time Levy area of the Brownian path (BrownianPath::increment_with_levy_area).
// Refuses a term whose noise is not additive (InputError).
class Sra1 : public Stepper {
 public:
  std::string name() const override { return "sra1"; }
  int order() const override { return 2; }
  double strong_order() const override { return 1.5; }
  bool stochastic() const override { return true; }
  void check_term(const Term& term) const override;
  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override;
};

// Rossler's SRI2 (2010, four stages) for diagonal noise (g_i depends on y_i only; scalar and additive noise
// too): strong order 1.5, deterministic order 3. Uses I_(1) = dW, I_(1,1), I_(1,1,1) (polynomials in dW) and
// I_(1,0) from the path's space-time Levy area, per component; four drift and four diffusion evaluations.
// Refuses general noise and a full non-additive diffusion matrix (InputError). docs/sde_solvers.md.
class Sri2 : public Stepper {
 public:
  std::string name() const override { return "sri2"; }
  int order() const override { return 3; }
  double strong_order() const override { return 1.5; }
  bool stochastic() const override { return true; }
  void check_term(const Term& term) const override;
  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override;
};

// The "Gotta Go Fast" pair (Jolicoeur-Martineau et al. 2021): Euler-Maruyama y' = y + b(t, y) h + G(t, y) dW
// and the stochastic improved Euler y'' = y + (b(t, y) + b(t + h, y')) h / 2 + (G(t, y) + G(t + h, y)) dW / 2
// with the same dW; returns y'' and error = y' - y''. G is evaluated at the step's start state in both
// stages, so the pair stays consistent with the Ito SDE for multiplicative noise (strong order 0.5, 1.0
// for additive noise; weak order 1). Local error of the estimate: O(|h|^1.5) with noise, O(h^2) without.
class ImprovedEuler : public Stepper {
 public:
  std::string name() const override { return "ei-heun"; }
  int order() const override { return 1; }
  double strong_order() const override { return 0.5; }
  bool stochastic() const override { return true; }
  bool embedded_error() const override { return true; }
  int error_order() const override { return 1; }
  void check_term(const Term& term) const override;
  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override;
};

std::unique_ptr<Stepper> make_milstein();
std::unique_ptr<Stepper> make_sra1();
std::unique_ptr<Stepper> make_sri2();
std::unique_ptr<Stepper> make_improved_euler();

}  // namespace sdeflow
