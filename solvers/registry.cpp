// The solver registry: one line per solver.
#include "solvers/registry.hpp"

#include "core/error.hpp"

namespace sdeflow {

const std::vector<SolverInfo>& sampling_solvers() {
  static const std::vector<SolverInfo> solvers = {
      {"em", true, "Euler-Maruyama on the reverse SDE"},
      {"pc", true, "predictor-corrector: reverse-diffusion predictor + Langevin corrector"},
      {"reverse-diffusion", true, "reverse-diffusion predictor alone (ancestral sampling)"},
      {"euler", false, "Euler on the probability-flow ODE"},
      {"heun", false, "Heun (explicit trapezoid) on the probability-flow ODE"},
      {"rk4", false, "classical Runge-Kutta 4 on the probability-flow ODE"},
  };
  return solvers;
}

const SolverInfo& solver_info(const std::string& name) {
  std::string known;
  for (const auto& info : sampling_solvers()) {
    if (info.name == name) return info;
    known += (known.empty() ? "" : ", ") + info.name;
  }
  throw InputError("unknown solver '" + name + "' (known: " + known + ")");
}

std::unique_ptr<Stepper> make_stepper(const std::string& name, const SolverOptions& options) {
  (void)solver_info(name);
  if (name == "em") return std::make_unique<EulerMaruyama>();
  if (name == "pc") return std::make_unique<PredictorCorrector>(options.snr, options.corrector_steps);
  if (name == "reverse-diffusion") return std::make_unique<ReverseDiffusionPredictor>();
  if (name == "euler") return make_euler();
  if (name == "heun") return make_heun();
  return make_rk4();
}

}  // namespace sdeflow
