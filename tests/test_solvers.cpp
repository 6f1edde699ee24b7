// Tests of solvers/: measured convergence orders of Euler, Heun and RK4 on an ODE with a known solution,
// Euler-Maruyama's weak order on an Ornstein-Uhlenbeck process, per-sample status in the integrate loop,
// term/solver mismatches, and seeded reproducibility.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>

#include "core/error.hpp"
#include "fields.hpp"
#include "support.hpp"
#include "solvers/integrate.hpp"
#include "processes/reverse.hpp"
#include "samplers/registry.hpp"

using namespace sdeflow;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

using test::Riccati;

// dX = -theta X dt + sigma dW (additive noise).
class OrnsteinUhlenbeck : public SdeTerm {
 public:
  OrnsteinUhlenbeck(double theta, double sigma) : theta_(theta), sigma_(sigma) {}
  std::string describe() const override { return "Ornstein-Uhlenbeck"; }
  at::Tensor drift(const at::Tensor& t, const at::Tensor& y) const override {
    (void)t;
    count_evaluation();
    return -theta_ * y;
  }
  Diffusion diffusion(const at::Tensor& t, const at::Tensor& y) const override {
    (void)y;
    return Diffusion::scalar(at::full({t.size(0), 1}, sigma_, t.options()));
  }
  NoiseType noise_type() const override { return NoiseType::additive; }

 private:
  double theta_, sigma_;
};

Solution solve_ode(Stepper& stepper, const VectorField& field, const at::Tensor& y0, double t0, double t1, int64_t steps) {
  FixedGrid grid(uniform_grid(t0, t1, steps));
  return integrate(field, stepper, grid, y0, t0, t1, SaveAt{}, nullptr, IntegrateOptions{});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(solvers)

BOOST_AUTO_TEST_CASE(ode_solvers_reach_their_order) {
  Riccati field;
  const auto c = at::tensor({1.0, 0.5, 2.0}, f64).reshape({3, 1});
  const double t1 = 2.0;
  const auto exact = c / (1.0 + c * t1 * t1);
  for (const auto& [name, order] : std::vector<std::pair<std::string, int>>{{"euler", 1}, {"heun", 2}, {"rk4", 4}}) {
    auto stepper = make_stepper(name);
    BOOST_TEST(stepper->order() == order);
    std::vector<double> h, error;
    for (int64_t steps : {16, 32, 64, 128, 256}) {
      const auto solution = solve_ode(*stepper, field, c, 0.0, t1, steps);
      BOOST_TEST(solution.all_ok());
      BOOST_TEST(solution.stats.nfe == steps * static_cast<int64_t>(order == 1 ? 1 : order == 2 ? 2 : 4));
      h.push_back(t1 / steps);
      error.push_back((solution.y - exact).abs().max().item<double>());
    }
    // Deterministic: the order between the two finest levels must be within 0.1 of the theory (a method
    // 0.2 below its order fails); the slope over the whole ladder is printed.
    const double measured = sdeflow::test::log_log_slope(h, error);
    const double finest = sdeflow::test::finest_pairwise_order(h, error);
    BOOST_TEST_MESSAGE(name << ": measured order " << measured << ", finest pair " << finest);
    BOOST_TEST(std::abs(finest - order) <= 0.1, name << " order " << finest);
  }
}

BOOST_AUTO_TEST_CASE(every_registered_solver_has_its_own_stepper) {
  // Each name in the registry builds a stepper of its own kind (no fallback to another solver): an SDE
  // sampler's stepper is stochastic, a probability-flow one is not (ddim-stochastic is stochastic through
  // its eta); an unknown name is an input error naming the known ones.
  for (const auto& info : sampling_solvers()) {
    std::unique_ptr<Stepper> stepper;
    BOOST_REQUIRE_NO_THROW(stepper = make_stepper(info.name));
    BOOST_TEST(stepper->stochastic() == info.stochastic, info.name);
    // Steppers named after their method: the SDE samplers and stochastic DDIM (named "ddim") carry another name.
    if (info.name != "ggf" && info.name != "pc" && info.name != "em" && info.name != "reverse-diffusion" &&
        info.name != "ddim-stochastic") {
      BOOST_TEST(stepper->name() == info.name, info.name << " built " << stepper->name());
    }
  }
  BOOST_CHECK_THROW(make_stepper("rk5"), InputError);
  // The metadata the CLI help and the studies' lists come from: the general-purpose fixed-step SDE solvers (what
  // `convergence` measures), and help lines carrying the stepper's own declared orders and noise requirement.
  BOOST_TEST(general_sde_solvers() == (std::vector<std::string>{"em", "milstein", "sra1", "sri2", "ei-heun"}),
             boost::test_tools::per_element());
  const auto sra1 = solver_help(solver_info("sra1"));
  BOOST_TEST(sra1.find("strong order 1.5") != std::string::npos, sra1);
  BOOST_TEST(sra1.find("additive noise") != std::string::npos, sra1);
  BOOST_TEST(solver_help(solver_info("rk4")).find("order 4") != std::string::npos);
  BOOST_TEST(solver_help(solver_info("dpm2")).find("diffusion models only") != std::string::npos);
  BOOST_TEST(solver_info("ggf").adaptive);
}

namespace {

// dx = -x/2 dt + sqrt(1 + x^2) dW (diagonal, state-dependent G) with a standard normal prior: only its
// capability flag matters to the checks below.
class MultiplicativeNoiseProcess : public Process {
 public:
  std::string name() const override { return "test-multiplicative"; }
  at::Tensor drift(const at::Tensor& x, const at::Tensor& t) const override { (void)t; return -0.5 * x; }
  Diffusion diffusion(const at::Tensor& x, const at::Tensor& t) const override {
    (void)t;
    return Diffusion::diagonal(at::sqrt(1 + x * x));
  }
  bool state_dependent_diffusion() const override { return true; }
  at::Tensor diffusion_divergence(const at::Tensor& x, const at::Tensor& t) const override { (void)t; return 2 * x; }
  at::Tensor prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options, at::Generator& generator) const override {
    return at::randn({n, dim}, generator, options);
  }
  at::Tensor prior_log_prob(const at::Tensor& xT) const override {
    return -0.5 * xT.pow(2).sum(1) - 0.5 * xT.size(1) * std::log(2 * M_PI);
  }
  TimeRange time_range() const override { return {}; }
};

class StandardNormalScore : public ScoreModel {
 public:
  at::Tensor score(const at::Tensor& x, const at::Tensor& t) const override { (void)t; return -x; }
  int64_t dim() const override { return 2; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(reverse_diffusion_and_pc_refuse_a_state_dependent_diffusion) {
  // Their predictor inverts the forward transition without the -div(G G^T) drift term: for a state-dependent
  // G that would sample the wrong process, so they refuse it by name; Euler-Maruyama on the same reverse SDE
  // (whose drift includes the term) is accepted.
  ReverseSde sde(std::make_shared<MultiplicativeNoiseProcess>(), std::make_shared<StandardNormalScore>());
  for (const std::string name : {"reverse-diffusion", "pc"}) {
    const auto stepper = make_stepper(name);
    try {
      stepper->check_term(sde);
      BOOST_ERROR(name << " accepted a state-dependent diffusion");
    } catch (const InputError& error) {
      BOOST_TEST(std::string(error.what()).find("state-dependent diffusion of process test-multiplicative") !=
                 std::string::npos, error.what());
    }
  }
  BOOST_CHECK_NO_THROW(make_stepper("em")->check_term(sde));
}

BOOST_AUTO_TEST_CASE(integrates_backwards_in_time) {
  Riccati field;
  auto rk4 = make_stepper("rk4");
  const auto y1 = at::tensor({0.2}, f64).reshape({1, 1});   // y(2) = 0.2 for c = 1
  const auto solution = solve_ode(*rk4, field, y1, 2.0, 0.0, 200);
  BOOST_TEST(solution.y.item<double>() == 1.0, boost::test_tools::tolerance(1e-8));
  BOOST_TEST(solution.t.item<double>() == 0.0);
}

BOOST_AUTO_TEST_CASE(euler_maruyama_weak_order_one_on_ornstein_uhlenbeck) {
  // E[X_T^2] = e^{-2 theta T} x0^2 + sigma^2 / (2 theta) (1 - e^{-2 theta T}). EM's own second moment
  // obeys m_{n+1} = (1 - theta h)^2 m_n + sigma^2 h, so its weak error is known exactly; the Monte-Carlo
  // estimate must match that recursion within 4 standard errors, and the error must fall as h^1.
  const double theta = 2.0, sigma = 0.8, x0 = 1.5, T = 1.0;
  const int64_t paths = 400000;
  OrnsteinUhlenbeck sde(theta, sigma);
  auto em = make_stepper("em");
  const double exact = std::exp(-2 * theta * T) * x0 * x0 + sigma * sigma / (2 * theta) * (1 - std::exp(-2 * theta * T));
  std::vector<double> h, error, error_se, exact_error;
  for (int64_t steps : {8, 16, 32, 64}) {
    auto generator = at::detail::createCPUGenerator(42);
    GridIncrements brownian(generator, 1);
    IntegrateOptions options;
    options.brownian = &brownian;
    options.generator = generator;
    options.denoise_last = false;
    FixedGrid grid(uniform_grid(0.0, T, steps));
    const auto solution = integrate(sde, *em, grid, at::full({paths, 1}, x0, f64), 0.0, T, SaveAt{}, nullptr, options);
    const auto squares = solution.y.pow(2);
    const double estimate = squares.mean().item<double>();
    const double se = squares.std().item<double>() / std::sqrt(static_cast<double>(paths));
    const double step = T / steps;
    double recursion = x0 * x0;
    for (int64_t i = 0; i < steps; ++i) recursion = std::pow(1 - theta * step, 2) * recursion + sigma * sigma * step;
    BOOST_TEST(std::abs(estimate - recursion) <= 4 * se, "steps " << steps);
    h.push_back(step);
    error.push_back(std::abs(estimate - exact));
    error_se.push_back(se);
    exact_error.push_back(std::abs(recursion - exact));
  }
  // Each estimate matching EM's exact second-moment recursion within 4 SE (above) pins the weak error itself,
  // level by level. Its order: the recursion's weak error |m_N - E X_T^2| has pairwise order within 0.02 of
  // 1 on fine grids (N = 8192 -> 16384: 1.006; on this coarse ladder it is still pre-asymptotic, slope ~1.8), and the
  // Monte-Carlo slope over the ladder lies in its 95% interval (delta method on the estimates' standard
  // errors) around the recursion's slope.
  const double measured = sdeflow::test::log_log_slope(h, error);
  const double half_width = 1.96 * sdeflow::test::log_log_slope_sd(h, error, error_se);
  const double recursion_order = sdeflow::test::log_log_slope(h, exact_error);
  std::vector<double> fine_h, fine_error;
  for (const int64_t steps : {8192, 16384}) {
    const double step = T / steps;
    double recursion = x0 * x0;
    for (int64_t i = 0; i < steps; ++i) recursion = std::pow(1 - theta * step, 2) * recursion + sigma * sigma * step;
    fine_h.push_back(step);
    fine_error.push_back(std::abs(recursion - exact));
  }
  const double fine_order = sdeflow::test::finest_pairwise_order(fine_h, fine_error);
  BOOST_TEST_MESSAGE("Euler-Maruyama weak order " << measured << " +- " << half_width << " (exact recursion "
                     << recursion_order << " on this ladder, " << fine_order << " at N = 8192 -> 16384)");
  BOOST_TEST(std::abs(fine_order - 1.0) <= 0.02);
  BOOST_TEST(std::abs(measured - recursion_order) <= half_width);
}

BOOST_AUTO_TEST_CASE(failed_samples_get_a_status_and_leave_the_rest_alone) {
  Riccati field;
  auto rk4 = make_stepper("rk4");
  const auto clean = at::tensor({1.0, 0.5, 2.0}, f64).reshape({3, 1});
  auto with_nan = clean.clone();
  with_nan[1][0] = std::nan("");
  const auto reference = solve_ode(*rk4, field, clean, 0.0, 1.0, 20);
  const auto solution = solve_ode(*rk4, field, with_nan, 0.0, 1.0, 20);
  BOOST_TEST(solution.status[0].item<int>() == 0);
  BOOST_TEST(solution.status[1].item<int>() == static_cast<int>(SampleStatus::non_finite));
  BOOST_TEST(solution.status[2].item<int>() == 0);
  BOOST_TEST(std::isnan(solution.y[1][0].item<double>()));
  BOOST_TEST(solution.y[0][0].item<double>() == reference.y[0][0].item<double>());
  BOOST_TEST(solution.y[2][0].item<double>() == reference.y[2][0].item<double>());

  IntegrateOptions limited;
  limited.max_steps = 5;
  FixedGrid grid(uniform_grid(0.0, 1.0, 20));
  const auto stopped = integrate(field, *rk4, grid, clean, 0.0, 1.0, SaveAt{}, nullptr, limited);
  BOOST_TEST((stopped.status == static_cast<int>(SampleStatus::max_steps)).all().item<bool>());
  BOOST_TEST(stopped.stats.steps == 5);
}

BOOST_AUTO_TEST_CASE(solver_and_term_mismatches_are_input_errors) {
  Riccati field;
  OrnsteinUhlenbeck sde(1.0, 1.0);
  auto rk4 = make_stepper("rk4");
  auto em = make_stepper("em");
  auto pc = make_stepper("pc");
  const auto y0 = at::ones({2, 1}, f64);
  FixedGrid grid(uniform_grid(0.0, 1.0, 4));
  BOOST_CHECK_THROW(integrate(sde, *rk4, grid, y0, 0.0, 1.0, SaveAt{}, nullptr, IntegrateOptions{}), InputError);
  BOOST_CHECK_THROW(integrate(field, *em, grid, y0, 0.0, 1.0, SaveAt{}, nullptr, IntegrateOptions{}), InputError);
  BOOST_CHECK_THROW(pc->check_term(sde), InputError);   // pc needs a reverse SDE with a score model
  BOOST_CHECK_THROW(make_stepper("dopri8"), InputError);
  BOOST_CHECK_THROW(uniform_grid(0.0, 1.0, 0), InputError);
  BOOST_CHECK_THROW(FixedGrid({0.0, 0.5, 0.4, 1.0}), InputError);
}

BOOST_AUTO_TEST_CASE(same_seed_same_numbers) {
  OrnsteinUhlenbeck sde(1.0, 1.0);
  auto em = make_stepper("em");
  auto run = [&](uint64_t seed) {
    auto generator = at::detail::createCPUGenerator(seed);
    GridIncrements brownian(generator, 3);
    IntegrateOptions options;
    options.brownian = &brownian;
    options.generator = generator;
    FixedGrid grid(uniform_grid(0.0, 1.0, 10));
    return integrate(sde, *em, grid, at::zeros({4, 3}, f64), 0.0, 1.0, SaveAt{}, nullptr, options).y;
  };
  BOOST_TEST(at::equal(run(3), run(3)));
  BOOST_TEST(!at::equal(run(3), run(4)));
}

BOOST_AUTO_TEST_SUITE_END()
