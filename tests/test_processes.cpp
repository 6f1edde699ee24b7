// Tests of processes/: closed-form marginals of VP, sub-VP and VE against simulation of the forward SDE
// (Monte-Carlo error bounds), the marginal ODEs against the drift/diffusion coefficients, the exact
// discrete transition, the prior, and parameter validation.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>

#include "core/error.hpp"
#include "processes/linear.hpp"

using namespace sdeflow;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

std::vector<std::shared_ptr<LinearProcess>> all_processes() {
  return {make_linear_process("vp", {}), make_linear_process("subvp", {}),
          make_linear_process("ve", {{"sigma_max", 5.0}})};
}

double at_time(const at::Tensor& values) { return values.item<double>(); }

}  // namespace

BOOST_AUTO_TEST_SUITE(processes)

BOOST_AUTO_TEST_CASE(marginal_odes_match_drift_and_diffusion) {
  // For f = a(t) x, G = g(t) I: d alpha / dt = a alpha and d sigma^2 / dt = 2 a sigma^2 + g^2.
  for (const auto& process : all_processes()) {
    for (double time : {0.05, 0.3, 0.7, 0.95}) {
      const double h = 1e-5;
      const auto t = at::tensor({time}, f64), tp = at::tensor({time + h}, f64), tm = at::tensor({time - h}, f64);
      const double dalpha = (at_time(process->alpha(tp)) - at_time(process->alpha(tm))) / (2 * h);
      const double dvar = (std::pow(at_time(process->sigma(tp)), 2) - std::pow(at_time(process->sigma(tm)), 2)) / (2 * h);
      const double a = at_time(process->drift_coefficient(t));
      const double g = at_time(process->diffusion_coefficient(t));
      const double alpha = at_time(process->alpha(t));
      const double var = std::pow(at_time(process->sigma(t)), 2);
      // Central differences: truncation error O(h^2 |third derivative|) ~ 1e-8 relative here.
      BOOST_TEST(dalpha == a * alpha, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(dvar == 2 * a * var + g * g, boost::test_tools::tolerance(1e-6));
    }
    // At t = 0 the marginal is the data: alpha = 1, sigma = 0.
    BOOST_TEST(at_time(process->alpha(at::zeros({1}, f64))) == 1.0);
    BOOST_TEST(at_time(process->sigma(at::zeros({1}, f64))) == 0.0);
  }
}

BOOST_AUTO_TEST_CASE(vp_coefficients_in_closed_form) {
  const auto vp = make_linear_process("vp", {{"beta_min", 0.1}, {"beta_max", 20.0}});
  const auto t = at::tensor({0.5}, f64);
  const double integral = 0.1 * 0.5 + 0.5 * 19.9 * 0.25;
  BOOST_TEST(at_time(vp->alpha(t)) == std::exp(-0.5 * integral), boost::test_tools::tolerance(1e-14));
  BOOST_TEST(at_time(vp->sigma(t)) == std::sqrt(1 - std::exp(-integral)), boost::test_tools::tolerance(1e-14));
  const auto ve = make_linear_process("ve", {{"sigma_min", 0.01}, {"sigma_max", 50.0}});
  const double level = 0.01 * std::pow(5000.0, 0.5);
  BOOST_TEST(at_time(ve->sigma(t)) == std::sqrt(level * level - 1e-4), boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(marginals_agree_with_forward_simulation) {
  // Euler-Maruyama of the forward SDE from a fixed x0 with h = 2.5e-4: its weak bias is about h max|a| / 2
  // relative (a = d log var / dt <= 2 ln(sigma_max / sigma_min) = 17 for VE), i.e. <= 2.2e-3, well under the
  // Monte-Carlo tolerance of 4 standard errors (4 sqrt(2 / paths) = 4 % for the variance) used here.
  const int64_t paths = 20000, steps = 4000;
  auto generator = at::detail::createCPUGenerator(1234);
  const auto x0 = at::tensor({1.0, -0.5}, f64).repeat({paths, 1});
  for (const auto& process : all_processes()) {
    const double t_end = 1.0;
    const double h = t_end / steps;
    auto x = x0.clone();
    for (int64_t i = 0; i < steps; ++i) {
      const auto t = at::full({paths}, i * h, f64);
      const auto g = process->diffusion(x, t);
      x = x + process->drift(x, t) * h + g.apply(at::randn({paths, 2}, generator, f64) * std::sqrt(h));
    }
    const auto marginal = process->marginal(x0.slice(0, 0, 1), at::full({1}, t_end, f64)).value();
    const double s = marginal.std.item<double>();
    for (int64_t d = 0; d < 2; ++d) {
      const double mean = x.select(1, d).mean().item<double>();
      const double var = x.select(1, d).var().item<double>();
      const double expected_mean = marginal.mean[0][d].item<double>();
      const double mean_se = s / std::sqrt(static_cast<double>(paths));
      const double var_se = s * s * std::sqrt(2.0 / (paths - 1));
      BOOST_TEST_MESSAGE(process->name() << " dim " << d << ": mean " << mean << " vs " << expected_mean
                                         << ", var " << var << " vs " << s * s);
      BOOST_TEST(std::abs(mean - expected_mean) <= 4 * mean_se + 2e-3 * std::abs(expected_mean));
      BOOST_TEST(std::abs(var - s * s) <= 4 * var_se + 2e-3 * s * s);
    }
  }
}

BOOST_AUTO_TEST_CASE(discrete_transition_is_exact) {
  // x_t = x_{t-dt} + f_disc + G_disc z must carry N(alpha(t-dt) x0, sigma(t-dt)^2) to N(alpha(t) x0, sigma(t)^2).
  for (const auto& process : all_processes()) {
    const auto x = at::tensor({1.0, 2.0}, f64).reshape({1, 2});
    const auto t = at::tensor({0.6}, f64), dt = at::tensor({0.05}, f64);
    auto [f_disc, g_disc] = process->discretize(x, t, dt);
    const double ratio = 1.0 + (f_disc / x)[0][0].item<double>();
    const double alpha_prev = process->alpha(t - dt).item<double>(), alpha_now = process->alpha(t).item<double>();
    const double s_prev = process->sigma(t - dt).item<double>(), s_now = process->sigma(t).item<double>();
    const double g = g_disc.value.item<double>();
    BOOST_TEST(ratio * alpha_prev == alpha_now, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(ratio * ratio * s_prev * s_prev + g * g == s_now * s_now, boost::test_tools::tolerance(1e-12));
  }
}

BOOST_AUTO_TEST_CASE(prior_log_density_and_samples) {
  for (const auto& process : all_processes()) {
    auto generator = at::detail::createCPUGenerator(7);
    const auto samples = process->prior_sample(100000, 3, f64, generator);
    const double s = process->prior_std();
    BOOST_TEST(samples.var().item<double>() == s * s, boost::test_tools::tolerance(4 * std::sqrt(2.0 / 300000)));
    const auto x = at::tensor({0.3, -1.0, 2.0}, f64).reshape({1, 3});
    const double expected = -1.5 * std::log(2 * M_PI * s * s) - (0.09 + 1.0 + 4.0) / (2 * s * s);
    BOOST_TEST(process->prior_log_prob(x).item<double>() == expected, boost::test_tools::tolerance(1e-13));
  }
}

BOOST_AUTO_TEST_CASE(invalid_parameters_are_named) {
  auto message_of = [](const std::string& name, const std::map<std::string, double>& parameters) {
    try {
      make_linear_process(name, parameters);
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  BOOST_TEST(message_of("vp", {{"beta_min", -1.0}}).find("beta_min") != std::string::npos);
  BOOST_TEST(message_of("vp", {{"beta_max", std::nan("")}}).find("not finite") != std::string::npos);
  BOOST_TEST(message_of("ve", {{"sigma_min", 0.0}}).find("sigma_min") != std::string::npos);
  BOOST_TEST(message_of("ve", {{"beta_min", 0.1}}).find("unknown parameter 'beta_min'") != std::string::npos);
  BOOST_TEST(message_of("vp", {{"eps", 2.0}}).find("eps") != std::string::npos);
  BOOST_TEST(message_of("cld", {}).find("unknown process 'cld'") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
