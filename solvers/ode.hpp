#pragma once
// Solving an ODE dy/dt = v(t, y) by solver name: the fixed-step Runge-Kutta methods, the adaptive
// embedded pairs (per-sample or shared step size) through integrate(), and the SUNDIALS backends.
// The likelihood code and the CLI choose solvers only through this.
#include <functional>
#include <string>
#include <vector>

#include "solvers/integrate.hpp"

namespace sdeflow {

struct OdeSolverInfo {
  std::string name;
  bool adaptive;        // takes rtol/atol (else --steps)
  std::string description;
};
const std::vector<OdeSolverInfo>& ode_solvers();
const OdeSolverInfo& ode_solver_info(const std::string& name);   // InputError naming the known solvers

struct OdeOptions {
  std::string solver = "dopri5";
  double rtol = 1e-6, atol = 1e-6;   // adaptive solvers
  int64_t steps = 100;               // fixed-step solvers
  int64_t max_steps = 100000;        // adaptive solvers: per sample (SUNDIALS: internal steps of the system)
  double first_step = 0.0;           // 0: automatic
  std::vector<double> save_times;    // dense-output saves (adaptive Runge-Kutta solvers)
};
void validate(const OdeOptions& options);   // InputError naming the bad option

Solution solve_ode(const VectorField& field, const at::Tensor& y0, double t0, double t1, const OdeOptions& options,
                   Observer* observer = nullptr);

}  // namespace sdeflow
