#pragma once
// Sampling a diffusion model: draw x_T from the prior and integrate the reverse SDE (em, pc,
// reverse-diffusion) or the probability-flow ODE (euler, heun, rk4) from T to eps on a uniform grid.
#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "processes/score_model.hpp"
#include "processes/process.hpp"
#include "solvers/integrate.hpp"
#include "samplers/registry.hpp"

namespace sdeflow {

struct SamplingRequest {
  std::shared_ptr<const Process> process;
  std::shared_ptr<const ScoreModel> model;
  std::string solver = "em";
  SolverOptions solver_options;
  int64_t steps = 1000;
  std::string grid = "uniform";
  // Adaptive SDE sampler "ggf": error tolerances of the Euler-Maruyama / improved-Euler pair; steps unused.
  double rtol = 0.05, atol = 0.0078;   // time grid from T to eps: uniform | quadratic | logsnr | karras (linear processes)
  int64_t n = 1000;
  uint64_t seed = 0;
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kDouble;
  int64_t save_every = 0;       // save the trajectory every K steps (plus x_T and the result); 0: never
  bool denoise_last = true;     // SDE solvers: the last step returns the noise-free mean
};

// Validates the request (InputError naming the option), samples, and reports every save to `observer`.
Solution sample(const SamplingRequest& request, Observer* observer,
                const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace sdeflow
