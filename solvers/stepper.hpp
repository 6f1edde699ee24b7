#pragma once
// One step of a solver (Boost.Odeint's stepper layer; diffrax's AbstractSolver): a stepper declares its
// order, whether it is stochastic and whether it returns an error estimate, and maps (t, y, dt) to the
// next state. Adaptivity lives in the StepController, the time loop in integrate().
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "solvers/brownian.hpp"
#include "solvers/term.hpp"

namespace sdeflow {

struct StepContext {
  at::Generator generator;              // extra randomness (Langevin corrector noise)
  BrownianPath* brownian = nullptr;     // the driving Brownian motion of an SDE
  bool last_step = false;               // the final step: SDE samplers return the noise-free mean
  bool denoise_last = true;
  at::Tensor f0;                        // FSAL steppers: v(t, y) if already known (undefined: compute it)
};

struct StepResult {
  at::Tensor y;       // [B, D]
  at::Tensor error;   // [B, D] local error estimate, undefined unless embedded_error()
  at::Tensor f1{};    // [B, D] v(t + dt, y_new) for FSAL steppers (the next step's first stage)
  std::vector<at::Tensor> stages{};   // the stage derivatives, kept by steppers with dense output
};

class Stepper {
 public:
  virtual ~Stepper() = default;
  virtual std::string name() const = 0;
  virtual int order() const = 0;                       // deterministic (ODE) or weak order
  virtual double strong_order() const { return order(); }
  virtual bool stochastic() const = 0;
  virtual bool embedded_error() const { return false; }
  // Order of the embedded error estimate (its local error is O(h^(error_order + 1))); sets the step-size
  // controller's exponent.
  virtual int error_order() const { return order(); }
  // First-same-as-last: the last stage is v at the new point and seeds the next step (StepContext::f0).
  virtual bool fsal() const { return false; }
  // Dense output: the state at t + theta dt (theta [B] in [0, 1]) from a step's result.
  virtual bool dense_output() const { return false; }
  virtual at::Tensor interpolate(const at::Tensor& y0, const StepResult& result, const at::Tensor& dt,
                                 const at::Tensor& theta) const;
  // Throws InputError unless this stepper can integrate `term` (e.g. an ODE stepper given an SDE).
  virtual void check_term(const Term& term) const = 0;
  virtual StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                          StepContext& context) = 0;
};

// An explicit Runge-Kutta method given by its Butcher tableau (diffrax: a solver is its tableau).
struct ButcherTableau {
  std::vector<std::vector<double>> a;   // strictly lower triangular, row i has i entries
  std::vector<double> b;
  std::vector<double> c;
  std::vector<double> b_error;          // b - b_hat for an embedded pair; empty if none
  std::vector<double> b_mid{};          // weights of y(t + dt/2) for dense output (Shampine); empty if none
};

class ExplicitRungeKutta : public Stepper {
 public:
  ExplicitRungeKutta(std::string name, int order, ButcherTableau tableau);
  std::string name() const override { return name_; }
  int order() const override { return order_; }
  bool stochastic() const override { return false; }
  bool embedded_error() const override { return !tableau_.b_error.empty(); }
  int error_order() const override { return error_order_; }
  bool fsal() const override { return fsal_; }
  bool dense_output() const override { return fsal_; }
  void check_term(const Term& term) const override;
  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override;
  // Quartic through y0, y1, v0, v1 and y(t + dt/2) when the tableau has b_mid, else cubic Hermite.
  at::Tensor interpolate(const at::Tensor& y0, const StepResult& result, const at::Tensor& dt,
                         const at::Tensor& theta) const override;
  // An embedded pair: `error_order` is the order of the lower-order solution.
  ExplicitRungeKutta(std::string name, int order, int error_order, ButcherTableau tableau);

 private:
  std::string name_;
  int order_;
  int error_order_;
  bool fsal_ = false;
  ButcherTableau tableau_;
};

std::unique_ptr<Stepper> make_euler();
std::unique_ptr<Stepper> make_heun();
std::unique_ptr<Stepper> make_rk4();
// Embedded pairs with FSAL and dense output, for the adaptive controller (solvers/adaptive.hpp).
std::unique_ptr<Stepper> make_dopri5();   // Dormand-Prince 5(4), 7 stages, 6 evaluations per step
std::unique_ptr<Stepper> make_bosh3();    // Bogacki-Shampine 3(2), 4 stages, 3 evaluations per step

// Euler-Maruyama for any SdeTerm: y + b dt + G dW (strong order 0.5, 1.0 for additive noise; weak 1).
class EulerMaruyama : public Stepper {
 public:
  std::string name() const override { return "em"; }
  int order() const override { return 1; }
  double strong_order() const override { return 0.5; }
  bool stochastic() const override { return true; }
  void check_term(const Term& term) const override;
  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override;
};

}  // namespace sdeflow
