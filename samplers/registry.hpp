#pragma once
// Solvers found by name (STYLE.md: every solver is one registry line): what each integrates (the reverse
// SDE or the probability-flow ODE), its orders, and a factory.
#include <functional>
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

// What a solver needs from the problem: any SDE/ODE term (a general-purpose integrator, usable by the convergence
// study on any SDE) or a diffusion model's reverse process (the score, the process's discretisation or its
// scalar coefficients: pc, reverse-diffusion, DDIM, DPM-Solver).
enum class SolverScope { general, diffusion };

struct SolverInfo {
  std::string name;
  bool stochastic;             // true: samples the reverse SDE; false: the probability-flow ODE
  SolverScope scope;
  bool adaptive;               // takes --rtol/--atol and chooses its own steps
  std::string noise;           // the noise the solver accepts: "any", "diagonal or additive", "additive", "" (ODE)
  std::string description;
  std::function<std::unique_ptr<Stepper>(const SolverOptions& options)> make;
};

const std::vector<SolverInfo>& sampling_solvers();
const SolverInfo& solver_info(const std::string& name);   // InputError naming the known solvers
std::unique_ptr<Stepper> make_stepper(const std::string& name, const SolverOptions& options = {});
// One help line per solver: "name: description (order ..., noise ...)", the stepper's declared orders included.
std::string solver_help(const SolverInfo& info);
// The general-purpose fixed-step SDE solvers (what the convergence study measures), in registry order.
std::vector<std::string> general_sde_solvers();

}  // namespace sdeflow
