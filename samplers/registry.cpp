// The solver registry: one line per solver.
#include "samplers/registry.hpp"

#include <cstdio>

#include "core/error.hpp"
#include "core/registry.hpp"
#include "samplers/diffusion_ode.hpp"
#include "samplers/predictor_corrector.hpp"
#include "solvers/sde_steppers.hpp"

namespace sdeflow {

const std::vector<SolverInfo>& sampling_solvers() {
  using S = SolverScope;
  using F = std::function<std::unique_ptr<Stepper>(const SolverOptions&)>;
  auto plain = [](std::unique_ptr<Stepper> (*factory)()) -> F {
    return [factory](const SolverOptions&) { return factory(); };
  };
  static const std::vector<SolverInfo> solvers = {
      {"em", true, S::general, false, "any", "Euler-Maruyama on the reverse SDE",
       [](const SolverOptions&) -> std::unique_ptr<Stepper> { return std::make_unique<EulerMaruyama>(); }},
      {"pc", true, S::diffusion, false, "any", "predictor-corrector: reverse-diffusion predictor + Langevin corrector",
       [](const SolverOptions& o) -> std::unique_ptr<Stepper> {
         return std::make_unique<PredictorCorrector>(o.snr, o.corrector_steps);
       }},
      {"reverse-diffusion", true, S::diffusion, false, "any", "reverse-diffusion predictor alone (ancestral sampling)",
       [](const SolverOptions&) -> std::unique_ptr<Stepper> { return std::make_unique<ReverseDiffusionPredictor>(); }},
      {"euler", false, S::general, false, "", "Euler on the probability-flow ODE", plain(make_euler)},
      {"heun", false, S::general, false, "", "Heun (explicit trapezoid) on the probability-flow ODE", plain(make_heun)},
      {"rk4", false, S::general, false, "", "classical Runge-Kutta 4 on the probability-flow ODE", plain(make_rk4)},
      {"milstein", true, S::general, false, "diagonal or additive", "derivative-free Milstein on the reverse SDE",
       plain(make_milstein)},
      {"sra1", true, S::general, false, "additive", "Roessler's SRA1 on the reverse SDE", plain(make_sra1)},
      {"sri2", true, S::general, false, "diagonal or additive", "Roessler's SRI2 on the reverse SDE (4 stages)",
       plain(make_sri2)},
      {"ei-heun", true, S::general, false, "any", "stochastic improved Euler on the reverse SDE", plain(make_improved_euler)},
      {"ggf", true, S::general, true, "any",
       "adaptive: Euler-Maruyama / improved-Euler pair with per-sample error control (--rtol, --atol)",
       plain(make_improved_euler)},
      {"ddim", false, S::diffusion, false, "", "DDIM (eta = 0): the first-order exponential integrator of the "
       "probability-flow ODE", [](const SolverOptions&) { return make_ddim(0.0); }},
      {"ddim-stochastic", true, S::diffusion, false, "any", "DDIM with eta > 0 (--eta) on the reverse process",
       [](const SolverOptions& o) { return make_ddim(o.eta); }},
      {"dpm1", false, S::diffusion, false, "", "DPM-Solver-1 (equals DDIM)",
       [](const SolverOptions&) { return make_dpm_solver(1); }},
      {"dpm2", false, S::diffusion, false, "", "DPM-Solver-2 (midpoint in log-SNR), 2 evaluations per step",
       [](const SolverOptions&) { return make_dpm_solver(2); }},
      {"dpm3", false, S::diffusion, false, "", "DPM-Solver-3, 3 evaluations per step",
       [](const SolverOptions&) { return make_dpm_solver(3); }},
  };
  return solvers;
}

const SolverInfo& solver_info(const std::string& name) { return find_by_name(sampling_solvers(), name, "solver"); }

std::unique_ptr<Stepper> make_stepper(const std::string& name, const SolverOptions& options) {
  return solver_info(name).make(options);
}

std::string solver_help(const SolverInfo& info) {
  const auto stepper = info.make(SolverOptions{});
  char orders[96];
  if (info.stochastic) {
    std::snprintf(orders, sizeof orders, "strong order %g, weak order %d", stepper->strong_order(), stepper->order());
  } else {
    std::snprintf(orders, sizeof orders, "order %d", stepper->order());
  }
  std::string text = info.name + ": " + info.description + " (" + orders;
  if (!info.noise.empty() && info.noise != "any") text += "; " + info.noise + " noise";
  if (info.scope == SolverScope::diffusion) text += "; diffusion models only";
  return text + ")";
}

std::vector<std::string> general_sde_solvers() {
  std::vector<std::string> names;
  for (const auto& info : sampling_solvers()) {
    if (info.stochastic && info.scope == SolverScope::general && !info.adaptive) names.push_back(info.name);
  }
  return names;
}

}  // namespace sdeflow
