#pragma once
// Solvers found by name (STYLE.md: every solver is one registry line): what each integrates (the reverse
// SDE or the probability-flow ODE), its orders, and a factory.
#include <memory>
#include <string>
#include <vector>

#include "solvers/stepper.hpp"

namespace sdeflow {

struct SolverOptions {
  double snr = 0.16;           // pc: Langevin signal-to-noise ratio (score-based SDE models' 2-D default)
  int corrector_steps = 1;     // pc: Langevin moves per step
  double eta = 1.0;            // ddim-stochastic: noise scale in (0, 1] (eta = 1: DDPM-like ancestral sampling)
};

struct SolverInfo {
  std::string name;
  bool stochastic;             // true: samples the reverse SDE; false: the probability-flow ODE
  std::string description;
};

const std::vector<SolverInfo>& sampling_solvers();
const SolverInfo& solver_info(const std::string& name);   // InputError naming the known solvers
std::unique_ptr<Stepper> make_stepper(const std::string& name, const SolverOptions& options = {});

}  // namespace sdeflow
