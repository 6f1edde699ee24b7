#pragma once
// Strong and weak convergence orders of SDE solvers (docs/studies.md): every solver and step size of a
// ladder integrates the same Brownian paths (one virtual Brownian tree), errors are measured per path
// against the exact solution (geometric Brownian motion) or a fine-step reference on the same path, and
// the orders are least-squares slopes of log error vs log step with bootstrap confidence intervals.
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "solvers/term.hpp"

namespace sdeflow {

struct ConvergenceOptions {
  std::string problem = "gbm";             // gbm | ou | additive | model
  std::vector<std::string> solvers = {"em", "milstein", "sra1"};
  std::vector<int64_t> steps = {8, 16, 32, 64, 128};
  int64_t paths = 2000;
  uint64_t seed = 0;
  int64_t reference_steps = 4096;          // fine reference (problems without an exact solution)
  std::string reference_solver = "sra1";   // must suit the problem's noise
  int64_t bootstrap = 200;                 // resamples for the confidence intervals
  std::string model = "builtin:gmm2d";     // problem "model": the mixture's reverse SDE from T to eps
};

struct ConvergenceTable {
  std::string solver;
  std::vector<int64_t> steps;
  std::vector<double> step_size, strong_error, strong_error_se, weak_error, weak_error_se, seconds;
  std::vector<int64_t> nfe, failures;
  double strong = 0, weak = 0;             // fitted orders
  double strong_ci[2] = {0, 0}, weak_ci[2] = {0, 0};   // 95 % bootstrap percentile intervals
  // The weak order is fitted over the step sizes whose weak error is resolved (at least 2 standard errors from
  // 0); with fewer than 2 such levels the weak error is at the Monte-Carlo floor and `weak` and `weak_ci` are NaN.
  int64_t weak_levels = 0;
  bool applicable = true;                  // false when the solver refuses the problem's noise
  std::string note;
};

struct ConvergenceResult {
  std::string description;                 // the problem, its parameters, the reference used
  std::vector<ConvergenceTable> tables;
};

void validate(const ConvergenceOptions& options);
ConvergenceResult run_convergence(const ConvergenceOptions& options);

}  // namespace sdeflow
