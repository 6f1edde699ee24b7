#pragma once
// Adaptive step-size control for embedded Runge-Kutta pairs (Hairer, Norsett & Wanner I, II.4; Gustafsson's
// PI controller as in Hairer's DOPRI5): mixed absolute/relative RMS error norm, automatic first step, and
// two batch modes through the same code:
//   per-sample: every sample has its own step size, accept/reject and finishing time (the default);
//   shared:     the batch is one system with one step size and one RMS norm over all of its components
//               (what scipy's solve_ivp on the flattened batch does).
#include <limits>

#include "solvers/integrate.hpp"

namespace sdeflow {

struct AdaptiveOptions {
  double rtol = 1e-6;
  double atol = 1e-6;
  bool shared = false;
  double first_step = 0.0;    // > 0: use this |dt| for the first step instead of the automatic choice
  double max_step = std::numeric_limits<double>::infinity();   // largest |dt|
  double safety = 0.9;
  double factor_min = 0.2;    // smallest step-size ratio after any step
  double factor_max = 10.0;   // largest step-size ratio after an accepted step
  double beta = 0.04;         // PI memory exponent (0 = a plain I controller)
};

class PIController : public StepController {
 public:
  explicit PIController(AdaptiveOptions options);   // InputError on non-positive tolerances etc.
  Start start(const Term& term, const Stepper& stepper, const at::Tensor& t0, double t1,
              const at::Tensor& y0) override;
  Decision decide(const at::Tensor& t, const at::Tensor& dt, const at::Tensor& y, const StepResult& result,
                  const Stepper& stepper, const at::Tensor& state) override;
  const AdaptiveOptions& options() const { return options_; }
  // sqrt(mean((e / (atol + rtol * scale))^2)) per row ([B]), or over all rows (shared; broadcast to [B]).
  at::Tensor error_norm(const at::Tensor& error, const at::Tensor& scale) const;

 private:
  AdaptiveOptions options_;
};

}  // namespace sdeflow
