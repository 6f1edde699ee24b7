#pragma once
// Work-precision of ODE solvers (docs/studies.md, "Work-precision"): error vs model evaluations vs wall
// time, on probability-flow sampling (against a tight-tolerance dopri5 reference from the same x_T) and on
// the NLL of a Gaussian mixture (against its exact log-density, exact prior, analytic trace).
#include <string>
#include <vector>

namespace sdeflow {

struct WorkPrecisionOptions {
  std::string task = "pf-ode";                 // pf-ode | nll
  std::string model = "builtin:gmm2d";
  std::vector<std::string> solvers = {"euler", "heun", "rk4", "ddim", "dpm2", "dpm3", "dopri5", "dopri5-shared",
                                      "bosh3", "cvode-adams", "arkode-dp"};
  std::vector<int64_t> steps = {10, 20, 40, 80, 160};          // fixed-step solvers
  std::vector<double> tolerances = {1e-3, 1e-4, 1e-5, 1e-6, 1e-7};   // adaptive solvers (rtol = atol)
  int64_t n = 500;
  uint64_t seed = 0;
  double eps = 1e-3;                           // pf-ode: integrate T -> eps; nll: eps -> T
};

struct WorkPrecisionTable {
  std::string solver;
  bool adaptive = false;
  std::vector<double> parameter;               // steps or tolerance
  std::vector<double> error_max, error_mean, nfe, seconds;
  std::vector<int64_t> failures;
  std::string note;                            // set when the solver does not apply (then no rows)
};

void validate(const WorkPrecisionOptions& options);
std::vector<WorkPrecisionTable> run_work_precision(const WorkPrecisionOptions& options, std::string& description);

}  // namespace sdeflow
