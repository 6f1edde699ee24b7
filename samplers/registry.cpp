// The solver registry: one line per solver.
#include "samplers/registry.hpp"

#include "core/error.hpp"
#include "core/registry.hpp"
#include "samplers/diffusion_ode.hpp"
#include "samplers/predictor_corrector.hpp"
#include "solvers/sde_steppers.hpp"

namespace sdeflow {

const std::vector<SolverInfo>& sampling_solvers() {
  static const std::vector<SolverInfo> solvers = {
      {"em", true, "Euler-Maruyama on the reverse SDE"},
      {"pc", true, "predictor-corrector: reverse-diffusion predictor + Langevin corrector"},
      {"reverse-diffusion", true, "reverse-diffusion predictor alone (ancestral sampling)"},
      {"euler", false, "Euler on the probability-flow ODE"},
      {"heun", false, "Heun (explicit trapezoid) on the probability-flow ODE"},
      {"rk4", false, "classical Runge-Kutta 4 on the probability-flow ODE"},
      {"milstein", true, "derivative-free Milstein on the reverse SDE (strong order 1)"},
      {"sra1", true, "Roessler's SRA1 on the reverse SDE (additive noise, strong order 1.5)"},
      {"sri2", true, "Roessler's SRI2 on the reverse SDE (diagonal noise, strong order 1.5; 4 stages)"},
      {"ei-heun", true, "stochastic improved Euler on the reverse SDE"},
      {"ggf", true, "adaptive: Euler-Maruyama / improved-Euler pair with per-sample error control (--rtol, --atol)"},
      {"ddim", false, "DDIM (eta = 0): the first-order exponential integrator of the probability-flow ODE"},
      {"ddim-stochastic", true, "DDIM with eta > 0 (--eta) on the reverse process"},
      {"dpm1", false, "DPM-Solver-1 (equals DDIM)"},
      {"dpm2", false, "DPM-Solver-2 (midpoint in log-SNR), 2 evaluations per step"},
      {"dpm3", false, "DPM-Solver-3, 3 evaluations per step"},
  };
  return solvers;
}

const SolverInfo& solver_info(const std::string& name) { return find_by_name(sampling_solvers(), name, "solver"); }

std::unique_ptr<Stepper> make_stepper(const std::string& name, const SolverOptions& options) {
  (void)solver_info(name);
  if (name == "em") return std::make_unique<EulerMaruyama>();
  if (name == "pc") return std::make_unique<PredictorCorrector>(options.snr, options.corrector_steps);
  if (name == "reverse-diffusion") return std::make_unique<ReverseDiffusionPredictor>();
  if (name == "euler") return make_euler();
  if (name == "milstein") return make_milstein();
  if (name == "sra1") return make_sra1();
  if (name == "sri2") return make_sri2();
  if (name == "ei-heun" || name == "ggf") return make_improved_euler();
  if (name == "ddim") return make_ddim(0.0);
  if (name == "ddim-stochastic") return make_ddim(options.eta);
  if (name == "dpm1") return make_dpm_solver(1);
  if (name == "dpm2") return make_dpm_solver(2);
  if (name == "dpm3") return make_dpm_solver(3);
  if (name == "heun") return make_heun();
  if (name == "rk4") return make_rk4();
  // A registered name without a factory line is a programming error, never a silent fallback to another solver.
  throw Error("solver registry: '" + name + "' is registered but has no factory");
}

}  // namespace sdeflow
