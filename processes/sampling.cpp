// Sampling: prior draw + one integrate() call over the reverse SDE or the probability-flow ODE.
#include "processes/sampling.hpp"

#include "core/device.hpp"
#include "core/error.hpp"
#include "processes/linear.hpp"
#include "processes/reverse.hpp"
#include "solvers/diffusion_ode.hpp"

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

  std::vector<double> grid;
  if (request.grid == "uniform") {
    grid = uniform_grid(range.T, range.eps, request.steps);
  } else {
    const auto* linear = dynamic_cast<const LinearProcess*>(request.process.get());
    if (linear == nullptr) throw InputError("--grid " + request.grid + " needs a linear process (VP, sub-VP, VE)");
    grid = time_grid(request.grid, *linear, request.steps, range.eps);
  }
  FixedGrid controller(grid);
  GridIncrements brownian(generator, request.model->dim());
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
