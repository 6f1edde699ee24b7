// Convergence-order study (docs/studies.md, "Convergence").
#include "studies/convergence.hpp"

#include <chrono>
#include <cmath>

#include "core/error.hpp"
#include "io/model_file.hpp"
#include "processes/mixture.hpp"
#include "processes/reverse.hpp"
#include "solvers/brownian_tree.hpp"
#include "solvers/integrate.hpp"
#include "samplers/registry.hpp"
#include "solvers/sde_steppers.hpp"

namespace sdeflow {

namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

// dX = mu X dt + sigma X dW (diagonal noise): X_T = X_0 exp((mu - sigma^2/2) T + sigma W_T).
class GeometricBrownianMotion : public SdeTerm {
 public:
  GeometricBrownianMotion(double mu, double sigma) : mu_(mu), sigma_(sigma) {}
  std::string describe() const override { return "geometric Brownian motion"; }
  at::Tensor drift(const at::Tensor& t, const at::Tensor& y) const override {
    (void)t;
    count_evaluation();
    return mu_ * y;
  }
  Diffusion diffusion(const at::Tensor& t, const at::Tensor& y) const override {
    (void)t;
    return Diffusion::diagonal(sigma_ * y);
  }
  NoiseType noise_type() const override { return NoiseType::diagonal; }

 private:
  double mu_, sigma_;
};

// dX = a(X) dt + sigma dW with additive noise: a = -theta x (Ornstein-Uhlenbeck) or -sin(x) - 0.5 x.
class AdditiveNoise : public SdeTerm {
 public:
  AdditiveNoise(bool linear, double sigma) : linear_(linear), sigma_(sigma) {}
  std::string describe() const override { return linear_ ? "Ornstein-Uhlenbeck" : "additive noise, nonlinear drift"; }
  at::Tensor drift(const at::Tensor& t, const at::Tensor& y) const override {
    (void)t;
    count_evaluation();
    return linear_ ? -2.0 * y : -at::sin(3.0 * y) - 0.5 * y;
  }
  Diffusion diffusion(const at::Tensor& t, const at::Tensor& y) const override {
    (void)y;
    return Diffusion::scalar(at::full({t.size(0), 1}, sigma_, t.options()));
  }
  NoiseType noise_type() const override { return NoiseType::additive; }

 private:
  bool linear_;
  double sigma_;
};

// The general-purpose fixed-step SDE solvers of the registry (not the diffusion-specific or adaptive ones).
std::unique_ptr<Stepper> make_sde_stepper(const std::string& name) {
  std::string known;
  for (const auto& candidate : general_sde_solvers()) {
    if (candidate == name) return make_stepper(name);
    known += (known.empty() ? "" : ", ") + candidate;
  }
  throw InputError("convergence: unknown SDE solver '" + name + "' (known: " + known + ")");
}

struct Problem {
  std::shared_ptr<SdeTerm> term;
  at::Tensor x0;          // [paths, D]
  double t0 = 0, t1 = 1;
  double mu = 0, sigma = 0;   // gbm parameters, for the exact solution
  bool exact = false;
  std::string description;
};

Problem make_problem(const ConvergenceOptions& options) {
  Problem p;
  if (options.problem == "gbm") {
    p.mu = 1.0;
    p.sigma = 0.8;
    p.term = std::make_shared<GeometricBrownianMotion>(p.mu, p.sigma);
    p.x0 = at::ones({options.paths, 1}, kF64);
    p.exact = true;
    p.description = "geometric Brownian motion dX = 1.0 X dt + 0.8 X dW, X0 = 1, t in [0, 1]; exact solution on the path";
  } else if (options.problem == "ou" || options.problem == "additive") {
    const bool linear = options.problem == "ou";
    p.term = std::make_shared<AdditiveNoise>(linear, 0.8);
    p.x0 = at::full({options.paths, 1}, 1.0, kF64);
    p.description = linear ? "Ornstein-Uhlenbeck dX = -2 X dt + 0.8 dW, X0 = 1, t in [0, 1]"
                           : "dX = (-sin(3X) - 0.5 X) dt + 0.8 dW, X0 = 1, t in [0, 1]";
  } else if (options.problem == "model") {
    const auto model = load_model(options.model);
    p.term = std::make_shared<ReverseSde>(model->process(), model->score());
    const auto range = model->process()->time_range();
    p.t0 = range.T;
    p.t1 = range.eps;
    auto generator = at::detail::createCPUGenerator(options.seed + 17);
    p.x0 = model->process()->prior_sample(options.paths, model->dim(), kF64, generator);
    p.description = "reverse-time SDE of " + model->source() + " (process " + model->process()->name() + ") from T to eps";
  } else {
    throw InputError("convergence: unknown problem '" + options.problem + "' (known: gbm, ou, additive, model)");
  }
  if (!p.exact) {
    p.description += "; reference: " + options.reference_solver + " with " + std::to_string(options.reference_steps) +
                     " steps on the same path";
  }
  return p;
}

Solution solve(const Problem& p, Stepper& stepper, BrownianTree& tree, int64_t steps) {
  FixedGrid grid(uniform_grid(p.t0, p.t1, steps));
  IntegrateOptions options;
  options.brownian = &tree;
  options.denoise_last = false;
  auto generator = at::detail::createCPUGenerator(0);
  options.generator = generator;
  return integrate(*p.term, stepper, grid, p.x0, p.t0, p.t1, SaveAt{}, nullptr, options);
}

// Least-squares slope of log(y) on log(x).
double slope(const std::vector<double>& x, const std::vector<double>& y) {
  double mx = 0, my = 0;
  const double n = static_cast<double>(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    mx += std::log(x[i]) / n;
    my += std::log(y[i]) / n;
  }
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (std::log(x[i]) - mx) * (std::log(y[i]) - my);
    sxx += (std::log(x[i]) - mx) * (std::log(x[i]) - mx);
  }
  return sxy / sxx;
}

}  // namespace

void validate(const ConvergenceOptions& options) {
  if (options.solvers.empty()) throw InputError("convergence: no solvers given");
  for (const auto& s : options.solvers) (void)make_sde_stepper(s);
  (void)make_sde_stepper(options.reference_solver);
  if (options.steps.size() < 2) throw InputError("convergence: need at least two step counts");
  for (int64_t s : options.steps) {
    if (s <= 0) throw InputError("convergence: step counts must be positive, got " + std::to_string(s));
  }
  if (options.paths < 10) throw InputError("convergence: --paths must be at least 10");
  if (options.bootstrap < 0) throw InputError("convergence: --bootstrap must be >= 0");
  int64_t finest = 0;
  for (int64_t s : options.steps) finest = std::max(finest, s);
  if (options.reference_steps < 4 * finest) {
    throw InputError("convergence: --reference-steps must be at least 4x the finest step count");
  }
  if (options.problem != "gbm" && options.problem != "ou" && options.problem != "additive" && options.problem != "model") {
    throw InputError("convergence: unknown problem '" + options.problem + "' (known: gbm, ou, additive, model)");
  }
}

ConvergenceResult run_convergence(const ConvergenceOptions& options) {
  validate(options);
  const auto problem = make_problem(options);
  const int64_t dim = problem.x0.size(1);
  int64_t finest = options.reference_steps;
  for (int64_t s : options.steps) finest = std::max(finest, s);
  BrownianTreeOptions tree_options;
  tree_options.tolerance = std::abs(problem.t1 - problem.t0) / static_cast<double>(finest) / 2.0;
  BrownianTree tree(problem.t0, problem.t1, options.paths, problem.term->noise_dim(dim), options.seed, tree_options);

  ConvergenceResult result;
  result.description = problem.description;
  at::Tensor reference;
  if (problem.exact) {
    const auto t0 = at::full({options.paths}, problem.t0, kF64), t1 = at::full({options.paths}, problem.t1, kF64);
    const auto w = tree.increment(t0, t1);
    reference = problem.x0 * at::exp((problem.mu - 0.5 * problem.sigma * problem.sigma) * (problem.t1 - problem.t0) +
                                     problem.sigma * w);
  } else {
    auto stepper = make_sde_stepper(options.reference_solver);
    stepper->check_term(*problem.term);
    reference = solve(problem, *stepper, tree, options.reference_steps).y;
  }

  auto generator = at::detail::createCPUGenerator(options.seed + 31337);
  for (const auto& name : options.solvers) {
    ConvergenceTable table;
    table.solver = name;
    auto stepper = make_sde_stepper(name);
    try {
      stepper->check_term(*problem.term);
    } catch (const InputError& e) {
      table.applicable = false;
      table.note = e.what();
      result.tables.push_back(table);
      continue;
    }
    std::vector<at::Tensor> strong_rows, weak_rows;   // per-path |error| and signed error, per step count
    for (int64_t steps : options.steps) {
      problem.term->reset_evaluations();
      const auto start = std::chrono::steady_clock::now();
      const auto solution = solve(problem, *stepper, tree, steps);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const auto difference = solution.y - reference;
      const auto strong = difference.norm(2, 1);          // [paths]
      const auto weak = difference.mean(1);               // [paths], coupled estimator of E X_N - E X
      table.steps.push_back(steps);
      table.step_size.push_back(std::abs(problem.t1 - problem.t0) / static_cast<double>(steps));
      table.failures.push_back((solution.status != 0).sum().item<int64_t>());
      table.nfe.push_back(solution.stats.nfe);
      table.seconds.push_back(seconds);
      const double n = static_cast<double>(options.paths);
      table.strong_error.push_back(strong.mean().item<double>());
      table.strong_error_se.push_back(strong.std().item<double>() / std::sqrt(n));
      table.weak_error.push_back(std::abs(weak.mean().item<double>()));
      table.weak_error_se.push_back(weak.std().item<double>() / std::sqrt(n));
      strong_rows.push_back(strong);
      weak_rows.push_back(weak);
    }
    table.strong = slope(table.step_size, table.strong_error);
    // Weak errors below the estimator's own noise carry no order: fit over the resolved levels only.
    std::vector<int64_t> resolved;
    for (size_t i = 0; i < table.weak_error.size(); ++i) {
      if (table.weak_error[i] >= 2.0 * table.weak_error_se[i]) resolved.push_back(static_cast<int64_t>(i));
    }
    table.weak_levels = static_cast<int64_t>(resolved.size());
    auto pick_levels = [&](const std::vector<double>& values) {
      std::vector<double> out;
      for (auto i : resolved) out.push_back(values[static_cast<size_t>(i)]);
      return out;
    };
    const bool weak_fit = resolved.size() >= 2;
    const auto weak_sizes = pick_levels(table.step_size);
    table.weak = weak_fit ? slope(weak_sizes, pick_levels(table.weak_error)) : std::nan("");
    // Bootstrap over paths: resample paths, recompute every step count's errors, refit.
    const auto strong_all = at::stack(strong_rows, 0), weak_all = at::stack(weak_rows, 0);   // [S, paths]
    std::vector<double> strong_fits, weak_fits;
    for (int64_t b = 0; b < options.bootstrap; ++b) {
      const auto pick = at::randint(0, options.paths, {options.paths}, generator, at::TensorOptions().dtype(at::kLong));
      const auto s = strong_all.index_select(1, pick).mean(1);
      const auto w = weak_all.index_select(1, pick).mean(1).abs();
      std::vector<double> sv(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
      std::vector<double> wv(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
      strong_fits.push_back(slope(table.step_size, sv));
      if (weak_fit) weak_fits.push_back(slope(weak_sizes, pick_levels(wv)));
    }
    auto interval = [](std::vector<double> v, double* out, double fallback) {
      if (v.empty()) {
        out[0] = out[1] = fallback;
        return;
      }
      std::sort(v.begin(), v.end());
      out[0] = v[static_cast<size_t>(0.025 * (v.size() - 1))];
      out[1] = v[static_cast<size_t>(0.975 * (v.size() - 1))];
    };
    interval(strong_fits, table.strong_ci, table.strong);
    interval(weak_fits, table.weak_ci, table.weak);   // NaN, NaN when unresolved
    result.tables.push_back(table);
  }
  return result;
}

}  // namespace sdeflow
