// Sampling: prior draw + one integrate() call over the reverse SDE or the probability-flow ODE.
#include "samplers/sampling.hpp"

#include "core/device.hpp"
#include "core/error.hpp"
#include "processes/linear.hpp"
#include "processes/reverse.hpp"
#include "solvers/adaptive.hpp"
#include "solvers/brownian_tree.hpp"
#include "samplers/diffusion_ode.hpp"

namespace sdeflow {

Solution sample(const SamplingRequest& request, Observer* observer,
                const std::function<void(int64_t, int64_t)>& progress) {
  if (!request.process || !request.model) throw InputError("sample: no process or model given");
  if (request.steps <= 0) throw InputError("--steps must be positive, got " + std::to_string(request.steps));
  if (request.n <= 0) throw InputError("--n must be positive, got " + std::to_string(request.n));
  if (request.save_every < 0) throw InputError("--save-every must be >= 0, got " + std::to_string(request.save_every));
  const auto& info = solver_info(request.solver);
  auto stepper = make_stepper(request.solver, request.solver_options);

  const auto range = request.process->time_range();
  const auto options = at::TensorOptions().dtype(request.dtype).device(request.device);
  auto generator = make_generator(request.device, request.seed);
  const auto x_T = request.process->prior_sample(request.n, request.model->dim(), options, generator);

  std::unique_ptr<Term> term;
  if (info.stochastic) term = std::make_unique<ReverseSde>(request.process, request.model);
  else term = std::make_unique<ProbabilityFlow>(request.process, request.model);

  if (request.solver == "ggf") {
    // Adaptive reverse-SDE sampling ("Gotta Go Fast", Jolicoeur-Martineau et al. 2021): the EM / improved
    // Euler pair with per-sample step control, on a Brownian tree so that rejected steps are redrawn on the
    // same path (docs/sde_solvers.md).
    if (request.save_every > 0) throw InputError("--save-every needs a fixed-step solver, not ggf");
    ReverseSde sde(request.process, request.model);
    const double span = std::abs(range.T - range.eps);
    BrownianTreeOptions tree_options;
    tree_options.tolerance = 1e-6 * span;
    BrownianTree tree(range.T, range.eps, request.n, sde.noise_dim(request.model->dim()), request.seed + 1,
                      tree_options);
    AdaptiveOptions adaptive;
    adaptive.rtol = request.rtol;
    adaptive.atol = request.atol;
    adaptive.first_step = 0.01 * span;
    adaptive.beta = 0.0;   // a plain integral controller, as in the paper
    PIController controller(adaptive);
    IntegrateOptions integrate_options;
    integrate_options.generator = generator;
    integrate_options.brownian = &tree;
    integrate_options.denoise_last = request.denoise_last;
    integrate_options.max_steps = 100000;
    SaveAt save;
    save.t0 = save.t1 = false;
    return integrate(sde, *stepper, controller, x_T, range.T, range.eps, save, observer, integrate_options);
  }
  std::vector<double> grid;
  if (request.grid == "uniform") {
    grid = uniform_grid(range.T, range.eps, request.steps);
  } else {
    const auto* linear = dynamic_cast<const LinearProcess*>(request.process.get());
    if (linear == nullptr) throw InputError("--grid " + request.grid + " needs a linear process (VP, sub-VP, VE)");
    grid = time_grid(request.grid, *linear, request.steps, range.eps);
  }
  FixedGrid controller(grid);
  const auto* sde = dynamic_cast<const SdeTerm*>(term.get());
  GridIncrements brownian(generator, sde != nullptr ? sde->noise_dim(request.model->dim()) : request.model->dim());
  IntegrateOptions integrate_options;
  integrate_options.generator = generator;
  integrate_options.brownian = &brownian;
  integrate_options.denoise_last = request.denoise_last;
  integrate_options.progress = progress;
  SaveAt save;
  save.t0 = save.t1 = request.save_every > 0;
  save.every_steps = request.save_every;
  return integrate(*term, *stepper, controller, x_T, range.T, range.eps, save, observer, integrate_options);
}

}  // namespace sdeflow
