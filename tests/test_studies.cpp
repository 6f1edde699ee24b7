// Tests of studies/: the two-sample distances against closed forms for Gaussians (within Monte-Carlo
// error), and `sdeflow robustness` end to end (tables written, quality improving with steps, bad input).
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "studies/metrics.hpp"
#include "support.hpp"

using namespace sdeflow;
namespace fs = std::filesystem;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

}  // namespace

BOOST_AUTO_TEST_SUITE(studies)

BOOST_AUTO_TEST_CASE(mmd_matches_its_closed_form_for_shifted_gaussians) {
  // P = N(0, I), Q = N(mu, I) in d = 2, kernel bandwidth l: E k(X, X') = (l^2 / (l^2 + 2))^{d/2} and
  // E k(X, Y) = the same times exp(-|mu|^2 / (2 (l^2 + 2))), so MMD^2 = 2 c (1 - exp(-|mu|^2 / (2 (l^2 + 2)))).
  // Repeated over 20 independent draws: mean within 4 standard errors of the closed form.
  const double l = 1.5, d = 2;
  const double c = std::pow(l * l / (l * l + 2), d / 2);
  for (double shift : {0.0, 0.5, 1.0}) {
    const double exact = 2 * c * (1 - std::exp(-shift * shift / (2 * (l * l + 2))));
    std::vector<double> values;
    for (uint64_t seed = 0; seed < 20; ++seed) {
      auto g = at::detail::createCPUGenerator(seed);
      const auto x = at::randn({500, 2}, g, f64);
      auto y = at::randn({500, 2}, g, f64);
      y.select(1, 0).add_(shift);
      values.push_back(mmd2_rbf(x, y, l));
    }
    const auto t = at::tensor(values, f64);
    const double mean = t.mean().item<double>(), se = t.std().item<double>() / std::sqrt(20.0);
    BOOST_TEST_MESSAGE("MMD^2 shift " << shift << ": " << mean << " +- " << se << ", exact " << exact);
    BOOST_TEST(std::abs(mean - exact) <= 4 * se + 1e-12);
  }
}

BOOST_AUTO_TEST_CASE(sliced_w2_and_energy_match_closed_forms) {
  // Sliced W2^2 between N(0, I) and N(mu, I): E_theta (theta . mu)^2 = |mu|^2 / d (same shape, shifted).
  // Large samples; the finite-sample bias of W2 is O(1/sqrt(n)) in the quantile noise, allowed 0.05.
  auto g = at::detail::createCPUGenerator(5);
  const auto x = at::randn({20000, 3}, g, f64);
  auto y = at::randn({20000, 3}, g, f64);
  y.select(1, 0).add_(1.2);
  auto gp = at::detail::createCPUGenerator(6);
  const double sw2 = sliced_wasserstein2(x, y, 256, gp);
  const double expected = std::sqrt(1.2 * 1.2 / 3.0);
  BOOST_TEST_MESSAGE("sliced W2 " << sw2 << " expected " << expected);
  BOOST_TEST(std::abs(sw2 - expected) <= 0.05);
  // Energy distance in 1-D: 2 E|X - Y| - E|X - X'| - E|Y - Y'| with X - Y ~ N(-mu, 2), X - X' ~ N(0, 2):
  // E|N(m, s^2)| = s sqrt(2/pi) exp(-m^2 / (2 s^2)) + m (1 - 2 Phi(-m / s)).
  const double mu = 0.8, s = std::sqrt(2.0);
  auto abs_mean = [](double m, double sd) {
    return sd * std::sqrt(2 / M_PI) * std::exp(-m * m / (2 * sd * sd)) + m * std::erf(m / (sd * std::sqrt(2.0)));
  };
  const double exact = 2 * abs_mean(mu, s) - 2 * abs_mean(0, s);
  std::vector<double> values;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    auto gs = at::detail::createCPUGenerator(100 + seed);
    const auto a = at::randn({2000, 1}, gs, f64);
    const auto b = at::randn({2000, 1}, gs, f64) + mu;
    values.push_back(energy_distance(a, b));
  }
  const auto t = at::tensor(values, f64);
  const double mean = t.mean().item<double>(), se = t.std().item<double>() / std::sqrt(10.0);
  BOOST_TEST_MESSAGE("energy " << mean << " +- " << se << " exact " << exact);
  BOOST_TEST(std::abs(mean - exact) <= 4 * se);
  // Identical samples: MMD^2 (unbiased) is exactly -(its diagonal-free bias) ~ 0, energy 0 up to bias.
  BOOST_CHECK_THROW(mmd2_rbf(x, at::randn({10, 2}, g, f64)), InputError);
  auto bad = x.narrow(0, 0, 10).clone();
  bad[3][1] = std::nan("");
  BOOST_CHECK_THROW(energy_distance(bad, x), InputError);
}

BOOST_AUTO_TEST_CASE(robustness_command_writes_its_tables) {
  const auto dir = test::scratch_dir("robustness");
  const auto out = (dir / "rob.h5").string();
  const auto result = test::run_cli("robustness --samplers em,rk4 --steps 5,100 --n 2000 --nll-n 100 "
                                     "--tolerances 1e-2,1e-6 --trace analytic --prior exact --out " + out);
  BOOST_TEST_REQUIRE(result.exit_status == 0, result.output);
  h5::File file(out, h5::Mode::read);
  BOOST_TEST(file.attribute_string("format") == "sdeflow.robustness");
  BOOST_TEST(file.attribute_string("grid") == "uniform");
  BOOST_TEST(file.attribute_int("complete") == 1);
  const auto em = file.group("sampling").group("em");
  const auto ll = em.read_tensor("mean_log_likelihood");
  const auto se = em.read_tensor("mean_log_likelihood_stderr");
  BOOST_TEST(em.read_tensor("steps").size(0) == 2);
  // Five Euler-Maruyama steps distort the samples far beyond Monte-Carlo error; 100 steps come within a few
  // standard errors + 0.05 of the data's own mean log-likelihood (about -1.64 for the built-in mixture).
  const auto rk4 = file.group("sampling").group("rk4");
  const double good = rk4.read_tensor("mean_log_likelihood")[1].item<double>();
  BOOST_TEST(std::abs(ll[0].item<double>() - good) > 10 * se[0].item<double>());
  BOOST_TEST(std::abs(ll[1].item<double>() - good) <= 4 * se[1].item<double>() + 0.05);
  const auto nll = file.group("nll").group("dopri5");
  const auto max_error = nll.read_tensor("max_abs_error");
  BOOST_TEST(max_error[1].item<double>() < max_error[0].item<double>());
  BOOST_TEST(max_error[1].item<double>() <= 1e-3);
  BOOST_TEST(file.group("sampling").attribute_double("bandwidth") > 0.0);

  for (const auto& [arguments, message] : std::vector<std::pair<std::string, std::string>>{
           {"robustness --samplers em,xx", "unknown solver 'xx'"},
           {"robustness --steps 10,0", "step counts must be positive"},
           {"robustness --grid cosine", "unknown --grid 'cosine'"},
           {"robustness --nll-solvers rk4", "is not adaptive"},
           {"robustness --tolerances 1e-3,-1", "tolerances must be positive"},
           {"robustness --n 1", "--n must be at least 2"}}) {
    const auto bad_out = dir / "bad.h5";
    const auto r = test::run_cli(arguments + " --out " + bad_out.string());
    BOOST_TEST(r.exit_status == 2, arguments << ": " << r.output);
    BOOST_TEST(r.output.find(message) != std::string::npos, arguments << ": " << r.output);
    BOOST_TEST(!fs::exists(bad_out));
  }
}

BOOST_AUTO_TEST_CASE(convergence_command_measures_strong_orders) {
  // One Brownian tree per run, 2000 paths, steps 8..128: the fitted strong orders of Euler-Maruyama (0.5 on
  // geometric Brownian motion, 1.0 with additive noise), Milstein (1.0) and SRA1 (1.5 on additive noise with a
  // nonlinear drift, against a 4096-step SRA1 reference on the same path) lie within 0.15 of theory, and
  // their bootstrap intervals are written.
  const auto dir = test::scratch_dir("convergence");
  struct Case {
    std::string problem, solvers;
    std::vector<std::pair<std::string, double>> expected;
  };
  for (const auto& c : std::vector<Case>{{"gbm", "em,milstein,sra1,sri2", {{"em", 0.5}, {"milstein", 1.0}, {"sri2", 1.5}}},
                                         {"additive", "em,sra1", {{"em", 1.0}, {"sra1", 1.5}}}}) {
    const auto out = (dir / (c.problem + ".h5")).string();
    const auto result = test::run_cli("convergence --problem " + c.problem + " --solvers " + c.solvers +
                                      " --paths 2000 --bootstrap 100 --out " + out);
    BOOST_TEST_REQUIRE(result.exit_status == 0, result.output);
    h5::File file(out, h5::Mode::read);
    BOOST_TEST(file.attribute_string("format") == "sdeflow.convergence");
    BOOST_TEST(file.attribute_int("complete") == 1);
    const auto orders = file.group("orders").group(c.problem);
    for (const auto& [solver, order] : c.expected) {
      const auto group = orders.group(solver);
      const double strong = group.attribute_double("strong");
      const auto ci = group.attribute_doubles("strong_ci");
      BOOST_TEST_MESSAGE(c.problem << " " << solver << ": strong order " << strong << " [" << ci[0] << ", " << ci[1] << "]");
      BOOST_TEST(std::abs(strong - order) <= 0.15, c.problem << " " << solver << " " << strong);
      BOOST_TEST(ci[0] <= strong);
      BOOST_TEST(ci[1] >= strong);
      BOOST_TEST(group.read_tensor("strong_error").size(0) == 5);
    }
    if (c.problem == "gbm") BOOST_TEST(orders.group("sra1").has_attribute("note"));   // refused: not additive
    // The weak fit uses only levels whose weak error is at least 2 standard errors: Milstein's are all resolved
    // on GBM; SRI2's weak error sits at the coupled estimator's noise there, so its weak order is NaN.
    if (c.problem == "gbm") {
      const auto milstein = orders.group("milstein"), sri2 = orders.group("sri2");
      BOOST_TEST(milstein.attribute_int("weak_levels") == 5);
      BOOST_TEST(std::abs(milstein.attribute_double("weak") - 1.0) <= 0.2);
      const auto weak_error = sri2.read_tensor("weak_error"), weak_se = sri2.read_tensor("weak_error_se");
      const int64_t resolved = (weak_error >= 2 * weak_se).sum().item<int64_t>();
      BOOST_TEST(sri2.attribute_int("weak_levels") == resolved);
      if (resolved < 2) BOOST_TEST(std::isnan(sri2.attribute_double("weak")));
    }
  }
  for (const auto& [arguments, message] : std::vector<std::pair<std::string, std::string>>{
           {"convergence --problem heat", "unknown problem 'heat'"},
           {"convergence --solvers em,rk9", "unknown SDE solver 'rk9'"},
           {"convergence --steps 8", "at least two step counts"},
           {"convergence --paths 3", "--paths must be at least 10"},
           {"convergence --steps 8,2048", "--reference-steps must be at least 4x"}}) {
    const auto bad_out = dir / "bad.h5";
    const auto r = test::run_cli(arguments + " --out " + bad_out.string());
    BOOST_TEST(r.exit_status == 2, arguments << ": " << r.output);
    BOOST_TEST(r.output.find(message) != std::string::npos, arguments << ": " << r.output);
    BOOST_TEST(!fs::exists(bad_out));
  }
}

BOOST_AUTO_TEST_CASE(work_precision_command_orders_the_solvers) {
  // Probability-flow sampling of the built-in mixture: every solver's error falls as it is given more work;
  // at equal evaluations DPM-Solver-3 beats DDIM by an order of magnitude (3rd vs 1st order), and dopri5 at
  // rtol = atol = 1e-7 is within 1e-4 of the 1e-11 reference. NLL task: dopri5's error follows the tolerance.
  const auto dir = test::scratch_dir("work_precision");
  const auto out = (dir / "wp.h5").string();
  const auto result = test::run_cli("work-precision --task pf-ode --solvers rk4,ddim,dpm3,dopri5 --steps 20,40,80 "
                                    "--tolerances 1e-4,1e-7 --paths 200 --out " + out);
  BOOST_TEST_REQUIRE(result.exit_status == 0, result.output);
  h5::File file(out, h5::Mode::read);
  BOOST_TEST(file.attribute_string("format") == "sdeflow.work_precision");
  const auto root = file.group("work_precision").group("pf-ode");
  for (const std::string solver : {"rk4", "ddim", "dpm3", "dopri5"}) {
    const auto error = root.group(solver).read_tensor("error_max");
    BOOST_TEST((error.narrow(0, 1, error.size(0) - 1) < error.narrow(0, 0, error.size(0) - 1)).all().item<bool>(), solver);
  }
  // ddim at 80 steps (80 evaluations) vs dpm3 at 20 steps (60 evaluations).
  const double ddim = root.group("ddim").read_tensor("error_max")[2].item<double>();
  const double dpm3 = root.group("dpm3").read_tensor("error_max")[0].item<double>();
  BOOST_TEST_MESSAGE("max error: ddim 80 steps " << ddim << ", dpm3 20 steps " << dpm3);
  BOOST_TEST(dpm3 * 10 < ddim);
  BOOST_TEST(root.group("dopri5").read_tensor("error_max")[1].item<double>() <= 1e-4);

  const auto nll_out = (dir / "wp-nll.h5").string();
  const auto nll = test::run_cli("work-precision --task nll --solvers dopri5,ddim --tolerances 1e-4,1e-7 --paths 50 "
                                 "--eps 1e-8 --out " + nll_out);
  BOOST_TEST_REQUIRE(nll.exit_status == 0, nll.output);
  h5::File nll_file(nll_out, h5::Mode::read);
  const auto nll_root = nll_file.group("work_precision").group("nll");
  const auto error = nll_root.group("dopri5").read_tensor("error_max");
  BOOST_TEST(error[1].item<double>() < error[0].item<double>());
  BOOST_TEST(error[1].item<double>() <= 1e-5);
  BOOST_TEST(nll_root.group("ddim").has_attribute("note"));
  const auto bad = test::run_cli("work-precision --task heat --out " + (dir / "bad.h5").string());
  BOOST_TEST(bad.exit_status == 2);
  BOOST_TEST(bad.output.find("unknown task 'heat'") != std::string::npos);
  BOOST_TEST(!fs::exists(dir / "bad.h5"));
}

BOOST_AUTO_TEST_SUITE_END()
