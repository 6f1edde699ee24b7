// The PI step-size controller and the automatic first step (docs/solvers.md, "Adaptive Runge-Kutta").
#include "solvers/adaptive.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

PIController::PIController(AdaptiveOptions options) : options_(options) {
  auto positive = [](double v) { return std::isfinite(v) && v > 0.0; };
  if (!positive(options_.rtol)) throw InputError("rtol must be positive and finite, got " + std::to_string(options_.rtol));
  if (!positive(options_.atol)) throw InputError("atol must be positive and finite, got " + std::to_string(options_.atol));
  if (!(options_.first_step >= 0.0) || !std::isfinite(options_.first_step)) {
    throw InputError("first step must be finite and >= 0");
  }
  if (!(options_.max_step > 0.0)) throw InputError("max step must be positive");
  if (!(options_.safety > 0.0 && options_.safety <= 1.0) || !(options_.factor_min > 0.0 && options_.factor_min < 1.0) ||
      !(options_.factor_max > 1.0) || !(options_.beta >= 0.0 && options_.beta < 0.2)) {
    throw InputError("invalid step-size controller constants");
  }
}

at::Tensor PIController::error_norm(const at::Tensor& error, const at::Tensor& scale) const {
  const auto ratio = error / (options_.atol + options_.rtol * scale);
  auto norm = options_.shared ? ratio.pow(2).mean().sqrt().expand({error.size(0)}) : ratio.pow(2).mean(1).sqrt();
  // A non-finite trial step counts as an infinitely large error: rejected, the step shrinks.
  return at::nan_to_num(norm, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity());
}

StepController::Start PIController::start(const Term& term, const Stepper& stepper, const at::Tensor& t0, double t1,
                                          const at::Tensor& y0) {
  if (!stepper.embedded_error()) {
    throw InputError("solver '" + stepper.name() + "' has no error estimate and cannot be used adaptively");
  }
  const auto span = (t1 - t0).abs();
  const auto direction = at::sign(t1 - t0);
  if (options_.first_step > 0.0) {
    return {direction * at::clamp_max(at::full_like(t0, std::min(options_.first_step, options_.max_step)), span),
            at::Tensor()};
  }
  const auto* field = dynamic_cast<const VectorField*>(&term);
  if (field == nullptr) throw InputError("an automatic first step needs an ODE; give a first step instead");
  // Hairer, Norsett & Wanner I, II.4: h0 from the sizes of y0 and v0, then a second evaluation estimates
  // the second derivative and h1 = (0.01 / max(d1, d2))^(1 / (p + 1)).
  const auto f0 = (*field)(t0, y0);
  const auto scale = y0.abs();
  const auto d0 = error_norm(y0, scale);
  const auto d1 = error_norm(f0, scale);
  auto h0 = at::where((d0 < 1e-5) | (d1 < 1e-5), at::full_like(d0, 1e-6), 0.01 * d0 / d1);
  h0 = at::minimum(h0, span);
  const auto y1 = y0 + per_sample(direction * h0) * f0;
  const auto f1 = (*field)(t0 + direction * h0, y1);
  const auto d2 = error_norm(f1 - f0, scale) / h0;
  const auto largest = at::maximum(d1, d2);
  const double exponent = 1.0 / (stepper.order() + 1);
  const auto h1 = at::where(largest <= 1e-15, at::clamp_min(h0 * 1e-3, 1e-6), at::pow(0.01 / largest, exponent));
  auto h = at::minimum(at::minimum(100.0 * h0, h1), span);
  h = at::clamp_max(h, options_.max_step);
  return {direction * h, f0};
}

StepController::Decision PIController::decide(const at::Tensor& t, const at::Tensor& dt, const at::Tensor& y,
                                              const StepResult& result, const Stepper& stepper,
                                              const at::Tensor& state) {
  (void)t;
  const auto scale = at::maximum(y.abs(), result.y.abs());
  const auto norm = error_norm(result.error, scale);
  const auto accept = norm <= 1.0;
  const double k = stepper.error_order() + 1.0;       // local error of the estimate is O(h^k)
  const double alpha = 1.0 / k - 0.75 * options_.beta;   // Hairer's DOPRI5: 0.2 - 0.75 beta
  const auto safe_norm = at::clamp_min(norm, 1e-10);
  // Accepted: PI factor safety * norm^-alpha * previous_norm^beta; rejected: I factor, never growing.
  auto grow = options_.safety * at::pow(safe_norm, -alpha) * at::pow(state, options_.beta);
  grow = at::clamp(grow, options_.factor_min, options_.factor_max);
  auto shrink = at::clamp(options_.safety * at::pow(safe_norm, -1.0 / k), options_.factor_min, 1.0);
  const auto factor = at::where(accept, grow, shrink);
  auto next = dt * factor;
  next = at::sign(dt) * at::clamp_max(next.abs(), options_.max_step);
  const auto new_state = at::where(accept, at::clamp_min(norm, 1e-4), state);
  return {accept, next, new_state};
}

}  // namespace sdeflow
