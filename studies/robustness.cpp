// The discretisation-robustness study (docs/studies.md).
#include "studies/robustness.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.hpp"
#include "io/data_file.hpp"
#include "io/toy_data.hpp"
#include "likelihood/likelihood.hpp"
#include "samplers/sampling.hpp"
#include "samplers/diffusion_ode.hpp"
#include "solvers/ode.hpp"
#include "samplers/registry.hpp"
#include "studies/metrics.hpp"

namespace sdeflow {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void validate(const RobustnessOptions& options) {
  if (options.samplers.empty() && options.nll_solvers.empty()) throw InputError("robustness: nothing to run");
  for (const auto& s : options.samplers) (void)solver_info(s);
  const auto grids = time_grid_kinds();
  if (std::find(grids.begin(), grids.end(), options.grid) == grids.end()) {
    throw InputError("robustness: unknown --grid '" + options.grid + "' (known: uniform, quadratic, logsnr, karras)");
  }
  for (int64_t s : options.steps) {
    if (s <= 0) throw InputError("robustness: step counts must be positive, got " + std::to_string(s));
  }
  if (!options.samplers.empty() && options.steps.empty()) throw InputError("robustness: no step counts given");
  if (options.n < 2) throw InputError("robustness: --n must be at least 2");
  if (options.projections <= 0) throw InputError("robustness: --projections must be positive");
  if (!std::isfinite(options.bandwidth)) throw InputError("robustness: --bandwidth must be finite");
  if (options.nll_n < 0) throw InputError("robustness: --nll-n must be >= 0");
  for (const auto& s : options.nll_solvers) {
    if (!ode_solver_info(s).adaptive) throw InputError("robustness: NLL solver '" + s + "' is not adaptive (it has no tolerance)");
  }
  for (double tol : options.tolerances) {
    if (!(tol > 0.0) || !std::isfinite(tol)) throw InputError("robustness: tolerances must be positive");
  }
  (void)parse_trace_method(options.trace);
  (void)parse_prior(options.prior);
}

RobustnessFloor run_robustness(std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model,
                               std::shared_ptr<const GaussianMixture> mixture, const at::Tensor& held_out,
                               const at::Tensor& floor_sample, const RobustnessOptions& options,
                               const std::function<void(const std::string&, const std::vector<SamplerRow>&)>& on_sampler,
                               const std::function<void(const std::string&, const std::vector<NllRow>&)>& on_nll) {
  validate(options);
  const int64_t m = std::min(held_out.size(0), options.n);
  const auto reference = held_out.narrow(0, 0, m).to(at::kDouble);
  auto generator = at::detail::createCPUGenerator(options.seed + 7919);
  RobustnessFloor floor;
  floor.bandwidth = options.bandwidth > 0.0 ? options.bandwidth : median_heuristic_bandwidth(reference, reference);
  if (floor_sample.defined() && floor_sample.size(0) >= 2) {
    const auto other = floor_sample.narrow(0, 0, std::min(floor_sample.size(0), options.n)).to(at::kDouble);
    floor.mmd2 = mmd2_rbf(other, reference, floor.bandwidth);
    floor.sliced_w2 = sliced_wasserstein2(other, reference, options.projections, generator);
    floor.energy = energy_distance(other, reference);
  } else {
    floor.mmd2 = floor.sliced_w2 = floor.energy = NAN;
  }

  for (const auto& sampler : options.samplers) {
    std::vector<SamplerRow> rows;
    for (int64_t steps : options.steps) {
      SamplingRequest request;
      request.process = process;
      request.model = model;
      request.solver = sampler;
      request.steps = steps;
      request.grid = options.grid;
      request.n = options.n;
      request.seed = options.seed;
      const auto start = std::chrono::steady_clock::now();
      const auto solution = sample(request, nullptr);
      SamplerRow row;
      row.seconds = seconds_since(start);
      row.steps = steps;
      row.nfe = solution.stats.nfe;
      const auto ok = solution.status == 0;
      row.failures = (~ok).sum().item<int64_t>();
      const auto samples = solution.y.index_select(0, ok.nonzero().squeeze(1)).to(at::kDouble);
      if (samples.size(0) >= 2) {
        row.mmd2 = mmd2_rbf(samples, reference, floor.bandwidth);
        auto g = at::detail::createCPUGenerator(options.seed + 104729);   // same directions for every row
        row.sliced_w2 = sliced_wasserstein2(samples, reference, options.projections, g);
        row.energy = energy_distance(samples, reference);
        if (mixture) {
          const auto log_p = mixture->log_prob(samples);
          row.mean_log_likelihood = log_p.mean().item<double>();
          row.mean_log_likelihood_stderr = log_p.std().item<double>() / std::sqrt(static_cast<double>(log_p.size(0)));
        }
      } else {
        row.mmd2 = row.sliced_w2 = row.energy = NAN;
      }
      rows.push_back(row);
    }
    on_sampler(sampler, rows);
  }

  if (options.nll_n > 0 && !options.tolerances.empty()) {
    const auto x = held_out.narrow(0, 0, std::min(held_out.size(0), options.nll_n)).to(at::kDouble);
    const auto exact = mixture ? mixture->log_prob(x) : at::Tensor();
    for (const auto& solver : options.nll_solvers) {
      std::vector<NllRow> rows;
      for (double tol : options.tolerances) {
        LikelihoodOptions likelihood;
        likelihood.ode.solver = solver;
        likelihood.ode.rtol = likelihood.ode.atol = tol;
        likelihood.trace = parse_trace_method(options.trace);
        likelihood.eps = options.eps;
        likelihood.prior = parse_prior(options.prior);
        auto g = at::detail::createCPUGenerator(options.seed);
        const auto start = std::chrono::steady_clock::now();
        const auto result = negative_log_likelihood(process, model, x, likelihood, DataTransform{}, g);
        NllRow row;
        row.seconds = seconds_since(start);
        row.tolerance = tol;
        const auto ok = result.status == 0;
        row.failures = (~ok).sum().item<int64_t>();
        const auto nll = result.nll.masked_select(ok);
        row.nll_mean = nll.numel() ? nll.mean().item<double>() : NAN;
        row.nll_stderr = nll.numel() > 1 ? nll.std().item<double>() / std::sqrt(static_cast<double>(nll.numel())) : NAN;
        row.nfe_mean = result.nfe.to(at::kDouble).mean().item<double>();
        if (exact.defined() && nll.numel()) {
          const auto error = (-result.nll - exact).masked_select(ok).abs();
          row.mean_abs_error = error.mean().item<double>();
          row.max_abs_error = error.max().item<double>();
        }
        rows.push_back(row);
      }
      on_nll(solver, rows);
    }
  }
  return floor;
}

HeldOutSets robustness_held_out(const Model& model, const std::string& data_path, const RobustnessOptions& options) {
  HeldOutSets sets;
  const auto scaling = model.data_scaling();
  if (!data_path.empty()) {
    const auto file = load_data(data_path, model.dim());
    sets.held_out = file.data;
    if (scaling) {   // compare in model space, where the samples live
      const auto& s = *scaling;
      sets.held_out = file.integer ? s.scale * (sets.held_out + 0.5) / static_cast<double>(s.levels) + s.shift
                                   : s.scale * sets.held_out + s.shift;
    }
    sets.source = data_path;
    // The noise floor needs a second independent set: the second half of the data when it is large enough.
    if (sets.held_out.size(0) >= 2 * options.n) sets.floor = sets.held_out.narrow(0, options.n, options.n);
  } else if (scaling && is_toy_data(scaling->name)) {
    // A model fitted to a built-in toy set: fresh draws of the same generator are held-out data.
    const auto& s = *scaling;
    auto generator = at::detail::createCPUGenerator(options.seed + 1);
    const int64_t m = std::max(options.n, options.nll_n);
    sets.held_out = s.scale * sample_toy_data(s.name, m, generator) + s.shift;
    sets.floor = s.scale * sample_toy_data(s.name, options.n, generator) + s.shift;
    sets.source = "fresh samples of the built-in " + s.name + " generator (seed " +
                  std::to_string(options.seed + 1) + ")";
  } else {
    const auto& mixture = model.require_mixture("robustness without --data");
    auto generator = at::detail::createCPUGenerator(options.seed + 1);
    const int64_t m = std::max(options.n, options.nll_n);
    sets.held_out = mixture.sample(m, generator, at::kDouble).first;
    sets.floor = mixture.sample(options.n, generator, at::kDouble).first;
    sets.source = "exact samples of the mixture (seed " + std::to_string(options.seed + 1) + ")";
  }
  return sets;
}

}  // namespace sdeflow
