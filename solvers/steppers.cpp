// Fixed-step solvers: explicit Runge-Kutta from a Butcher tableau (Euler, Heun, classical RK4),
// Euler-Maruyama, and the reverse-diffusion predictor + Langevin corrector of score-based SDE models
// (predictor-corrector sampling, their Algorithms 2-5). Derivations: docs/solvers.md.
#include "solvers/stepper.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

namespace {

const VectorField& as_vector_field(const Term& term, const std::string& solver) {
  const auto* field = dynamic_cast<const VectorField*>(&term);
  if (field == nullptr) {
    throw InputError("solver '" + solver + "' integrates an ODE, but was given " + term.describe());
  }
  return *field;
}

const SdeTerm& as_sde(const Term& term, const std::string& solver) {
  const auto* sde = dynamic_cast<const SdeTerm*>(&term);
  if (sde == nullptr) throw InputError("solver '" + solver + "' integrates an SDE, but was given " + term.describe());
  return *sde;
}

at::Tensor scale_diffusion(const Diffusion& g, const at::Tensor& vector) { return g.apply(vector); }

}  // namespace

at::Tensor Stepper::interpolate(const at::Tensor& y0, const StepResult& result, const at::Tensor& dt,
                                const at::Tensor& theta) const {
  (void)y0; (void)result; (void)dt; (void)theta;
  throw InputError("solver '" + name() + "' has no dense output: it cannot save at requested times");
}

ExplicitRungeKutta::ExplicitRungeKutta(std::string name, int order, ButcherTableau tableau)
    : ExplicitRungeKutta(std::move(name), order, order, std::move(tableau)) {}

ExplicitRungeKutta::ExplicitRungeKutta(std::string name, int order, int error_order, ButcherTableau tableau)
    : name_(std::move(name)), order_(order), error_order_(error_order), tableau_(std::move(tableau)) {
  // FSAL: the last stage is evaluated at (t + dt, y_new), i.e. c = 1 and its row of A equals b.
  const size_t s = tableau_.b.size();
  fsal_ = s >= 2 && tableau_.c.back() == 1.0 && tableau_.b.back() == 0.0 && tableau_.a.back().size() == s - 1;
  for (size_t j = 0; fsal_ && j + 1 < s; ++j) fsal_ = tableau_.a.back()[j] == tableau_.b[j];
}

void ExplicitRungeKutta::check_term(const Term& term) const { (void)as_vector_field(term, name_); }

StepResult ExplicitRungeKutta::step(const Term& term, const at::Tensor& t, const at::Tensor& y,
                                    const at::Tensor& dt, StepContext& context) {
  const auto& field = as_vector_field(term, name_);
  const auto h = per_sample(dt);
  const size_t stages = tableau_.b.size();
  // hk[j] = h k_j once per stage, so every combination below is one fused add per term.
  std::vector<at::Tensor> k, hk;
  k.reserve(stages);
  hk.reserve(stages);
  for (size_t i = 0; i < stages; ++i) {
    at::Tensor stage_y = y;   // for the FSAL stage this is y_new itself (its row of A is b)
    for (size_t j = 0; j < i; ++j) {
      const double a = tableau_.a[i][j];
      if (a != 0.0) stage_y = at::add(stage_y, hk[j], a);
    }
    if (i == 0 && context.f0.defined()) {
      k.push_back(context.f0);
    } else {
      k.push_back(field(t + tableau_.c[i] * dt, stage_y));
    }
    hk.push_back(h * k.back());
    if (fsal_ && i + 1 == stages) {
      StepResult result{stage_y, at::Tensor(), k.back(), {}};
      at::Tensor error = at::zeros_like(y);
      for (size_t m = 0; m < stages; ++m) {
        if (tableau_.b_error[m] != 0.0) error = at::add(error, hk[m], tableau_.b_error[m]);
      }
      result.error = error;
      result.stages = std::move(k);
      return result;
    }
  }
  at::Tensor y_new = y;
  for (size_t i = 0; i < stages; ++i) {
    if (tableau_.b[i] != 0.0) y_new = at::add(y_new, hk[i], tableau_.b[i]);
  }
  StepResult result{y_new, at::Tensor(), at::Tensor(), {}};
  if (!tableau_.b_error.empty()) {
    at::Tensor error = at::zeros_like(y);
    for (size_t i = 0; i < stages; ++i) {
      if (tableau_.b_error[i] != 0.0) error = at::add(error, hk[i], tableau_.b_error[i]);
    }
    result.error = error;
  }
  return result;
}

at::Tensor ExplicitRungeKutta::interpolate(const at::Tensor& y0, const StepResult& result, const at::Tensor& dt,
                                           const at::Tensor& theta) const {
  if (!fsal_ || result.stages.empty()) return Stepper::interpolate(y0, result, dt, theta);
  const auto h = per_sample(dt);
  const auto s = per_sample(theta);
  const auto& y1 = result.y;
  const auto f0 = h * result.stages.front();
  const auto f1 = h * result.f1;
  if (tableau_.b_mid.empty()) {
    // Cubic Hermite through (y0, h v0) and (y1, h v1): third order, enough for a 3(2) pair.
    return (1 - s) * y0 + s * y1 + s * (s - 1) * ((1 - 2 * s) * (y1 - y0) + (s - 1) * f0 + s * f1);
  }
  // Quartic p(s) = y0 + f0 s + a2 s^2 + a3 s^3 + a4 s^4 with p(1) = y1, p'(1) = f1, p(1/2) = y_mid
  // (derivation in docs/solvers.md).
  at::Tensor y_mid = y0;
  for (size_t i = 0; i < result.stages.size(); ++i) {
    if (tableau_.b_mid[i] != 0.0) y_mid = at::add(y_mid, h * result.stages[i], tableau_.b_mid[i]);
  }
  const auto A = y1 - y0 - f0;
  const auto B = f1 - f0;
  const auto C = 16.0 * (y_mid - y0 - 0.5 * f0);
  const auto a4 = 2.0 * B - 8.0 * A + C;
  const auto a3 = 14.0 * A - 3.0 * B - 2.0 * C;
  const auto a2 = -5.0 * A + B + C;
  return y0 + s * (f0 + s * (a2 + s * (a3 + s * a4)));
}

std::unique_ptr<Stepper> make_euler() {
  return std::make_unique<ExplicitRungeKutta>("euler", 1, ButcherTableau{{{}}, {1.0}, {0.0}, {}});
}

std::unique_ptr<Stepper> make_heun() {
  return std::make_unique<ExplicitRungeKutta>("heun", 2, ButcherTableau{{{}, {1.0}}, {0.5, 0.5}, {0.0, 1.0}, {}});
}

std::unique_ptr<Stepper> make_dopri5() {
  ButcherTableau t;
  t.c = {0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0};
  t.a = {{},
         {1.0 / 5},
         {3.0 / 40, 9.0 / 40},
         {44.0 / 45, -56.0 / 15, 32.0 / 9},
         {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
         {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
         {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
  t.b = {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0.0};
  const std::vector<double> b_hat = {5179.0 / 57600, 0.0, 7571.0 / 16695, 393.0 / 640, -92097.0 / 339200,
                                     187.0 / 2100, 1.0 / 40};
  for (size_t i = 0; i < t.b.size(); ++i) t.b_error.push_back(t.b[i] - b_hat[i]);
  // Shampine's continuous extension evaluated at the midpoint (Hairer, Norsett & Wanner, II.6).
  t.b_mid = {6025192743.0 / 30085553152 / 2, 0.0, 51252292925.0 / 65400821598 / 2,
             -2691868925.0 / 45128329728 / 2, 187940372067.0 / 1594534317056 / 2,
             -1776094331.0 / 19743644256 / 2, 11237099.0 / 235043384 / 2};
  return std::make_unique<ExplicitRungeKutta>("dopri5", 5, 4, std::move(t));
}

std::unique_ptr<Stepper> make_bosh3() {
  ButcherTableau t;
  t.c = {0.0, 0.5, 0.75, 1.0};
  t.a = {{}, {0.5}, {0.0, 0.75}, {2.0 / 9, 1.0 / 3, 4.0 / 9}};
  t.b = {2.0 / 9, 1.0 / 3, 4.0 / 9, 0.0};
  const std::vector<double> b_hat = {7.0 / 24, 1.0 / 4, 1.0 / 3, 1.0 / 8};
  for (size_t i = 0; i < t.b.size(); ++i) t.b_error.push_back(t.b[i] - b_hat[i]);
  return std::make_unique<ExplicitRungeKutta>("bosh3", 3, 2, std::move(t));
}

std::unique_ptr<Stepper> make_rk4() {
  return std::make_unique<ExplicitRungeKutta>(
      "rk4", 4,
      ButcherTableau{{{}, {0.5}, {0.0, 0.5}, {0.0, 0.0, 1.0}}, {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6}, {0.0, 0.5, 0.5, 1.0}, {}});
}

void EulerMaruyama::check_term(const Term& term) const { (void)as_sde(term, name()); }

StepResult EulerMaruyama::step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                               StepContext& context) {
  const auto& sde = as_sde(term, name());
  if (context.brownian == nullptr) throw Error("em: no Brownian path given");
  auto mean = y + sde.drift(t, y) * per_sample(dt);
  if (context.last_step && context.denoise_last) return {mean, at::Tensor()};
  const auto dw = context.brownian->increment(t, t + dt);
  return {mean + scale_diffusion(sde.diffusion(t, y), dw), at::Tensor()};
}

}  // namespace sdeflow
