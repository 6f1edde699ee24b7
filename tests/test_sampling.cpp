// Tests of processes/sampling: sampling a 2-D Gaussian mixture with its exact score by Euler-Maruyama and
// predictor-corrector (reverse SDE) and RK4 (probability-flow ODE) reproduces the mixture: component
// fractions, mean and covariance within Monte-Carlo error plus a stated discretisation allowance.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>

#include "io/model_file.hpp"
#include "networks/gmm.hpp"
#include "processes/sampling.hpp"

using namespace sdeflow;

namespace {

struct Case {
  std::string process;
  std::string solver;
  int64_t steps;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(sampling)

BOOST_AUTO_TEST_CASE(samplers_reproduce_a_two_dimensional_mixture) {
  const auto builtin = builtin_model("gmm2d");
  const int64_t n = 20000;
  // Allowance for the sampler's own bias at these step counts: its weak error is O(h) (O(h^4) for RK4);
  // at 500-1000 steps the measured bias in every moment is below 0.02 (twice the steps halve it).
  const double allowance = 0.02;
  for (const auto& c : std::vector<Case>{{"vp", "em", 1000}, {"vp", "pc", 500}, {"vp", "rk4", 100},
                                         {"subvp", "em", 1000}, {"ve", "em", 1000}, {"ve", "pc", 500},
                                         {"ve", "rk4", 200}}) {
    auto process = make_linear_process(c.process, {});
    SamplingRequest request;
    request.process = process;
    request.model = std::make_shared<GaussianMixtureScore>(builtin.mixture, process);
    request.solver = c.solver;
    request.steps = c.steps;
    request.n = n;
    request.seed = 17;
    const auto solution = sample(request, nullptr);
    BOOST_REQUIRE(solution.all_ok());
    const auto cmp = compare_to_mixture(solution.y, *builtin.mixture);
    const auto label = c.process + "/" + c.solver;
    BOOST_TEST_MESSAGE(label << ": fractions " << cmp.component_fraction << " mean error " << cmp.max_abs_mean_error
                             << " cov error " << cmp.max_abs_covariance_error << " mean log p " << cmp.mean_log_likelihood);
    const auto fraction_error = (cmp.component_fraction - builtin.mixture->weights()).abs();
    BOOST_TEST((fraction_error <= 4 * cmp.component_fraction_stderr + allowance).all().item<bool>(), label);
    const auto cov = builtin.mixture->covariance();
    const double mean_se = std::sqrt(cov.diagonal().max().item<double>() / n);
    BOOST_TEST(cmp.max_abs_mean_error <= 4 * mean_se + allowance, label);
    // Variance of a sample covariance entry <= 3 max(var)^2 / n for these light-tailed mixtures.
    const double cov_se = std::sqrt(3.0 / n) * cov.diagonal().max().item<double>();
    BOOST_TEST(cmp.max_abs_covariance_error <= 4 * cov_se + allowance, label);
  }
}

BOOST_AUTO_TEST_CASE(mean_log_likelihood_of_samples_matches_the_data) {
  // E_p[log p(x)] (minus the entropy) estimated from exact mixture samples vs from PC samples.
  const auto builtin = builtin_model("gmm2d");
  auto generator = at::detail::createCPUGenerator(3);
  const auto [truth, component] = builtin.mixture->sample(20000, generator, at::kDouble);
  (void)component;
  const auto reference = compare_to_mixture(truth, *builtin.mixture);
  SamplingRequest request;
  request.process = builtin.process;
  request.model = std::make_shared<GaussianMixtureScore>(builtin.mixture, builtin.process);
  request.solver = "pc";
  request.steps = 500;
  request.n = 20000;
  const auto cmp = compare_to_mixture(sample(request, nullptr).y, *builtin.mixture);
  const double se = std::hypot(reference.mean_log_likelihood_stderr, cmp.mean_log_likelihood_stderr);
  BOOST_TEST_MESSAGE("mean log p: data " << reference.mean_log_likelihood << " samples " << cmp.mean_log_likelihood);
  BOOST_TEST(std::abs(cmp.mean_log_likelihood - reference.mean_log_likelihood) <= 4 * se + 0.02);
}

BOOST_AUTO_TEST_CASE(adaptive_sde_sampler_needs_fewer_evaluations_than_euler_maruyama) {
  // The EM / improved-Euler pair with error control on a Brownian tree (solver "ggf") at rtol = atol = 0.01
  // reproduces the mixture as well as Euler-Maruyama with 1000 steps (same criteria: fractions, moments and
  // mean log-likelihood within Monte-Carlo error + 0.02) with fewer than half of EM's evaluations.
  const auto builtin = builtin_model("gmm2d");
  const int64_t n = 5000;
  auto run = [&](const std::string& solver, int64_t steps) {
    SamplingRequest request;
    request.process = builtin.process;
    request.model = std::make_shared<GaussianMixtureScore>(builtin.mixture, builtin.process);
    request.solver = solver;
    request.steps = steps;
    request.n = n;
    request.seed = 5;
    request.rtol = request.atol = 0.01;
    return sample(request, nullptr);
  };
  const auto em = run("em", 1000);
  const auto ggf = run("ggf", 1);   // steps are unused by the adaptive sampler
  BOOST_REQUIRE(ggf.all_ok());
  const auto cmp_em = compare_to_mixture(em.y, *builtin.mixture);
  const auto cmp = compare_to_mixture(ggf.y, *builtin.mixture);
  const double per_sample_nfe = ggf.nfe.to(at::kDouble).mean().item<double>();
  BOOST_TEST_MESSAGE("ggf: " << per_sample_nfe << " evaluations per sample (" << ggf.stats.nfe << " batched calls), "
                     "mean log p " << cmp.mean_log_likelihood << " +- " << cmp.mean_log_likelihood_stderr
                     << "; em 1000 steps: " << cmp_em.mean_log_likelihood << " +- " << cmp_em.mean_log_likelihood_stderr);
  BOOST_TEST(per_sample_nfe < 500.0);
  const double se = std::hypot(cmp.mean_log_likelihood_stderr, cmp_em.mean_log_likelihood_stderr);
  BOOST_TEST(std::abs(cmp.mean_log_likelihood - cmp_em.mean_log_likelihood) <= 4 * se + 0.02);
  const auto cov = builtin.mixture->covariance();
  const double mean_se = std::sqrt(cov.diagonal().max().item<double>() / n);
  BOOST_TEST(cmp.max_abs_mean_error <= 4 * mean_se + 0.02);
  const double cov_se = std::sqrt(3.0 / n) * cov.diagonal().max().item<double>();
  BOOST_TEST(cmp.max_abs_covariance_error <= 4 * cov_se + 0.02);
}

BOOST_AUTO_TEST_SUITE_END()
