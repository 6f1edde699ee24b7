// Tests of solvers/diffusion_ode: measured orders of DPM-Solver-1/2/3 on the probability-flow ODE of the 2-D
// Gaussian mixture with its exact score (VP, sub-VP, VE) against a dopri5 reference at rtol = atol = 1e-11,
// DDIM(eta = 0) == DPM-Solver-1, stochastic DDIM sampling reproduces the mixture, the time grids' formulas,
// the closed-form log-SNR inverses against bisection, and the input errors.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>

#include "core/error.hpp"
#include "io/model_file.hpp"
#include "processes/mixture.hpp"
#include "processes/linear.hpp"
#include "processes/reverse.hpp"
#include "samplers/diffusion_ode.hpp"
#include "solvers/integrate.hpp"
#include "solvers/ode.hpp"
#include "support.hpp"
#include "mixture_checks.hpp"

using namespace sdeflow;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

// A VP process of another type: time_of_log_snr falls back to bisection for it.
class OtherVp : public VpProcess {
 public:
  using VpProcess::VpProcess;
  std::string name() const override { return "vp-copy"; }
};

// A process that is not linear (x-dependent drift): the diffusion ODE solvers refuse it.
class Nonlinear : public Process {
 public:
  std::string name() const override { return "nonlinear"; }
  at::Tensor drift(const at::Tensor& x, const at::Tensor& t) const override { (void)t; return -x.pow(3); }
  Diffusion diffusion(const at::Tensor& x, const at::Tensor& t) const override {
    (void)x;
    return Diffusion::scalar(at::ones({t.size(0), 1}, t.options()));
  }
  at::Tensor prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                          at::Generator& generator) const override {
    return at::randn({n, dim}, generator, options);
  }
  at::Tensor prior_log_prob(const at::Tensor& xT) const override { return -0.5 * xT.pow(2).sum(1); }
  TimeRange time_range() const override { return {}; }
};

struct Setup {
  std::shared_ptr<LinearProcess> process;
  std::shared_ptr<GaussianMixtureScore> model;
  std::shared_ptr<ProbabilityFlow> flow;
};

Setup setup(const std::string& process_name) {
  const auto builtin = builtin_model("gmm2d");
  Setup s;
  s.process = make_linear_process(process_name, {});
  s.model = std::make_shared<GaussianMixtureScore>(builtin->mixture(), s.process);
  s.flow = std::make_shared<ProbabilityFlow>(s.process, s.model);
  return s;
}

at::Tensor prior_draw(const LinearProcess& process, int64_t n, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  return process.prior_sample(n, 2, f64, generator);
}

Solution run(const Term& term, Stepper& stepper, const std::vector<double>& grid, const at::Tensor& x_T,
             BrownianPath* brownian = nullptr) {
  FixedGrid controller(grid);
  IntegrateOptions options;
  options.brownian = brownian;
  return integrate(term, stepper, controller, x_T, grid.front(), grid.back(), SaveAt{}, nullptr, options);
}

double max_abs(const at::Tensor& x) { return x.abs().max().item<double>(); }

}  // namespace

BOOST_AUTO_TEST_SUITE(diffusion_ode)

BOOST_AUTO_TEST_CASE(dpm_solvers_reach_their_order_on_the_mixture) {
  // Step counts per order where each solver is close to its asymptotic regime on the log-SNR grid (lambda
  // spans 9.6 for VP, 10.6 for VE, 14.1 for sub-VP; fewer steps are pre-asymptotic for DPM-1), while the
  // finest error stays far above the reference's own (~1e-10).
  const std::vector<std::vector<int64_t>> steps_of_order = {{80, 160, 320, 640}, {40, 80, 160, 320}, {20, 40, 80, 160}};
  for (const std::string name : {"vp", "ve", "subvp"}) {
    const auto s = setup(name);
    const auto range = s.process->time_range();
    const auto x_T = prior_draw(*s.process, 32, 11);
    OdeOptions reference_options;
    reference_options.solver = "dopri5";
    reference_options.rtol = reference_options.atol = 1e-11;
    const auto reference = solve_ode(*s.flow, x_T, range.T, range.eps, reference_options);
    BOOST_REQUIRE(reference.all_ok());
    const double scale = std::max(1.0, max_abs(reference.y));
    const auto ends = s.process->log_snr(at::tensor({range.T, range.eps}, f64));
    BOOST_TEST_MESSAGE(name << ": lambda from " << ends[0].item<double>() << " to " << ends[1].item<double>()
                            << ", reference nfe " << reference.stats.nfe);
    for (int order = 1; order <= 3; ++order) {
      auto stepper = make_dpm_solver(order);
      BOOST_TEST(stepper->name() == "dpm" + std::to_string(order));
      BOOST_TEST(stepper->order() == order);
      std::vector<double> inverse_n, error;
      const auto& steps = steps_of_order[order - 1];
      for (const auto n : steps) {
        const auto solution = run(*s.flow, *stepper, time_grid("logsnr", *s.process, n, range.eps), x_T);
        BOOST_REQUIRE(solution.all_ok());
        BOOST_TEST(solution.stats.nfe == order * n);
        inverse_n.push_back(1.0 / static_cast<double>(n));
        error.push_back(max_abs(solution.y - reference.y) / scale);
      }
      const double slope = sdeflow::test::log_log_slope(inverse_n, error);
      BOOST_TEST_MESSAGE(name << " dpm" << order << ": N " << steps[0] << ".." << steps[3] << " errors " << error[0]
                              << " " << error[1] << " " << error[2] << " " << error[3] << ", pairwise "
                              << std::log2(error[0] / error[1]) << " " << std::log2(error[1] / error[2]) << " "
                              << std::log2(error[2] / error[3]) << ", measured order " << slope);
      // Deterministic: the order between the two finest levels within 0.15 of the theory (the fitted
      // slope, pre-asymptotic levels included, is printed).
      const double finest = std::log2(error[2] / error[3]) / std::log2(static_cast<double>(steps[3]) / steps[2]);
      BOOST_TEST(std::abs(finest - order) <= 0.15, name << " dpm" << order << " order " << finest << " (slope " << slope << ")");
      BOOST_TEST(error.back() > 1e3 * 1e-11, "errors must stay above the reference's own error");
    }
  }
}

BOOST_AUTO_TEST_CASE(ddim_without_noise_is_dpm_solver_1) {
  for (const std::string name : {"vp", "ve", "subvp"}) {
    const auto s = setup(name);
    const auto range = s.process->time_range();
    const auto x_T = prior_draw(*s.process, 64, 3);
    for (const std::string kind : {"uniform", "logsnr", "karras"}) {
      const auto grid = time_grid(kind, *s.process, 25, range.eps);
      auto ddim = make_ddim(0.0);
      auto dpm1 = make_dpm_solver(1);
      BOOST_TEST(ddim->name() == "ddim");
      BOOST_TEST(!ddim->stochastic());
      const auto a = run(*s.flow, *ddim, grid, x_T);
      const auto b = run(*s.flow, *dpm1, grid, x_T);
      BOOST_REQUIRE(a.all_ok());
      BOOST_REQUIRE(b.all_ok());
      BOOST_TEST(a.stats.nfe == 25);
      const double difference = max_abs(a.y - b.y) / std::max(1.0, max_abs(b.y));
      BOOST_TEST_MESSAGE(name << "/" << kind << ": |ddim - dpm1| / max|x| = " << difference);
      BOOST_TEST(difference <= 1e-12, name << "/" << kind);
    }
  }
}

BOOST_AUTO_TEST_CASE(stochastic_ddim_samples_the_mixture) {
  // Stochastic DDIM is first order: its bias of E[log p] is c / N (VP, eta = 1: measured +0.133, +0.086,
  // +0.042, +0.011 nats at N = 100, 200, 400, 1600, i.e. c = 17; samples slightly too concentrated). Run at
  // N = 200 and N = 800 with 10000 samples: the bias at 200 is resolved for VP, eta = 1 (> 4 SE); at 800 it
  // is a quarter of the one at 200 within the Monte-Carlo error; and at 800 the samples reproduce the
  // mixture (fractions, moments with no allowance, tests/mixture_checks.hpp) with the E[log p] bias between
  // 0 and the quarter of the one measured at 200.
  const auto builtin = builtin_model("gmm2d");
  const int64_t n = 10000;
  const auto reference = test::exact_reference(*builtin->mixture(), 400000);
  const double reference_log_p = reference.statistics.mean_log_likelihood;
  for (const auto& [name, eta] : std::vector<std::pair<std::string, double>>{{"vp", 1.0}, {"ve", 0.5}}) {
    const auto s = setup(name);
    const auto range = s.process->time_range();
    auto ddim = make_ddim(eta);
    BOOST_TEST(ddim->stochastic());
    std::vector<at::Tensor> samples;
    std::vector<double> deviation, se;
    for (const int64_t steps : {200, 800}) {
      auto generator = at::detail::createCPUGenerator(23 + steps);
      const auto x_T = s.process->prior_sample(n, 2, f64, generator);
      GridIncrements brownian(generator, 2);
      const auto solution = run(*s.flow, *ddim, uniform_grid(range.T, range.eps, steps), x_T, &brownian);
      BOOST_REQUIRE(solution.all_ok());
      const auto cmp = compare_to_mixture(solution.y, *builtin->mixture());
      samples.push_back(solution.y);
      deviation.push_back(cmp.mean_log_likelihood - reference_log_p);
      se.push_back(std::hypot(cmp.mean_log_likelihood_stderr, reference.statistics.mean_log_likelihood_stderr));
      BOOST_TEST_MESSAGE("ddim " << name << " eta " << eta << ", " << steps << " steps: E log p bias "
                                 << deviation.back() << " +- " << se.back());
    }
    const auto label = "ddim " + name + " eta " + std::to_string(eta);
    if (eta == 1.0) BOOST_TEST(deviation[0] > 4 * se[0], label << ": the bias at 200 steps must be resolved");
    BOOST_TEST(std::abs(deviation[1] - deviation[0] / 4) <= 4 * std::hypot(se[1], se[0] / 4), label);
    const double expected = deviation[0] / 4;
    test::check_against_mixture(samples[1], *builtin->mixture(), reference, label + " 800 steps", std::min(0.0, expected),
                                std::max(0.0, expected));
  }
}

BOOST_AUTO_TEST_CASE(stochastic_ddim_takes_the_reverse_sde_too_and_needs_a_brownian_path) {
  const auto s = setup("vp");
  const auto range = s.process->time_range();
  const auto x_T = prior_draw(*s.process, 16, 5);
  const auto grid = time_grid("quadratic", *s.process, 30, range.eps);
  ReverseSde sde(s.process, s.model);
  auto ddim = make_ddim(0.7);
  auto g1 = at::detail::createCPUGenerator(9), g2 = at::detail::createCPUGenerator(9);
  GridIncrements w1(g1, 2), w2(g2, 2);
  const auto a = run(*s.flow, *ddim, grid, x_T, &w1);
  const auto b = run(sde, *ddim, grid, x_T, &w2);
  BOOST_REQUIRE(a.all_ok());
  BOOST_TEST(b.stats.nfe == 30);
  // Same noise, same score (recovered from the PF field vs asked directly): equal up to rounding.
  BOOST_TEST(max_abs(a.y - b.y) <= 1e-10);
  BOOST_CHECK_THROW(run(*s.flow, *ddim, grid, x_T), InputError);   // no Brownian path
  BOOST_CHECK_THROW(run(*s.flow, *ddim, {range.eps, range.T}, x_T, &w1), InputError);   // forward in time
}

BOOST_AUTO_TEST_CASE(time_grids_follow_their_formulas) {
  const int64_t n = 25;
  const double eps = 1e-3;
  for (const std::string name : {"vp", "ve", "subvp"}) {
    const auto process = make_linear_process(name, {});
    const double T = process->time_range().T;
    for (const auto& kind : time_grid_kinds()) {
      const auto grid = time_grid(kind, *process, n, eps);
      const auto label = name + "/" + kind;
      BOOST_REQUIRE(grid.size() == static_cast<size_t>(n + 1));
      BOOST_TEST(grid.front() == T, label);
      BOOST_TEST(grid.back() == eps, label);
      bool decreasing = true;
      for (size_t i = 1; i < grid.size(); ++i) decreasing = decreasing && grid[i] < grid[i - 1];
      BOOST_TEST(decreasing, label);
      FixedGrid controller(grid);   // accepted by the fixed-step controller
      const auto t = at::tensor(grid, f64);
      const auto lambda = process->log_snr(t);
      const double lambda_T = lambda[0].item<double>(), lambda_eps = lambda[n].item<double>();
      double worst = 0.0;
      for (int64_t i = 0; i <= n; ++i) {
        const double u = static_cast<double>(i) / n;
        double deviation = 0.0;
        if (kind == "uniform") {
          deviation = std::abs(grid[i] - (T - (T - eps) * u));
        } else if (kind == "quadratic") {
          deviation = std::abs(grid[i] - (eps + (T - eps) * (1 - u) * (1 - u)));
        } else if (kind == "logsnr") {
          deviation = std::abs(lambda[i].item<double>() - (lambda_T + (lambda_eps - lambda_T) * u));
        } else {
          const double a = std::exp(-lambda_T / kKarrasRho), b = std::exp(-lambda_eps / kKarrasRho);
          const double r = std::pow(a + (b - a) * u, kKarrasRho);
          deviation = std::abs(std::exp(-lambda[i].item<double>()) - r) / r;   // relative, in sigma/alpha
        }
        worst = std::max(worst, deviation);
      }
      BOOST_TEST_MESSAGE(label << ": largest deviation from the formula " << worst);
      BOOST_TEST(worst <= 1e-10, label << " deviation " << worst);
    }
  }
}

BOOST_AUTO_TEST_CASE(closed_form_log_snr_inverses_agree_with_bisection) {
  for (const std::string name : {"vp", "ve", "subvp"}) {
    const auto process = make_linear_process(name, {});
    const auto t = at::linspace(1e-3, 1.0, 101, f64);
    const auto lambda = process->log_snr(t);
    const auto lo = at::full_like(t, 1e-4), hi = at::full_like(t, 1.0);
    const auto closed = time_of_log_snr(*process, lambda, lo, hi);
    const auto bisected = time_of_log_snr_bisection(*process, lambda, lo, hi);
    BOOST_TEST(max_abs((closed - t) / t) <= 1e-12, name);
    BOOST_TEST(max_abs((bisected - t) / t) <= 1e-12, name);
  }
  // A process without a closed form goes through bisection: same grid and same DPM-Solver-3 result.
  const auto s = setup("vp");
  auto other = std::make_shared<OtherVp>();
  const auto a = time_grid("karras", *s.process, 20, 1e-3);
  const auto b = time_grid("karras", *other, 20, 1e-3);
  for (size_t i = 0; i < a.size(); ++i) BOOST_TEST(std::abs(a[i] - b[i]) <= 1e-14 * std::max(1.0, a[i]));
  ProbabilityFlow other_flow(other, std::make_shared<GaussianMixtureScore>(builtin_model("gmm2d")->mixture(), other));
  const auto x_T = prior_draw(*s.process, 8, 1);
  auto dpm3 = make_dpm_solver(3);
  const auto ya = run(*s.flow, *dpm3, a, x_T).y;
  const auto yb = run(other_flow, *dpm3, a, x_T).y;
  BOOST_TEST(max_abs(ya - yb) <= 1e-10);
}

BOOST_AUTO_TEST_CASE(bad_input_is_an_input_error) {
  const auto s = setup("vp");
  const auto range = s.process->time_range();
  const auto x_T = prior_draw(*s.process, 4, 2);
  const auto grid = time_grid("logsnr", *s.process, 10, range.eps);
  ReverseSde sde(s.process, s.model);
  for (auto& stepper : {make_dpm_solver(1), make_dpm_solver(2), make_dpm_solver(3), make_ddim(0.0)}) {
    BOOST_CHECK_THROW(stepper->check_term(sde), InputError);
    BOOST_CHECK_THROW(run(sde, *stepper, grid, x_T), InputError);
  }
  auto nonlinear = std::make_shared<Nonlinear>();
  ProbabilityFlow nonlinear_flow(nonlinear, s.model);
  BOOST_CHECK_THROW(make_dpm_solver(2)->check_term(nonlinear_flow), InputError);
  BOOST_CHECK_THROW(make_ddim(0.5)->check_term(ReverseSde(nonlinear, s.model)), InputError);
  BOOST_CHECK_THROW(make_dpm_solver(0), InputError);
  BOOST_CHECK_THROW(make_dpm_solver(4), InputError);
  BOOST_CHECK_THROW(make_ddim(-0.1), InputError);
  BOOST_CHECK_THROW(make_ddim(1.5), InputError);
  BOOST_CHECK_THROW(make_ddim(std::nan("")), InputError);
  BOOST_CHECK_THROW(time_grid("cosine", *s.process, 10, 1e-3), InputError);
  BOOST_CHECK_THROW(time_grid("logsnr", *s.process, 0, 1e-3), InputError);
  BOOST_CHECK_THROW(time_grid("uniform", *s.process, 10, 0.0), InputError);
  BOOST_CHECK_THROW(time_grid("karras", *s.process, 10, 1.0), InputError);
  BOOST_CHECK_THROW(time_grid("quadratic", *s.process, 10, std::nan("")), InputError);
}

BOOST_AUTO_TEST_SUITE_END()
