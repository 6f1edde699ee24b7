// Tests of the adaptive Runge-Kutta solvers (solvers/adaptive.hpp, solvers/ode.hpp): the embedded tableaux
// reach their orders on fixed grids, dense output reaches its order, global error follows the tolerance,
// per-sample and shared modes agree and per-sample saves evaluations on a batch of mixed difficulty, and
// failing samples get their status without touching the rest of the batch.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>

#include "core/error.hpp"
#include "solvers/adaptive.hpp"
#include "solvers/ode.hpp"
#include "fields.hpp"
#include "support.hpp"

using namespace sdeflow;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

using test::Riccati;

// dy/dt = -k y + cos(t) per row (k = column 0 of a rate table): exact
// y(t) = (y0 - k/(1+k^2)) e^{-kt} + (k cos t + sin t) / (1 + k^2).
class Relaxation : public VectorField {
 public:
  explicit Relaxation(at::Tensor rates) : rates_(std::move(rates)) {}
  std::string describe() const override { return "dy/dt = -k y + cos t"; }
  at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override {
    count_evaluation();
    const auto k = index_.defined() ? rates_.index_select(0, index_) : rates_;
    return -k.unsqueeze(1) * y + at::cos(t).unsqueeze(1);
  }
  void bind_samples(const at::Tensor& index) const override { index_ = index; }
  at::Tensor exact(const at::Tensor& y0, double t) const {
    const auto k = rates_.unsqueeze(1);
    return (y0 - k / (1 + k * k)) * at::exp(-k * t) + (k * std::cos(t) + std::sin(t)) / (1 + k * k);
  }

 private:
  at::Tensor rates_;
  mutable at::Tensor index_;
};

// dy/dt = y cos t: y(t) = y0 exp(sin t).
class Periodic : public VectorField {
 public:
  std::string describe() const override { return "dy/dt = y cos t"; }
  at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override {
    count_evaluation();
    return y * at::cos(t).unsqueeze(1);
  }
};

struct Saves : Observer {
  std::vector<at::Tensor> t, y;
  void on_save(const at::Tensor& time, const at::Tensor& state) override {
    t.push_back(time.clone());
    y.push_back(state.clone());
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(adaptive)

BOOST_AUTO_TEST_CASE(embedded_pairs_reach_their_order_on_fixed_grids) {
  Periodic field;
  const auto c = at::tensor({1.0, 0.5, 2.0}, f64).reshape({3, 1});
  const double t1 = 8.0;
  const auto exact = c * std::exp(std::sin(t1));
  for (const auto& [stepper, order] : std::vector<std::pair<std::shared_ptr<Stepper>, int>>{{make_dopri5(), 5},
                                                                                            {make_bosh3(), 3}}) {
    BOOST_TEST(stepper->fsal());
    std::vector<double> h, error;
    for (int64_t steps : {16, 32, 64, 128}) {
      FixedGrid grid(uniform_grid(0.0, t1, steps));
      field.reset_evaluations();
      const auto solution = integrate(field, *stepper, grid, c, 0.0, t1, SaveAt{}, nullptr, IntegrateOptions{});
      BOOST_TEST(solution.all_ok());
      // FSAL: the first step evaluates every stage, later steps reuse the last stage as their first.
      const int64_t stages = order == 5 ? 7 : 4;
      BOOST_TEST(field.evaluations() == stages + (steps - 1) * (stages - 1));
      h.push_back(t1 / steps);
      error.push_back((solution.y - exact).abs().max().item<double>());
    }
    // Deterministic: the order between the two finest levels within 0.15 of the theory (the slope over
    // the whole ladder, pre-asymptotic levels included, is printed).
    const double measured = test::log_log_slope(h, error);
    const double finest = test::finest_pairwise_order(h, error);
    BOOST_TEST_MESSAGE(stepper->name() << ": measured order on a fixed grid " << measured << ", finest pair " << finest);
    BOOST_TEST(std::abs(finest - order) <= 0.15, stepper->name() << " order " << finest);
  }
}

BOOST_AUTO_TEST_CASE(dense_output_reaches_its_order) {
  // Saves at off-grid times (a third and two thirds of the way through steps) on fixed grids; the dopri5
  // interpolant is a quartic (error O(h^4) or better), bosh3's a cubic Hermite (O(h^3)).
  Riccati field;
  const auto c = at::tensor({1.0, 2.0}, f64).reshape({2, 1});
  const double t1 = 2.0;
  for (const auto& [stepper, order] : std::vector<std::pair<std::shared_ptr<Stepper>, int>>{{make_dopri5(), 4},
                                                                                            {make_bosh3(), 3}}) {
    std::vector<double> h, error;
    for (int64_t steps : {8, 16, 32, 64}) {
      SaveAt save;
      const double step = t1 / steps;
      for (double ts : {0.37 * step, 0.5 * t1 + 0.29 * step, t1 - 0.71 * step}) save.times.push_back(ts);
      Saves saves;
      FixedGrid grid(uniform_grid(0.0, t1, steps));
      const auto solution = integrate(field, *stepper, grid, c, 0.0, t1, save, &saves, IntegrateOptions{});
      BOOST_REQUIRE(saves.y.size() == 3);
      double worst = 0;
      for (size_t i = 0; i < 3; ++i) {
        const double ts = save.times[i];
        BOOST_TEST(saves.t[i][0].item<double>() == ts);
        worst = std::max(worst, (saves.y[i] - c / (1.0 + c * ts * ts)).abs().max().item<double>());
      }
      h.push_back(step);
      error.push_back(worst);
    }
    const double measured = test::log_log_slope(h, error);
    BOOST_TEST_MESSAGE(stepper->name() << ": dense output order " << measured);
    BOOST_TEST(measured >= order - 0.3, stepper->name() << " dense order " << measured);
  }
}

BOOST_AUTO_TEST_CASE(global_error_follows_the_tolerance) {
  Riccati field;
  const auto c = at::tensor({1.0, 0.5, 2.0, 4.0}, f64).reshape({4, 1});
  const double t1 = 3.0;
  const auto exact = c / (1.0 + c * t1 * t1);
  for (const std::string solver : {"dopri5", "dopri5-shared", "bosh3"}) {
    std::vector<double> tol, error;
    for (double r : {1e-4, 1e-6, 1e-8, 1e-10}) {
      if (solver == "bosh3" && r < 1e-8) continue;
      OdeOptions options;
      options.solver = solver;
      options.rtol = options.atol = r;
      const auto solution = solve_ode(field, c, 0.0, t1, options);
      BOOST_REQUIRE(solution.all_ok());
      const double e = (solution.y - exact).abs().max().item<double>();
      BOOST_TEST_MESSAGE(solver << " tol " << r << ": error " << e << ", nfe " << solution.stats.nfe);
      // A local-error controller keeps the global error within a small multiple of the tolerance here.
      BOOST_TEST(e <= 20 * r, solver << " tol " << r << " error " << e);
      tol.push_back(r);
      error.push_back(e);
    }
    const double slope = test::log_log_slope(tol, error);
    BOOST_TEST_MESSAGE(solver << ": error ~ tol^" << slope);
    BOOST_TEST(slope >= 0.6);
    BOOST_TEST(slope <= 1.3);
  }
}

BOOST_AUTO_TEST_CASE(backwards_in_time_and_saves_in_order) {
  Riccati field;
  const auto y2 = at::tensor({0.2, 1.0 / 9.0}, f64).reshape({2, 1});   // c = 1 and c = 0.5... at t = 2
  OdeOptions options;
  options.rtol = options.atol = 1e-10;
  options.save_times = {1.5, 1.0, 0.5};
  Saves saves;
  const auto solution = solve_ode(field, y2, 2.0, 0.0, options, &saves);
  BOOST_REQUIRE(solution.all_ok());
  BOOST_TEST(solution.y[0].item<double>() == 1.0, boost::test_tools::tolerance(1e-8));
  BOOST_TEST(solution.y[1].item<double>() == 1.0 / 5.0, boost::test_tools::tolerance(1e-8));
  BOOST_REQUIRE(saves.t.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    const double ts = options.save_times[i];
    BOOST_TEST(saves.t[i][1].item<double>() == ts);
    BOOST_TEST(saves.y[i][0].item<double>() == 1.0 / (1.0 + ts * ts), boost::test_tools::tolerance(1e-8));
  }
}

BOOST_AUTO_TEST_CASE(per_sample_and_shared_modes_agree_and_per_sample_saves_work) {
  // Rates from 0.1 to 200: the stiff rows need small steps; per-sample mode takes them only there.
  const auto rates = at::tensor({0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 200.0}, f64);
  Relaxation field(rates);
  const auto y0 = at::ones({8, 1}, f64);
  const double t1 = 5.0;
  const auto exact = field.exact(y0, t1);
  OdeOptions options;
  options.rtol = options.atol = 1e-8;
  options.solver = "dopri5";
  const auto per_sample = solve_ode(field, y0, 0.0, t1, options);
  options.solver = "dopri5-shared";
  const auto shared = solve_ode(field, y0, 0.0, t1, options);
  BOOST_REQUIRE(per_sample.all_ok());
  BOOST_REQUIRE(shared.all_ok());
  BOOST_TEST((per_sample.y - exact).abs().max().item<double>() <= 20 * 1e-8);
  BOOST_TEST((shared.y - exact).abs().max().item<double>() <= 20 * 1e-8);
  BOOST_TEST((per_sample.y - shared.y).abs().max().item<double>() <= 40 * 1e-8);
  const auto per_sample_work = per_sample.nfe.sum().item<int64_t>();
  const auto shared_work = shared.nfe.sum().item<int64_t>();
  BOOST_TEST_MESSAGE("sample-evaluations: per-sample " << per_sample_work << ", shared " << shared_work
                     << "; batched calls: per-sample " << per_sample.stats.nfe << ", shared " << shared.stats.nfe);
  BOOST_TEST(per_sample_work < shared_work);
  // Shared mode: every row takes part in every evaluation.
  BOOST_TEST((shared.nfe == shared.stats.nfe).all().item<bool>());
  // The easiest row needs far fewer evaluations than the stiffest.
  BOOST_TEST(per_sample.nfe[0].item<int64_t>() * 2 < per_sample.nfe[7].item<int64_t>());
}

BOOST_AUTO_TEST_CASE(failing_samples_leave_the_rest_identical) {
  const auto rates = at::tensor({0.5, 2.0, 8.0}, f64);
  Relaxation field(rates);
  auto y0 = at::ones({3, 1}, f64);
  for (const std::string solver : {"dopri5", "dopri5-shared", "bosh3"}) {
    OdeOptions options;
    options.solver = solver;
    const auto clean = solve_ode(field, y0, 0.0, 2.0, options);
    auto with_nan = y0.clone();
    with_nan[1][0] = std::nan("");
    const auto dirty = solve_ode(field, with_nan, 0.0, 2.0, options);
    BOOST_TEST(dirty.status[1].item<int>() == static_cast<int>(SampleStatus::non_finite));
    BOOST_TEST(std::isnan(dirty.y[1][0].item<double>()));
    BOOST_TEST(dirty.status[0].item<int>() == 0);
    BOOST_TEST(dirty.status[2].item<int>() == 0);
    if (solver != "dopri5-shared") {
      // Per sample: the other rows equal the clean run's to a few ulps (another batch composition).
      BOOST_TEST(test::equal_to_ulps(dirty.y[0], clean.y[0]), solver);
      BOOST_TEST(test::equal_to_ulps(dirty.y[2], clean.y[2]), solver);
    }
    BOOST_TEST(dirty.nfe[1].item<int64_t>() == 0);

    options.max_steps = 5;
    const auto exhausted = solve_ode(field, y0, 0.0, 2.0, options);
    BOOST_TEST((exhausted.status == static_cast<int>(SampleStatus::max_steps)).all().item<bool>(), solver);
    BOOST_TEST(at::isnan(exhausted.y).all().item<bool>());
  }
  // A solution that blows up in finite time (y' = y^2, y(0) = 1, singular at t = 1) ends with a failure
  // status instead of looping; a well-behaved row beside it finishes.
  struct BlowUp : VectorField {
    std::string describe() const override { return "y' = y^2"; }
    at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override {
      (void)t;
      count_evaluation();
      return y * y;
    }
  } blow_up;
  const auto start = at::tensor({1.0, 0.1}, f64).reshape({2, 1});
  OdeOptions options;
  const auto solution = solve_ode(blow_up, start, 0.0, 2.0, options);
  BOOST_TEST(solution.status[0].item<int>() != 0);
  BOOST_TEST_MESSAGE("blow-up status: " << to_string(static_cast<SampleStatus>(solution.status[0].item<int>())));
  BOOST_TEST(solution.status[1].item<int>() == 0);
  BOOST_TEST(solution.y[1][0].item<double>() == 0.1 / (1 - 0.2), boost::test_tools::tolerance(1e-5));
}

BOOST_AUTO_TEST_CASE(bad_options_are_input_errors) {
  Riccati field;
  const auto y0 = at::ones({2, 1}, f64);
  OdeOptions options;
  options.rtol = 0;
  BOOST_CHECK_THROW(solve_ode(field, y0, 0.0, 1.0, options), InputError);
  options = OdeOptions{};
  options.atol = -1;
  BOOST_CHECK_THROW(solve_ode(field, y0, 0.0, 1.0, options), InputError);
  options = OdeOptions{};
  options.solver = "rk45";
  BOOST_CHECK_THROW(solve_ode(field, y0, 0.0, 1.0, options), InputError);
  options = OdeOptions{};
  options.save_times = {0.5, 0.2};
  BOOST_CHECK_THROW(solve_ode(field, y0, 0.0, 1.0, options), InputError);
  options = OdeOptions{};
  options.solver = "rk4";
  options.save_times = {0.5};
  BOOST_CHECK_THROW(solve_ode(field, y0, 0.0, 1.0, options), InputError);
  options = OdeOptions{};
  options.max_steps = 0;
  BOOST_CHECK_THROW(solve_ode(field, y0, 0.0, 1.0, options), InputError);
}

BOOST_AUTO_TEST_SUITE_END()
