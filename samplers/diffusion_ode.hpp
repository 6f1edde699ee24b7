#pragma once
// Fast solvers for the probability-flow ODE of a linear process (VP, sub-VP, VE, or any LinearProcess whose
// log-SNR lambda(t) = log(alpha/sigma) decreases strictly): DDIM (deterministic, eta = 0, or stochastic,
// 0 < eta <= 1) and the single-step DPM-Solver of orders 1-3 (Lu et al. 2022), exponential integrators in
// lambda with the noise prediction eps_hat = -sigma * score. They are ordinary Steppers for integrate() with
// a FixedGrid; time_grid() gives the usual grids (uniform, quadratic, uniform in log-SNR, Karras et al.).
// Derivations, conditions on the process and measured orders: docs/diffusion_ode_solvers.md.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "solvers/stepper.hpp"

namespace sdeflow {

class LinearProcess;

// DDIM: x_t = alpha_t x0_hat + sqrt(sigma_t^2 - c^2) eps_hat + c z with c = eta sigma_t sqrt(1 - e^{-2h}),
// h = lambda_t - lambda_s. Name "ddim"; order 1. eta must lie in [0, 1] (InputError otherwise).
//  - eta = 0: deterministic, stochastic() false, identical in exact arithmetic to DPM-Solver-1. Needs a
//    ProbabilityFlow term of a LinearProcess.
//  - eta > 0: stochastic() true; z is the driving Brownian increment divided by sqrt(|dt|) (StepContext::
//    brownian, as the reverse-diffusion predictor does), so integrate() must be given a Brownian path.
//    Accepts a ProbabilityFlow or a ReverseSde of a LinearProcess (both carry the process and the score);
//    integrates only from T towards eps (dt < 0). The last step adds no noise when denoise_last is set.
std::unique_ptr<Stepper> make_ddim(double eta = 0.0);

// Single-step DPM-Solver of order 1, 2 or 3 ("dpm1", "dpm2", "dpm3"; InputError for other orders):
// DPM-Solver-2 with its intermediate point at the lambda-midpoint (r1 = 1/2), DPM-Solver-3 with r1 = 1/3,
// r2 = 2/3; order k takes k score evaluations per step. Needs a ProbabilityFlow term of a LinearProcess.
std::unique_ptr<Stepper> make_dpm_solver(int order);

// The time t at which process.log_snr(t) == lambda ([B] tensors). Closed form for VpProcess, SubVpProcess
// and VeProcess (exact types); bisection inside the per-element bracket [lo, hi] otherwise.
at::Tensor time_of_log_snr(const LinearProcess& process, const at::Tensor& lambda, const at::Tensor& lo,
                           const at::Tensor& hi);
// The bisection alone (used by time_of_log_snr for other processes; exposed to test the closed forms).
at::Tensor time_of_log_snr_bisection(const LinearProcess& process, const at::Tensor& lambda, const at::Tensor& lo,
                                     const at::Tensor& hi);

// Time grids from T = process.time_range().T down to eps, `steps` steps (steps + 1 points, both ends exact,
// strictly decreasing), for FixedGrid:
//   uniform    t_i = T - (T - eps) i / N
//   quadratic  t_i = eps + (T - eps) (1 - i/N)^2                     (DDIM's quadratic schedule)
//   logsnr     lambda(t_i) = lambda(T) + (lambda(eps) - lambda(T)) i / N
//   karras     r(t_i) = (r_max^(1/rho) + i/N (r_min^(1/rho) - r_max^(1/rho)))^rho, r = sigma/alpha = e^-lambda,
//              rho = 7, r_max = r(T), r_min = r(eps)
// InputError for an unknown kind, steps <= 0, eps not in (0, T), or a log-SNR that does not decrease.
std::vector<double> time_grid(const std::string& kind, const LinearProcess& process, int64_t steps, double eps);
std::vector<std::string> time_grid_kinds();   // {"uniform", "quadratic", "logsnr", "karras"}
constexpr double kKarrasRho = 7.0;

}  // namespace sdeflow
