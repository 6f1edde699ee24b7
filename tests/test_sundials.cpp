// Tests of solvers/sundials: CVODE Adams, CVODE BDF and ARKODE Dormand-Prince on ODEs with known
// solutions (forward and backward in time), the zero-copy N_Vector wrapping, non-finite input rows,
// whole-batch failures (max steps, non-finite right-hand side), exceptions from the field, option
// validation and NFE accounting.
#include <boost/test/unit_test.hpp>

#include "fields.hpp"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <set>

#include "core/error.hpp"
#include "solvers/sundials.hpp"
#include "support.hpp"

using namespace sdeflow;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);
const double kNan = std::numeric_limits<double>::quiet_NaN();

// dy/dt = -k y with one rate per row: y(t) = y(t0) exp(-k (t - t0)). The rate depends on the sample's
// identity, so the field honours bind_samples (a solve over a subset of rows binds their indices).
class LinearDecay : public VectorField {
 public:
  explicit LinearDecay(at::Tensor rates) : rates_(std::move(rates)) {}
  std::string describe() const override { return "dy/dt = -k y"; }
  void bind_samples(const at::Tensor& index) const override {
    bound_ = index;
    ever_bound_ = ever_bound_ || index.defined();
  }
  at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override {
    (void)t;
    count_evaluation();
    const auto rates = bound_.defined() ? rates_.index_select(0, bound_) : rates_;
    return -rates.to(y.options()).unsqueeze(1) * y;
  }
  at::Tensor exact(const at::Tensor& y_start, double t_start, double t_end) const {
    return y_start * at::exp(-rates_ * (t_end - t_start)).unsqueeze(1);
  }
  const at::Tensor& bound() const { return bound_; }
  bool ever_bound() const { return ever_bound_; }

 private:
  at::Tensor rates_;
  mutable at::Tensor bound_;
  mutable bool ever_bound_ = false;
};

using test::Riccati;

// Riccati, recording what the solver hands over.
class RecordingRiccati : public Riccati {
 public:
  at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override {
    pointers.insert(y.data_ptr());
    dtypes.insert(y.scalar_type());
    t_dtypes.insert(t.scalar_type());
    shapes_ok = shapes_ok && t.dim() == 1 && t.size(0) == y.size(0) && (t == t[0]).all().item<bool>();
    // at::from_blob over memory SUNDIALS owns: the storage has from_blob's no-op deleter (not an allocator's)
    // and exactly the N_Vector's length.
    double probe = 0.0;
    const auto view = at::from_blob(&probe, {1}, f64);
    non_owning = non_owning && y.storage().data_ptr().get_deleter() == view.storage().data_ptr().get_deleter() &&
                 y.storage().nbytes() == static_cast<size_t>(y.numel()) * sizeof(double);
    return Riccati::operator()(t, y);
  }
  mutable std::set<const void*> pointers;
  mutable std::set<at::ScalarType> dtypes, t_dtypes;
  mutable bool shapes_ok = true, non_owning = true;
};

// Throws the project's InputError on its third evaluation.
class Throwing : public VectorField {
 public:
  std::string describe() const override { return "throws"; }
  void bind_samples(const at::Tensor& index) const override { bound = index; }
  at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override {
    (void)t;
    count_evaluation();
    if (evaluations() >= 3) throw InputError("model file 'x.h5': bad weights");
    return -y;
  }
  mutable at::Tensor bound = at::zeros({1});
};

// Finite until t = 0.5, NaN afterwards (a model that breaks down part of the way).
class BreaksDown : public VectorField {
 public:
  std::string describe() const override { return "NaN after t = 0.5"; }
  at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override {
    count_evaluation();
    return at::where(t.unsqueeze(1) > 0.5, at::full_like(y, kNan), -y);
  }
};

SundialsOptions tolerances(double tol) {
  SundialsOptions options;
  options.rtol = tol;
  options.atol = tol;
  return options;
}

// max over elements of |y - exact| / (rtol |exact| + atol): the error in units of the requested tolerance.
double scaled_error(const at::Tensor& y, const at::Tensor& exact, double tol) {
  return ((y - exact).abs() / (tol * exact.abs() + tol)).max().item<double>();
}

bool all_status(const Solution& solution, SampleStatus status) {
  return (solution.status == static_cast<int32_t>(status)).all().item<bool>();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sundials)

BOOST_AUTO_TEST_CASE(method_names_parse) {
  BOOST_TEST(sundials_method_names() == (std::vector<std::string>{"cvode-adams", "cvode-bdf", "arkode-dp"}));
  for (const auto& name : sundials_method_names()) BOOST_TEST(to_string(parse_sundials_method(name)) == name);
  BOOST_CHECK_THROW(parse_sundials_method("cvode"), InputError);
  BOOST_CHECK_THROW(parse_sundials_method(""), InputError);
  BOOST_CHECK_THROW(parse_sundials_method("CVODE-BDF"), InputError);
}

// Each method, two ODEs with closed-form solutions, forward (0 -> 2) and backward (2 -> 0). SUNDIALS
// controls the local error of each step; a local error made at time s reaches t1 multiplied by the flow's
// sensitivity dy(t1)/dy(s), at most kappa = |dy(t1)/dy(t0)| here (monotone flows). Forward both flows
// contract (kappa <= 1); backward they expand: the linear decay by exp(2k) (up to e^4 = 55), Riccati by
// (1 + c t^2)^2 (up to 81). We require error <= 50 max(kappa, 1) (rtol |y| + atol) at rtol = atol = 1e-8
// (the measured worst case, cvode-bdf linear backward, is 13 kappa; forward all are below 5; docs/solvers.md),
// and the absolute error must fall by at least 100x when the tolerance falls 10^4-fold (1e-4 -> 1e-8).
BOOST_AUTO_TEST_CASE(reaches_exact_solutions_forward_and_backward) {
  const auto rates = at::tensor({0.5, 1.0, 2.0}, f64);
  LinearDecay linear(rates);
  Riccati riccati;
  const auto y_linear = at::tensor({1.0, -2.0, 0.5, 3.0, 2.0, 1.0}, f64).reshape({3, 2});
  const auto c = at::tensor({1.0, 0.5, 2.0}, f64).reshape({3, 1});
  const auto riccati_at = [&](double t) { return c / (1.0 + c * t * t); };
  const auto linear_kappa = [&](double t0, double t1) { return at::exp(-rates * (t1 - t0)).unsqueeze(1); };
  const auto riccati_kappa = [&](double t0, double t1) { return (riccati_at(t1) / riccati_at(t0)).pow(2); };
  struct Case {
    std::string name;
    const VectorField* field;
    at::Tensor start, exact, kappa;
    double t0, t1;
  };
  const std::vector<Case> cases = {
      {"linear forward", &linear, y_linear, linear.exact(y_linear, 0.0, 2.0), linear_kappa(0.0, 2.0), 0.0, 2.0},
      {"linear backward", &linear, linear.exact(y_linear, 0.0, 2.0), y_linear, linear_kappa(2.0, 0.0), 2.0, 0.0},
      {"riccati forward", &riccati, riccati_at(0.0), riccati_at(2.0), riccati_kappa(0.0, 2.0), 0.0, 2.0},
      {"riccati backward", &riccati, riccati_at(2.0), riccati_at(0.0), riccati_kappa(2.0, 0.0), 2.0, 0.0},
  };
  for (const auto& name : sundials_method_names()) {
    const auto method = parse_sundials_method(name);
    for (const auto& item : cases) {
      std::vector<double> absolute;
      for (double tol : {1e-4, 1e-6, 1e-8}) {
        const auto solution = solve_sundials(*item.field, method, item.start, item.t0, item.t1, tolerances(tol));
        BOOST_TEST(solution.all_ok(), name << " " << item.name);
        BOOST_TEST((solution.t == item.t1).all().item<bool>());
        const auto error = (solution.y - item.exact).abs();
        const auto allowed = tol * item.exact.abs() + tol;
        const double scaled = (error / allowed).max().item<double>();
        const double in_kappa = (error / (allowed * at::clamp_min(item.kappa, 1.0))).max().item<double>();
        absolute.push_back(error.max().item<double>());
        BOOST_TEST_MESSAGE(name << " " << item.name << " tol " << tol << ": max error " << absolute.back() << " = "
                                << scaled << " x (rtol|y|+atol) = " << in_kappa << " x kappa (rtol|y|+atol), "
                                << solution.stats.steps << " steps, " << solution.stats.nfe << " evaluations, "
                                << solution.stats.rejected << " error-test failures");
        if (tol == 1e-8) BOOST_TEST(in_kappa <= 50.0, name << " " << item.name);
      }
      BOOST_TEST(absolute[2] * 100.0 <= absolute[0], name << " " << item.name);
      BOOST_TEST(absolute[1] <= absolute[0], name << " " << item.name);
    }
  }
}

BOOST_AUTO_TEST_CASE(first_step_option_in_both_directions) {
  Riccati field;
  const auto c = at::tensor({1.0, 0.5}, f64).reshape({2, 1});
  SundialsOptions options = tolerances(1e-8);
  options.first_step = 1e-3;
  for (const auto& name : sundials_method_names()) {
    const auto forward = solve_sundials(field, parse_sundials_method(name), c, 0.0, 2.0, options);
    BOOST_TEST(forward.all_ok());
    BOOST_TEST(scaled_error(forward.y, c / (1.0 + 4.0 * c), 1e-8) <= 50.0, name);
    const auto backward = solve_sundials(field, parse_sundials_method(name), forward.y, 2.0, 0.0, options);
    BOOST_TEST(backward.all_ok());
    // Backward the flow expands perturbations by kappa = (1 + 4c)^2 (see the test above).
    const auto kappa = (1.0 + 4.0 * c).pow(2);
    BOOST_TEST((((backward.y - c).abs() / (kappa * (1e-8 * c + 1e-8))).max().item<double>() <= 50.0), name);
  }
}

// float64 CPU: the field's y is the N_Vector's own memory (a non-owning from_blob view), and the
// solution of ARKODE (whose stages are evaluated in the output vector) is that memory too.
BOOST_AUTO_TEST_CASE(float64_state_is_not_copied) {
  const auto c = at::tensor({1.0, 0.5, 2.0, 4.0}, f64).reshape({2, 2});
  for (const auto& name : sundials_method_names()) {
    RecordingRiccati field;
    const auto solution = solve_sundials(field, parse_sundials_method(name), c, 0.0, 1.0, SundialsOptions{});
    BOOST_TEST(solution.all_ok());
    BOOST_TEST(field.non_owning, name);
    BOOST_TEST(field.shapes_ok, name);
    BOOST_TEST((field.dtypes == std::set<at::ScalarType>{at::kDouble}));
    BOOST_TEST(!field.pointers.count(c.data_ptr()), name << ": the caller's y0 must never be integrated in place");
    // SUNDIALS keeps a fixed set of work vectors: far fewer distinct addresses than evaluations.
    BOOST_TEST(static_cast<int64_t>(field.pointers.size()) <= 16, name << " " << field.pointers.size());
    BOOST_TEST(field.pointers.size() < static_cast<size_t>(solution.stats.nfe));
    BOOST_TEST(at::equal(c, at::tensor({1.0, 0.5, 2.0, 4.0}, f64).reshape({2, 2})));   // y0 untouched
    if (name == "arkode-dp") BOOST_TEST(field.pointers.count(solution.y.data_ptr()), name);
  }
}

// float32: integrated as a float64 copy, evaluated in float32, returned as float32. The field's float32
// rounding (~6e-8 relative per evaluation) sits below the requested 1e-6, so the error bound is the same
// 50 x (rtol |y| + atol) plus float32's own representation error of the result (|y| * 2^-24).
BOOST_AUTO_TEST_CASE(float32_state_round_trips) {
  const auto c = at::tensor({1.0, 0.5, 2.0}, f64).reshape({3, 1});
  const auto exact = c / (1.0 + c * 4.0);
  for (const auto& name : sundials_method_names()) {
    RecordingRiccati field;
    const auto solution =
        solve_sundials(field, parse_sundials_method(name), c.to(at::kFloat), 0.0, 2.0, tolerances(1e-6));
    BOOST_TEST(solution.all_ok());
    BOOST_TEST(solution.y.scalar_type() == at::kFloat);
    BOOST_TEST(solution.t.scalar_type() == at::kFloat);
    BOOST_TEST((field.dtypes == std::set<at::ScalarType>{at::kFloat}));
    BOOST_TEST((field.t_dtypes == std::set<at::ScalarType>{at::kFloat}));
    const double error = (solution.y.to(at::kDouble) - exact).abs().max().item<double>();
    BOOST_TEST_MESSAGE(name << " float32: max error " << error);
    BOOST_TEST(error <= 50.0 * (1e-6 * 0.5 + 1e-6) + 1e-7, name);
  }
}

BOOST_AUTO_TEST_CASE(cuda_state_round_trips_when_available) {
  if (!torch::cuda::is_available()) {
    BOOST_TEST_MESSAGE("no CUDA device: skipped");
    return;
  }
  const auto c = at::tensor({1.0, 0.5, 2.0}, f64).reshape({3, 1});
  for (const auto& name : sundials_method_names()) {
    Riccati field;
    const auto solution = solve_sundials(field, parse_sundials_method(name), c.to(at::kCUDA), 0.0, 2.0, tolerances(1e-8));
    BOOST_TEST(solution.all_ok());
    BOOST_TEST(solution.y.is_cuda());
    BOOST_TEST(scaled_error(solution.y.cpu(), c / (1.0 + c * 4.0), 1e-8) <= 50.0, name);
  }
}

// A NaN row never enters the system: it gets non_finite and NaN, the others are bit-identical to a solve
// of the batch without that row (the same system of equations), and the field is told which rows it sees.
BOOST_AUTO_TEST_CASE(non_finite_rows_are_left_out) {
  const auto rates = at::tensor({0.5, 3.0, 2.0}, f64);
  const auto clean = at::tensor({1.0, -2.0, 0.5, 3.0, 2.0, 1.0}, f64).reshape({3, 2});
  auto with_nan = clean.clone();
  with_nan[1][1] = kNan;
  const auto kept = at::tensor({0, 2}, at::kLong);
  for (const auto& name : sundials_method_names()) {
    const auto method = parse_sundials_method(name);
    LinearDecay reference_field(rates.index_select(0, kept));
    LinearDecay field(rates);
    const auto reference = solve_sundials(reference_field, method, clean.index_select(0, kept), 0.0, 1.5, tolerances(1e-7));
    const auto solution = solve_sundials(field, method, with_nan, 0.0, 1.5, tolerances(1e-7));
    BOOST_TEST(reference.all_ok());
    BOOST_TEST(field.ever_bound());
    BOOST_TEST(!field.bound().defined(), name << ": bind_samples must be reset after the solve");
    BOOST_TEST(solution.status[0].item<int>() == 0);
    BOOST_TEST(solution.status[1].item<int>() == static_cast<int>(SampleStatus::non_finite));
    BOOST_TEST(solution.status[2].item<int>() == 0);
    BOOST_TEST(at::isnan(solution.y[1]).all().item<bool>());
    BOOST_TEST(test::equal_to_ulps(solution.y.index_select(0, kept), reference.y, 1e-10), name);
    BOOST_TEST(solution.t[0].item<double>() == 1.5);
    BOOST_TEST(solution.t[1].item<double>() == 0.0);
    BOOST_TEST(solution.steps[1].item<int64_t>() == 0);
    BOOST_TEST(solution.nfe[1].item<int64_t>() == 0);
    // The same system of equations, but copied rows may round differently: the step sequence may differ by a
    // rejected step or two, never by a different amount of work.
    const auto close_count = [](int64_t a, int64_t b) { return std::abs(a - b) <= std::max<int64_t>(2, b / 20); };
    BOOST_TEST(close_count(solution.steps[0].item<int64_t>(), reference.stats.steps), name);
    BOOST_TEST(close_count(solution.stats.nfe, reference.stats.nfe), name);
  }
  // Every row non-finite: nothing to integrate, no evaluation.
  Riccati field;
  const auto all_nan = at::full({2, 1}, kNan, f64);
  const auto solution = solve_sundials(field, SundialsMethod::cvode_bdf, all_nan, 0.0, 1.0, SundialsOptions{});
  BOOST_TEST(all_status(solution, SampleStatus::non_finite));
  BOOST_TEST(field.evaluations() == 0);
}

// y' = -100 y over [0, 10] at rtol = atol = 1e-10 needs hundreds of steps with any of the three methods;
// five are allowed. The batch is one system: every row stops, with the same time and NaN.
BOOST_AUTO_TEST_CASE(max_steps_stops_the_whole_batch) {
  LinearDecay field(at::tensor({100.0, 1.0, 0.1}, f64));
  SundialsOptions options = tolerances(1e-10);
  options.max_steps = 5;
  for (const auto& name : sundials_method_names()) {
    const auto solution = solve_sundials(field, parse_sundials_method(name), at::ones({3, 2}, f64), 0.0, 10.0, options);
    BOOST_TEST(all_status(solution, SampleStatus::max_steps), name << " " << solution.status);
    BOOST_TEST(at::isnan(solution.y).all().item<bool>());
    BOOST_TEST(solution.stats.steps == 5);
    BOOST_TEST((solution.steps == 5).all().item<bool>());
    BOOST_TEST((solution.t == solution.t[0]).all().item<bool>());
    BOOST_TEST(solution.t[0].item<double>() > 0.0);
    BOOST_TEST(solution.t[0].item<double>() < 10.0);
  }
}

// A right-hand side that turns NaN at t = 0.5: SUNDIALS retries smaller steps (recoverable flag) a bounded
// number of times, then the solve fails as non_finite for every row, short of t = 0.5.
BOOST_AUTO_TEST_CASE(non_finite_right_hand_side_fails_the_batch) {
  BreaksDown field;
  for (const auto& name : sundials_method_names()) {
    const int64_t before = field.evaluations();
    const auto solution = solve_sundials(field, parse_sundials_method(name), at::ones({2, 3}, f64), 0.0, 2.0, SundialsOptions{});
    BOOST_TEST(all_status(solution, SampleStatus::non_finite), name << " " << solution.status);
    BOOST_TEST(at::isnan(solution.y).all().item<bool>());
    BOOST_TEST(solution.t[0].item<double>() <= 0.5);
    BOOST_TEST(field.evaluations() - before < 2000, name << " " << field.evaluations() - before);
  }
  // NaN from the very first evaluation.
  class AlwaysNan : public VectorField {
   public:
    std::string describe() const override { return "NaN"; }
    at::Tensor operator()(const at::Tensor&, const at::Tensor& y) const override { return at::full_like(y, kNan); }
  } nan_field;
  for (const auto& name : sundials_method_names()) {
    const auto solution = solve_sundials(nan_field, parse_sundials_method(name), at::ones({2, 1}, f64), 1.0, 0.0, SundialsOptions{});
    BOOST_TEST(all_status(solution, SampleStatus::non_finite), name);
  }
}

BOOST_AUTO_TEST_CASE(field_exceptions_reach_the_caller_unchanged) {
  for (const auto& name : sundials_method_names()) {
    Throwing field;
    auto y0 = at::ones({3, 2}, f64);
    y0[0][0] = kNan;   // a subset is bound during the solve and must be unbound after the exception
    BOOST_CHECK_EXCEPTION(solve_sundials(field, parse_sundials_method(name), y0, 0.0, 1.0, SundialsOptions{}), InputError,
                          [](const InputError& e) { return std::string(e.what()) == "model file 'x.h5': bad weights"; });
    BOOST_TEST(!field.bound.defined(), name);
    BOOST_TEST(field.evaluations() == 3);   // the solver returned at once
  }
}

BOOST_AUTO_TEST_CASE(bad_input_is_an_input_error) {
  Riccati field;
  const auto y0 = at::ones({2, 1}, f64);
  const auto method = SundialsMethod::cvode_adams;
  auto with = [](auto change) {
    SundialsOptions options;
    change(options);
    return options;
  };
  BOOST_CHECK_THROW(solve_sundials(field, method, y0, 0, 1, with([](auto& o) { o.rtol = 0; })), InputError);
  BOOST_CHECK_THROW(solve_sundials(field, method, y0, 0, 1, with([](auto& o) { o.rtol = -1e-6; })), InputError);
  BOOST_CHECK_THROW(solve_sundials(field, method, y0, 0, 1, with([](auto& o) { o.rtol = kNan; })), InputError);
  BOOST_CHECK_THROW(solve_sundials(field, method, y0, 0, 1, with([](auto& o) { o.atol = 0; })), InputError);
  BOOST_CHECK_THROW(
      solve_sundials(field, method, y0, 0, 1, with([](auto& o) { o.atol = std::numeric_limits<double>::infinity(); })),
      InputError);
  BOOST_CHECK_THROW(solve_sundials(field, method, y0, 0, 1, with([](auto& o) { o.max_steps = 0; })), InputError);
  BOOST_CHECK_THROW(solve_sundials(field, method, y0, 0, 1, with([](auto& o) { o.first_step = -1; })), InputError);
  BOOST_CHECK_THROW(solve_sundials(field, method, y0, 1, 1, SundialsOptions{}), InputError);
  BOOST_CHECK_THROW(solve_sundials(field, method, y0, 0, kNan, SundialsOptions{}), InputError);
  BOOST_CHECK_THROW(solve_sundials(field, method, at::ones({2}, f64), 0, 1, SundialsOptions{}), InputError);
  BOOST_CHECK_THROW(solve_sundials(field, method, at::ones({2, 1}, at::kLong), 0, 1, SundialsOptions{}), InputError);
  BOOST_CHECK_THROW(parse_sundials_method("dopri5"), InputError);
  BOOST_TEST(field.evaluations() == 0);
  // A field returning the wrong shape is the caller's error too.
  class WrongShape : public VectorField {
   public:
    std::string describe() const override { return "wrong shape"; }
    at::Tensor operator()(const at::Tensor&, const at::Tensor& y) const override { return y.sum(1); }
  } wrong;
  BOOST_CHECK_THROW(solve_sundials(wrong, SundialsMethod::arkode_dp, y0, 0, 1, SundialsOptions{}), InputError);
  // An empty batch is an empty solution.
  const auto empty = solve_sundials(field, method, at::ones({0, 3}, f64), 0, 1, SundialsOptions{});
  BOOST_TEST(empty.y.size(0) == 0);
  BOOST_TEST(empty.y.size(1) == 3);
  BOOST_TEST(empty.status.size(0) == 0);
  BOOST_TEST(empty.stats.nfe == 0);
}

// NFE is the field's own evaluation counter (it includes CVODE BDF's difference-quotient J v products and
// every Dormand-Prince stage), the same number on every row; steps are the solver's internal steps.
BOOST_AUTO_TEST_CASE(nfe_is_the_fields_own_count) {
  const auto c = at::tensor({1.0, 0.5, 2.0}, f64).reshape({3, 1});
  Riccati field;
  field.reset_evaluations();
  (void)field(at::zeros({3}, f64), c);   // an earlier evaluation must not be counted
  for (const auto& name : sundials_method_names()) {
    const int64_t before = field.evaluations();
    const auto solution = solve_sundials(field, parse_sundials_method(name), c, 0.0, 2.0, tolerances(1e-6));
    BOOST_TEST(solution.all_ok());
    BOOST_TEST(solution.stats.nfe == field.evaluations() - before, name);
    BOOST_TEST((solution.nfe == solution.stats.nfe).all().item<bool>());
    BOOST_TEST(solution.stats.steps > 0);
    BOOST_TEST(solution.stats.accepted == solution.stats.steps);
    BOOST_TEST((solution.steps == solution.stats.steps).all().item<bool>());
    BOOST_TEST(solution.stats.nfe > solution.stats.steps);
    // Dormand-Prince: 6 new stages per attempted step (ARKODE does not reuse the FSAL stage) plus start-up.
    if (name == "arkode-dp") {
      BOOST_TEST(solution.stats.nfe >= 6 * (solution.stats.steps + solution.stats.rejected), name);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
