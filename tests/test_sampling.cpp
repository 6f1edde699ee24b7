// Tests of processes/sampling: sampling a 2-D Gaussian mixture with its exact score by Euler-Maruyama and
// predictor-corrector (reverse SDE), RK4 (probability-flow ODE) and the adaptive ggf sampler reproduces the
// mixture: component fractions, mean, covariance and mean exact log-likelihood within Monte-Carlo error
// (no allowance), and Euler-Maruyama's bias falls like the step.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>

#include "io/model_file.hpp"
#include "processes/mixture.hpp"
#include "samplers/sampling.hpp"
#include "mixture_checks.hpp"

using namespace sdeflow;
using sdeflow::test::check_against_mixture;
using sdeflow::test::exact_reference;

namespace {

struct Case {
  std::string process;
  std::string solver;
  int64_t steps;
};

SamplingRequest mixture_request(const std::shared_ptr<MixtureModel>& builtin, std::shared_ptr<const LinearProcess> process,
                                const std::string& solver, int64_t steps, int64_t n, uint64_t seed) {
  SamplingRequest request;
  request.process = process;
  request.model = std::make_shared<GaussianMixtureScore>(builtin->mixture(), process);
  request.solver = solver;
  request.steps = steps;
  request.n = n;
  request.seed = seed;
  return request;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sampling)

BOOST_AUTO_TEST_CASE(samplers_reproduce_a_two_dimensional_mixture) {
  // At these step counts every sampler's discretisation bias is below the Monte-Carlo resolution of 20000
  // samples (checked with no allowance); that the bias is real and shrinks with the step is shown by the
  // same statistics at a quarter of the steps (printed; for Euler-Maruyama asserted in
  // euler_maruyama_bias_shrinks_with_the_step).
  const auto builtin = builtin_model("gmm2d");
  const int64_t n = 20000;
  const auto reference = exact_reference(*builtin->mixture(), 400000);
  for (const auto& c : std::vector<Case>{{"vp", "em", 1000}, {"vp", "pc", 500}, {"vp", "rk4", 100},
                                         {"subvp", "em", 1000}, {"ve", "em", 1000}, {"ve", "pc", 500},
                                         {"ve", "rk4", 200}}) {
    auto process = make_linear_process(c.process, {});
    const auto solution = sample(mixture_request(builtin, process, c.solver, c.steps, n, 17), nullptr);
    BOOST_REQUIRE(solution.all_ok());
    // The Langevin corrector (snr r = 0.16) is unadjusted Langevin with step eps = 2 r^2 sigma^2 at a locally
    // Gaussian target of variance sigma^2: its stationary variance is sigma^2 / (1 - r^2), which lowers
    // E[log p] by (D / 2) r^2 / (1 - r^2) = 0.0263 nats in 2-D once equilibrated; one corrector step per level
    // equilibrates partly, so the bias lies in [-0.0263, 0] whatever the step count (docs/testing.md; measured
    // -0.033 +- 0.0075 at 500 steps, -0.034 at 1000, -0.012 at 2000).
    const double r = 0.16, corrector_bias = c.solver == "pc" ? -1.0 * r * r / (1 - r * r) : 0.0;
    check_against_mixture(solution.y, *builtin->mixture(), reference, c.process + "/" + c.solver + " " + std::to_string(c.steps),
                          corrector_bias);
  }
}

BOOST_AUTO_TEST_CASE(euler_maruyama_bias_shrinks_with_the_step) {
  // Weak order 1: the bias of E[log p(X)] falls at least like h. Measured with 20000 samples at 25, 50 and
  // 100 steps (VP): the deviation from the exact draws at 25 steps is resolved (> 4 SE); halving the step
  // at least halves it and halving it twice at least quarters it, within the Monte-Carlo error (measured
  // 0.181, 0.016, 0.0001 +- 0.007: faster than h on these coarse grids, where the higher-order terms still
  // count).
  const auto builtin = builtin_model("gmm2d");
  const int64_t n = 20000;
  const auto reference = exact_reference(*builtin->mixture(), 400000);
  auto process = make_linear_process("vp", {});
  std::vector<double> deviation, se;
  for (const int64_t steps : {25, 50, 100}) {
    const auto solution = sample(mixture_request(builtin, process, "em", steps, n, 29), nullptr);
    const auto cmp = compare_to_mixture(solution.y, *builtin->mixture());
    deviation.push_back(cmp.mean_log_likelihood - reference.statistics.mean_log_likelihood);
    se.push_back(std::hypot(cmp.mean_log_likelihood_stderr, reference.statistics.mean_log_likelihood_stderr));
    BOOST_TEST_MESSAGE("em " << steps << " steps: E log p deviation " << deviation.back() << " +- " << se.back());
  }
  BOOST_TEST(std::abs(deviation[0]) > 4 * se[0], "the bias at 25 steps must be resolved");
  BOOST_TEST(std::abs(deviation[1]) <= std::abs(deviation[0]) / 2 + 4 * std::hypot(se[1], se[0] / 2));
  BOOST_TEST(std::abs(deviation[2]) <= std::abs(deviation[0]) / 4 + 4 * std::hypot(se[2], se[0] / 4));
}

BOOST_AUTO_TEST_CASE(adaptive_sde_sampler_needs_fewer_evaluations_than_euler_maruyama) {
  // The EM / improved-Euler pair with error control on a Brownian tree (solver "ggf") at rtol = atol = 0.01
  // reproduces the mixture to the Monte-Carlo resolution of 5000 samples (same criteria as above, no
  // allowance) with fewer than half of the evaluations of Euler-Maruyama's 1000 steps.
  const auto builtin = builtin_model("gmm2d");
  const int64_t n = 5000;
  const auto reference = exact_reference(*builtin->mixture(), 400000);
  auto request = mixture_request(builtin, require_scalar_process(builtin->process(), "test"), "ggf", 1, n, 5);   // steps are unused by ggf
  request.rtol = request.atol = 0.01;
  const auto ggf = sample(request, nullptr);
  BOOST_REQUIRE(ggf.all_ok());
  const double per_sample_nfe = ggf.nfe.to(at::kDouble).mean().item<double>();
  BOOST_TEST_MESSAGE("ggf: " << per_sample_nfe << " evaluations per sample (" << ggf.stats.nfe << " batched calls)");
  BOOST_TEST(per_sample_nfe < 500.0);
  check_against_mixture(ggf.y, *builtin->mixture(), reference, "ggf rtol 0.01");
}

BOOST_AUTO_TEST_SUITE_END()
