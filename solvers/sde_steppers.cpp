// Milstein (derivative-free), Rossler's SRA1 and the Euler-Maruyama / improved-Euler pair. Formulas and
// derivations: docs/sde_solvers.md.
#include "solvers/sde_steppers.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

namespace {

const SdeTerm& as_sde(const Term& term, const std::string& solver) {
  const auto* sde = dynamic_cast<const SdeTerm*>(&term);
  if (sde == nullptr) throw InputError("solver '" + solver + "' integrates an SDE, but was given " + term.describe());
  return *sde;
}

BrownianPath& path_of(const StepContext& context, const std::string& solver) {
  if (context.brownian == nullptr) throw Error(solver + ": no Brownian path given");
  return *context.brownian;
}

}  // namespace

void Milstein::check_term(const Term& term) const {
  const auto& sde = as_sde(term, name());
  if (sde.noise_type() == NoiseType::general) {
    throw InputError("solver 'milstein' needs diagonal or additive noise, but " + term.describe() +
                     " has general noise");
  }
}

StepResult Milstein::step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                          StepContext& context) {
  const auto& sde = as_sde(term, name());
  const auto h = per_sample(dt);
  const auto drift_step = y + sde.drift(t, y) * h;
  if (context.last_step && context.denoise_last) return {drift_step, at::Tensor()};
  const auto g = sde.diffusion(t, y);
  const auto dw = path_of(context, name()).increment(t, t + dt);
  auto y1 = drift_step + g.apply(dw);
  if (sde.noise_type() == NoiseType::additive) return {y1, at::Tensor()};   // g' = 0: no correction
  if (g.kind == Diffusion::Kind::full || g.kind == Diffusion::Kind::partial) {
    throw InputError("solver 'milstein' needs a scalar or diagonal diffusion of the state's dimension, got " +
                     std::string(g.kind == Diffusion::Kind::full ? "a full matrix" : "noise on part of the state") +
                     " from " + term.describe());
  }
  const auto abs_h = h.abs();
  const auto root_h = at::sqrt(abs_h);
  // Supporting value Y~ = y + b h + g sqrt|h|; (g(Y~) - g(y)) / sqrt|h| = g g' + O(sqrt|h|).
  const auto support = sde.diffusion(t, drift_step + g.value * root_h);
  if (support.kind != g.kind) throw Error("milstein: the diffusion changed kind between evaluations");
  const auto slope = at::where(root_h > 0, (support.value - g.value) / (2.0 * root_h), at::zeros_like(g.value));
  y1 = y1 + slope * (dw * dw - abs_h);
  return {y1, at::Tensor()};
}

void Sra1::check_term(const Term& term) const {
  const auto& sde = as_sde(term, name());
  if (sde.noise_type() != NoiseType::additive) {
    throw InputError("solver 'sra1' needs additive noise (G independent of the state), but " + term.describe() +
                     " has " + (sde.noise_type() == NoiseType::diagonal ? "diagonal" : "general") + " noise");
  }
}

StepResult Sra1::step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                      StepContext& context) {
  const auto& sde = as_sde(term, name());
  const auto h = per_sample(dt);
  const auto t1 = t + dt;
  const auto b0 = sde.drift(t, y);
  if (context.last_step && context.denoise_last) {
    // The noise-free update (dW = 0, J = 0): the two-stage Runge-Kutta part of the scheme.
    const auto b1 = sde.drift(t + 0.75 * dt, y + 0.75 * h * b0);
    return {y + h * (b0 / 3.0 + b1 * (2.0 / 3.0)), at::Tensor()};
  }
  const auto noise = path_of(context, name()).increment_with_levy_area(t, t1);
  // J = (1/h) int_t^{t+h} (W_s - W_t) ds = dW / 2 + H (Rossler's I_(1,0) / h).
  const auto j = 0.5 * noise.dw + noise.levy_area;
  const auto g0 = sde.diffusion(t, y);
  const auto g1 = sde.diffusion(t1, y);
  const auto g1_j = g1.apply(j);
  const auto stage = y + 0.75 * h * b0 + 1.5 * g1_j;
  const auto b1 = sde.drift(t + 0.75 * dt, stage);
  const auto y1 = y + h * (b0 / 3.0 + b1 * (2.0 / 3.0)) + g1.apply(noise.dw) - g1_j + g0.apply(j);
  return {y1, at::Tensor()};
}

namespace {
// SRI2's coefficients (Rossler 2010, SIAM J. Numer. Anal. 48(3), the 4-stage method for diagonal noise with
// deterministic order 3); row s holds the stage's dependence on stages 0 .. s-1.
constexpr int kSriStages = 4;
constexpr double kSriC0[kSriStages] = {0.0, 1.0, 0.5, 0.0};
constexpr double kSriC1[kSriStages] = {0.0, 0.25, 1.0, 0.25};
constexpr double kSriA0[kSriStages][kSriStages] = {{0, 0, 0, 0}, {1, 0, 0, 0}, {0.25, 0.25, 0, 0}, {0, 0, 0, 0}};
constexpr double kSriA1[kSriStages][kSriStages] = {{0, 0, 0, 0}, {0.25, 0, 0, 0}, {1, 0, 0, 0}, {0, 0, 0.25, 0}};
constexpr double kSriB0[kSriStages][kSriStages] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0.5, 0, 0}, {0, 0, 0, 0}};
constexpr double kSriB1[kSriStages][kSriStages] = {{0, 0, 0, 0}, {-0.5, 0, 0, 0}, {1, 0, 0, 0}, {2, -1, 0.5, 0}};
constexpr double kSriAlpha[kSriStages] = {1.0 / 6, 1.0 / 6, 2.0 / 3, 0.0};
constexpr double kSriBeta1[kSriStages] = {-1.0, 4.0 / 3, 2.0 / 3, 0.0};
constexpr double kSriBeta2[kSriStages] = {1.0, -4.0 / 3, 1.0 / 3, 0.0};
constexpr double kSriBeta3[kSriStages] = {2.0, -4.0 / 3, -2.0 / 3, 0.0};
constexpr double kSriBeta4[kSriStages] = {-2.0, 5.0 / 3, -2.0 / 3, 1.0};
}  // namespace

void Sri2::check_term(const Term& term) const {
  const auto& sde = as_sde(term, name());
  if (sde.noise_type() == NoiseType::general) {
    throw InputError("solver 'sri2' needs diagonal, scalar or additive noise, but " + term.describe() +
                     " has general noise");
  }
}

StepResult Sri2::step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                      StepContext& context) {
  const auto& sde = as_sde(term, name());
  const auto h = per_sample(dt);
  const bool noise_free = context.last_step && context.denoise_last;
  // Drift stages take the signed step; the stochastic terms the path's increments, whose variance is |h|
  // (for a reverse-time step they are those of the time-reversed motion, as for SRA1).
  at::Tensor dw, j, weight_kk, weight_kkk, root;
  if (!noise_free) {
    const auto noise = path_of(context, name()).increment_with_levy_area(t, t + dt);
    const auto a = h.abs();
    root = at::sqrt(a);
    dw = noise.dw;
    j = 0.5 * dw + noise.levy_area;                       // I_(1,0) / h
    weight_kk = (dw * dw - a) / (2.0 * root);             // I_(1,1) / sqrt|h|
    weight_kkk = (dw * dw * dw - 3.0 * a * dw) / (6.0 * a);   // I_(1,1,1) / |h|
  }
  std::vector<at::Tensor> drifts;   // f(t + c0_s h, H0_s)
  std::vector<Diffusion> g;         // G(t + c1_s h, H1_s), with noise
  auto y1 = y;
  for (int s = 0; s < kSriStages; ++s) {
    auto h0 = y, h1 = y;
    for (int k = 0; k < s; ++k) {
      if (kSriA0[s][k] != 0) h0 = h0 + kSriA0[s][k] * h * drifts[k];
      if (kSriA1[s][k] != 0) h1 = h1 + kSriA1[s][k] * h * drifts[k];
      if (noise_free) continue;
      if (kSriB0[s][k] != 0) h0 = h0 + kSriB0[s][k] * g[k].apply(j);
      if (kSriB1[s][k] != 0) h1 = h1 + kSriB1[s][k] * g[k].apply(root.expand_as(dw));
    }
    // The last stage's drift has weight 0 and no later stage uses it: not evaluated.
    drifts.push_back(kSriAlpha[s] != 0 || s + 1 < kSriStages ? sde.drift(t + kSriC0[s] * dt, h0) : at::Tensor());
    if (kSriAlpha[s] != 0) y1 = y1 + kSriAlpha[s] * h * drifts[s];
    if (noise_free) continue;
    g.push_back(sde.diffusion(t + kSriC1[s] * dt, h1));
    if ((g[s].kind == Diffusion::Kind::full || g[s].kind == Diffusion::Kind::partial) &&
        sde.noise_type() != NoiseType::additive) {
      throw InputError("solver 'sri2' needs a scalar or diagonal diffusion, got a full or partial one from " +
                       term.describe());
    }
    const auto weight = kSriBeta1[s] * dw + kSriBeta2[s] * weight_kk + kSriBeta3[s] * j + kSriBeta4[s] * weight_kkk;
    y1 = y1 + g[s].apply(weight);
  }
  return {y1, at::Tensor()};
}

void ImprovedEuler::check_term(const Term& term) const { (void)as_sde(term, name()); }

StepResult ImprovedEuler::step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                               StepContext& context) {
  const auto& sde = as_sde(term, name());
  const auto h = per_sample(dt);
  const auto t1 = t + dt;
  const auto b0 = sde.drift(t, y);
  const bool noise_free = context.last_step && context.denoise_last;
  at::Tensor g0_dw, g1_dw;
  if (!noise_free) {
    const auto dw = path_of(context, name()).increment(t, t1);
    g0_dw = sde.diffusion(t, y).apply(dw);
    g1_dw = sde.diffusion(t1, y).apply(dw);
  }
  auto euler = y + b0 * h;
  if (!noise_free) euler = euler + g0_dw;
  const auto b1 = sde.drift(t1, euler);
  auto improved = y + 0.5 * h * (b0 + b1);
  if (!noise_free) improved = improved + 0.5 * (g0_dw + g1_dw);
  return {improved, euler - improved};
}

std::unique_ptr<Stepper> make_milstein() { return std::make_unique<Milstein>(); }
std::unique_ptr<Stepper> make_sra1() { return std::make_unique<Sra1>(); }
std::unique_ptr<Stepper> make_sri2() { return std::make_unique<Sri2>(); }
std::unique_ptr<Stepper> make_improved_euler() { return std::make_unique<ImprovedEuler>(); }

}  // namespace sdeflow
