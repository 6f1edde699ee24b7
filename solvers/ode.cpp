// solve_ode: one entry point over every ODE solver (docs/solvers.md).
#include "solvers/ode.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/registry.hpp"
#include "solvers/adaptive.hpp"
#include "solvers/stepper.hpp"
#include "solvers/sundials.hpp"

namespace sdeflow {

const std::vector<OdeSolverInfo>& ode_solvers() {
  static const std::vector<OdeSolverInfo> solvers = {
      {"dopri5", true, "Dormand-Prince 5(4), per-sample step sizes"},
      {"dopri5-shared", true, "Dormand-Prince 5(4), one step size for the whole batch"},
      {"bosh3", true, "Bogacki-Shampine 3(2), per-sample step sizes"},
      {"bosh3-shared", true, "Bogacki-Shampine 3(2), one step size for the whole batch"},
      {"cvode-adams", true, "SUNDIALS CVODE, Adams-Moulton orders 1-12 (batch as one system)"},
      {"cvode-bdf", true, "SUNDIALS CVODE, BDF orders 1-5 with matrix-free Newton-GMRES (batch as one system)"},
      {"arkode-dp", true, "SUNDIALS ARKODE explicit Runge-Kutta, Dormand-Prince 5(4) table (batch as one system)"},
      {"euler", false, "explicit Euler, fixed steps"},
      {"heun", false, "Heun, fixed steps"},
      {"rk4", false, "classical Runge-Kutta 4, fixed steps"},
  };
  return solvers;
}

const OdeSolverInfo& ode_solver_info(const std::string& name) { return find_by_name(ode_solvers(), name, "ODE solver"); }

void validate(const OdeOptions& options) {
  const auto& info = ode_solver_info(options.solver);
  auto positive = [](double v) { return std::isfinite(v) && v > 0.0; };
  if (info.adaptive) {
    if (!positive(options.rtol)) throw InputError("rtol must be positive and finite, got " + std::to_string(options.rtol));
    if (!positive(options.atol)) throw InputError("atol must be positive and finite, got " + std::to_string(options.atol));
    if (options.max_steps <= 0) throw InputError("max-steps must be positive, got " + std::to_string(options.max_steps));
  } else if (options.steps <= 0) {
    throw InputError("number of steps must be positive, got " + std::to_string(options.steps));
  }
  if (!std::isfinite(options.first_step) || options.first_step < 0.0) throw InputError("first step must be >= 0");
}

Solution solve_ode(const VectorField& field, const at::Tensor& y0, double t0, double t1, const OdeOptions& options,
                   Observer* observer) {
  validate(options);
  const auto& name = options.solver;
  if (name.rfind("cvode-", 0) == 0 || name.rfind("arkode-", 0) == 0) {
    if (!options.save_times.empty()) throw InputError("solver '" + name + "' cannot save at requested times");
    SundialsOptions sundials{options.rtol, options.atol, options.max_steps, options.first_step};
    return solve_sundials(field, parse_sundials_method(name), y0, t0, t1, sundials);
  }
  SaveAt save;
  save.times = options.save_times;
  IntegrateOptions integrate_options;
  integrate_options.max_steps = options.max_steps;
  if (!ode_solver_info(name).adaptive) {
    auto stepper = name == "euler" ? make_euler() : name == "heun" ? make_heun() : make_rk4();
    FixedGrid grid(uniform_grid(t0, t1, options.steps));
    integrate_options.max_steps = std::max<int64_t>(options.steps + 1, 1);
    return integrate(field, *stepper, grid, y0, t0, t1, save, observer, integrate_options);
  }
  const bool shared = name.size() > 7 && name.substr(name.size() - 7) == "-shared";
  const auto base = shared ? name.substr(0, name.size() - 7) : name;
  auto stepper = base == "dopri5" ? make_dopri5() : make_bosh3();
  AdaptiveOptions adaptive;
  adaptive.rtol = options.rtol;
  adaptive.atol = options.atol;
  adaptive.shared = shared;
  adaptive.first_step = options.first_step;
  PIController controller(adaptive);
  return integrate(field, *stepper, controller, y0, t0, t1, save, observer, integrate_options);
}

}  // namespace sdeflow
