// Work-precision study (docs/studies.md).
#include "studies/work_precision.hpp"

#include <chrono>
#include <cmath>

#include "core/error.hpp"
#include "io/model_file.hpp"
#include "likelihood/likelihood.hpp"
#include "processes/mixture.hpp"
#include "processes/reverse.hpp"
#include "samplers/diffusion_ode.hpp"
#include "solvers/ode.hpp"
#include "samplers/registry.hpp"

namespace sdeflow {

namespace {

// The diffusion models' exponential integrators of the probability flow (DDIM, DPM-Solver), from the registry.
bool is_exponential_integrator(const std::string& name) {
  for (const auto& info : sampling_solvers()) {
    if (info.name == name) return !info.stochastic && info.scope == SolverScope::diffusion;
  }
  return false;
}

bool is_adaptive(const std::string& name) {
  if (is_exponential_integrator(name)) return false;
  return ode_solver_info(name).adaptive;
}

}  // namespace

void validate(const WorkPrecisionOptions& options) {
  if (options.task != "pf-ode" && options.task != "nll") {
    throw InputError("work-precision: unknown task '" + options.task + "' (known: pf-ode, nll)");
  }
  if (options.solvers.empty()) throw InputError("work-precision: no solvers given");
  for (const auto& s : options.solvers) {
    if (!is_exponential_integrator(s)) (void)ode_solver_info(s);
  }
  for (int64_t s : options.steps) {
    if (s <= 0) throw InputError("work-precision: step counts must be positive");
  }
  for (double t : options.tolerances) {
    if (!(t > 0.0) || !std::isfinite(t)) throw InputError("work-precision: tolerances must be positive");
  }
  if (options.n < 1) throw InputError("work-precision: --paths must be positive");
}

std::vector<WorkPrecisionTable> run_work_precision(const WorkPrecisionOptions& options, std::string& description) {
  validate(options);
  const auto model_file = load_model(options.model);
  const auto& mixture = model_file->require_mixture("work-precision");
  auto model = model_file->score();
  auto flow = std::make_shared<ProbabilityFlow>(model_file->process(), model);
  const auto range = model_file->process()->time_range();
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto generator = at::detail::createCPUGenerator(options.seed);
  std::vector<WorkPrecisionTable> tables;

  at::Tensor start, reference;
  if (options.task == "pf-ode") {
    start = model_file->process()->prior_sample(options.n, model->dim(), f64, generator);
    OdeOptions tight;
    tight.solver = "dopri5";
    tight.rtol = tight.atol = 1e-11;
    reference = solve_ode(*flow, start, range.T, options.eps, tight).y;
    description = "probability-flow sampling of " + model_file->source() + " from T to eps = " +
                  std::to_string(options.eps) + ", " + std::to_string(options.n) +
                  " fixed x_T; error = |x - x_ref| per sample (x_ref: dopri5 at rtol = atol = 1e-11)";
  } else {
    start = mixture.sample(options.n, generator, f64).first;
    reference = mixture.log_prob(start);
    description = "NLL of " + std::to_string(options.n) + " samples of " + model_file->source() +
                  " (analytic trace, exact prior, eps = " + std::to_string(options.eps) +
                  "); error = |log p - exact log p_0| per sample";
  }

  for (const auto& name : options.solvers) {
    WorkPrecisionTable table;
    table.solver = name;
    table.adaptive = is_adaptive(name);
    if (options.task == "nll" && is_exponential_integrator(name)) {
      table.note = "exponential integrators integrate T -> eps only (sampling), not the likelihood ODE";
      tables.push_back(table);
      continue;
    }
    const size_t count = table.adaptive ? options.tolerances.size() : options.steps.size();
    for (size_t i = 0; i < count; ++i) {
      const double parameter = table.adaptive ? options.tolerances[i] : static_cast<double>(options.steps[i]);
      const auto begin = std::chrono::steady_clock::now();
      at::Tensor error, nfe, status;
      if (options.task == "pf-ode") {
        Solution solution;
        if (is_exponential_integrator(name)) {
          auto stepper = make_stepper(name);
          FixedGrid grid(time_grid("logsnr", *require_scalar_process(model_file->process(), name), options.steps[i],
                                   options.eps));
          solution = integrate(*flow, *stepper, grid, start, range.T, options.eps, SaveAt{}, nullptr, IntegrateOptions{});
        } else {
          OdeOptions ode;
          ode.solver = name;
          ode.rtol = ode.atol = parameter;
          ode.steps = options.steps.empty() ? 1 : options.steps[std::min(i, options.steps.size() - 1)];
          solution = solve_ode(*flow, start, range.T, options.eps, ode);
        }
        error = (solution.y - reference).norm(2, 1);
        nfe = solution.nfe.to(at::kDouble);
        status = solution.status;
      } else {
        LikelihoodOptions likelihood;
        likelihood.ode.solver = name;
        likelihood.ode.rtol = likelihood.ode.atol = parameter;
        likelihood.ode.steps = table.adaptive ? 1 : options.steps[i];
        likelihood.trace = TraceMethod::analytic;
        likelihood.prior = PriorKind::exact;
        likelihood.eps = options.eps;
        auto g = at::detail::createCPUGenerator(options.seed);
        const auto result = negative_log_likelihood(model_file->process(), model, start, likelihood, DataTransform{}, g);
        error = (result.log_prob - reference).abs();
        nfe = result.nfe.to(at::kDouble);
        status = result.status;
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      const auto ok = status == 0;
      const auto good = error.masked_select(ok);
      table.parameter.push_back(parameter);
      table.error_max.push_back(good.numel() ? good.max().item<double>() : NAN);
      table.error_mean.push_back(good.numel() ? good.mean().item<double>() : NAN);
      table.nfe.push_back(nfe.mean().item<double>());
      table.seconds.push_back(seconds);
      table.failures.push_back((~ok).sum().item<int64_t>());
    }
    tables.push_back(table);
  }
  return tables;
}

}  // namespace sdeflow
