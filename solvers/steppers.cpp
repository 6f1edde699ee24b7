// Fixed-step solvers: explicit Runge-Kutta from a Butcher tableau (Euler, Heun, classical RK4),
// Euler-Maruyama, and the reverse-diffusion predictor + Langevin corrector of score-based SDE models
// (predictor-corrector sampling, their Algorithms 2-5). Derivations: docs/solvers.md.
#include "solvers/stepper.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "processes/linear.hpp"
#include "processes/reverse.hpp"

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

const ReverseSde& as_reverse_sde(const Term& term, const std::string& solver) {
  const auto* sde = dynamic_cast<const ReverseSde*>(&term);
  if (sde == nullptr) {
    throw InputError("solver '" + solver + "' needs a reverse-time SDE built from a process and a score model, got " +
                     term.describe());
  }
  return *sde;
}

at::Tensor scale_diffusion(const Diffusion& g, const at::Tensor& vector) { return g.apply(vector); }

}  // namespace

ExplicitRungeKutta::ExplicitRungeKutta(std::string name, int order, ButcherTableau tableau)
    : name_(std::move(name)), order_(order), tableau_(std::move(tableau)) {}

void ExplicitRungeKutta::check_term(const Term& term) const { (void)as_vector_field(term, name_); }

StepResult ExplicitRungeKutta::step(const Term& term, const at::Tensor& t, const at::Tensor& y,
                                    const at::Tensor& dt, StepContext& context) {
  (void)context;
  const auto& field = as_vector_field(term, name_);
  const auto h = per_sample(dt);
  const size_t stages = tableau_.b.size();
  std::vector<at::Tensor> k;
  k.reserve(stages);
  for (size_t i = 0; i < stages; ++i) {
    at::Tensor stage_y = y;
    for (size_t j = 0; j < i; ++j) {
      const double a = tableau_.a[i][j];
      if (a != 0.0) stage_y = stage_y + h * (a * k[j]);
    }
    k.push_back(field(t + tableau_.c[i] * dt, stage_y));
  }
  at::Tensor increment = at::zeros_like(y);
  for (size_t i = 0; i < stages; ++i) {
    if (tableau_.b[i] != 0.0) increment = increment + tableau_.b[i] * k[i];
  }
  StepResult result{y + h * increment, at::Tensor()};
  if (!tableau_.b_error.empty()) {
    at::Tensor error = at::zeros_like(y);
    for (size_t i = 0; i < stages; ++i) {
      if (tableau_.b_error[i] != 0.0) error = error + tableau_.b_error[i] * k[i];
    }
    result.error = h * error;
  }
  return result;
}

std::unique_ptr<Stepper> make_euler() {
  return std::make_unique<ExplicitRungeKutta>("euler", 1, ButcherTableau{{{}}, {1.0}, {0.0}, {}});
}

std::unique_ptr<Stepper> make_heun() {
  return std::make_unique<ExplicitRungeKutta>("heun", 2, ButcherTableau{{{}, {1.0}}, {0.5, 0.5}, {0.0, 1.0}, {}});
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

void ReverseDiffusionPredictor::check_term(const Term& term) const { (void)as_reverse_sde(term, name()); }

StepResult ReverseDiffusionPredictor::step(const Term& term, const at::Tensor& t, const at::Tensor& y,
                                           const at::Tensor& dt, StepContext& context) {
  const auto& sde = as_reverse_sde(term, name());
  // The forward transition from t - |dt| to t, inverted with the score at (y, t).
  auto [f_disc, g_disc] = sde.process().discretize(y, t, dt.abs());
  const auto mean = y - f_disc + g_disc.apply_squared(sde.score(t, y));
  if (context.last_step && context.denoise_last) return {mean, at::Tensor()};
  if (context.brownian == nullptr) throw Error("reverse-diffusion: no Brownian path given");
  // A unit-variance draw: G_disc already carries the step's scale.
  const auto unit = context.brownian->increment(t, t + dt) / per_sample(at::sqrt(dt.abs()));
  return {mean + g_disc.apply(unit), at::Tensor()};
}

PredictorCorrector::PredictorCorrector(double snr, int corrector_steps) : snr_(snr), corrector_steps_(corrector_steps) {
  if (!(snr > 0.0) || !std::isfinite(snr)) throw InputError("pc: --snr must be a positive number");
  if (corrector_steps < 0) throw InputError("pc: --corrector-steps must be >= 0");
}

void PredictorCorrector::check_term(const Term& term) const { (void)as_reverse_sde(term, name()); }

at::Tensor PredictorCorrector::correct(const Term& term, const at::Tensor& t, const at::Tensor& y,
                                       const at::Tensor& dt, StepContext& context) const {
  const auto& sde = as_reverse_sde(term, name());
  // a = alpha(t)^2 / alpha(t - |dt|)^2 (= 1 - beta_i for VP, 1 for VE), the scale of score-based SDE models.
  at::Tensor scale = at::ones_like(t);
  if (const auto* linear = dynamic_cast<const LinearProcess*>(&sde.process())) {
    const auto ratio = linear->alpha(t) / linear->alpha(t - dt.abs());
    scale = ratio * ratio;
  }
  at::Tensor x = y;
  for (int i = 0; i < corrector_steps_; ++i) {
    const auto grad = sde.score(t, x);
    const auto noise = at::randn(x.sizes(), context.generator, x.options());
    // Norms averaged over the batch, as in score-based SDE models: a per-sample ratio |z| / |s| explodes
    // for samples sitting on a mode (|s| -> 0) and throws them far away (docs/processes.md, "Samplers").
    const auto grad_norm = grad.flatten(1).norm(2, 1).mean().clamp_min(1e-30);
    const auto noise_norm = noise.flatten(1).norm(2, 1).mean();
    const auto ratio = snr_ * noise_norm / grad_norm;
    const auto step_size = per_sample(2.0 * scale * ratio * ratio);
    x = x + step_size * grad + at::sqrt(2.0 * step_size) * noise;
  }
  return x;
}

StepResult PredictorCorrector::step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                                    StepContext& context) {
  const auto corrected = correct(term, t, y, dt, context);
  return predictor_.step(term, t, corrected, dt, context);
}

}  // namespace sdeflow
