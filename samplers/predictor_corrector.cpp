// Reverse-diffusion predictor and predictor-corrector sampler (samplers/predictor_corrector.hpp).
#include "samplers/predictor_corrector.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "processes/linear.hpp"
#include "processes/reverse.hpp"

namespace sdeflow {

namespace {

const ReverseSde& as_reverse_sde(const Term& term, const std::string& solver) {
  const auto* sde = dynamic_cast<const ReverseSde*>(&term);
  if (sde == nullptr) {
    throw InputError("solver '" + solver + "' needs a reverse-time SDE built from a process and a score model, got " +
                     term.describe());
  }
  return *sde;
}

}  // namespace

namespace {

// The reverse-diffusion predictor inverts the forward transition with the score alone; for a G that depends on
// x the reverse drift also needs -div(G G^T), which that inversion leaves out: refuse rather than sample the
// wrong process.
void refuse_state_dependent_diffusion(const ReverseSde& sde, const std::string& solver) {
  if (sde.process().state_dependent_diffusion()) {
    throw InputError("solver '" + solver + "' does not support the state-dependent diffusion of process " +
                     sde.process().name() + " (its predictor omits the div(G G^T) drift term); use em, milstein, "
                     "ei-heun or a probability-flow solver");
  }
}

}  // namespace

void ReverseDiffusionPredictor::check_term(const Term& term) const {
  refuse_state_dependent_diffusion(as_reverse_sde(term, name()), name());
}

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

void PredictorCorrector::check_term(const Term& term) const {
  const auto& sde = as_reverse_sde(term, name());
  refuse_state_dependent_diffusion(sde, name());
  // The Langevin corrector moves every coordinate along the score: a model that scores only where the noise
  // acts (CLD's velocity half) has no score for the rest.
  if (!sde.process().score_on_every_coordinate()) {
    throw InputError("solver 'pc' needs a score on every coordinate (its Langevin corrector); process " +
                     sde.process().name() + " carries a score only where its noise acts: use em, reverse-diffusion "
                     "or a probability-flow solver");
  }
}

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
