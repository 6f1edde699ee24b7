#pragma once
// Sample-quality checks against an exact Gaussian mixture, shared by the sampler test suites: every statistic
// within its Monte-Carlo standard error, no allowance (a sampler's own bias, where theory gives one, is
// passed in explicitly).
#include <boost/test/unit_test.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "processes/mixture.hpp"

namespace sdeflow::test {

// A random D-dimensional mixture with K components and unit-scale, anisotropic covariances.
inline std::shared_ptr<GaussianMixture> random_mixture(int64_t dim, int64_t components, uint64_t seed) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto generator = at::detail::createCPUGenerator(seed);
  const auto weights = at::softmax(at::randn({components}, generator, f64) * 0.5, 0);
  const auto means = at::randn({components, dim}, generator, f64) * 1.5;
  const auto a = at::randn({components, dim, dim}, generator, f64);
  const auto covariances = at::matmul(a, a.transpose(1, 2)) / static_cast<double>(dim) * 0.5 +
                           0.1 * at::eye(dim, f64).expand({components, dim, dim});
  return std::make_shared<GaussianMixture>(weights, means, covariances);
}

// Exact draws from the mixture: the reference for the statistics that need one (the fraction of samples
// assigned to each component by responsibility is not the weight where components overlap, and E_p[log p]
// has no closed form).
struct Reference {
  MixtureComparison statistics;
  int64_t n;
};

inline Reference exact_reference(const GaussianMixture& mixture, int64_t n) {
  auto generator = at::detail::createCPUGenerator(1234);
  return {compare_to_mixture(mixture.sample(n, generator, at::kDouble).first, mixture), n};
}

// Samples against the mixture with Monte-Carlo standard errors only, no allowance: component fractions
// against the exact draws' fractions (binomial), each coordinate's mean (sd / sqrt n), each covariance entry
// as the mean of (x_i - m_i)(x_j - m_j) around the true mean (standard error from the same products), and
// the mean exact log-likelihood against the exact draws' (a 6 % error in a component's variance moves it
// by ~0.06 nats; its standard error at n = 20000 is ~0.01). At 4 SE.
// [log_p_bias_low, log_p_bias_high]: the sampler's own bias of E[log p] where theory or a coarser run gives
// it (the Langevin corrector's, stochastic DDIM's first-order bias); [0, 0] for the samplers whose bias at
// the tested steps is below the resolution.
inline void check_against_mixture(const at::Tensor& samples, const GaussianMixture& mixture, const Reference& reference,
                           const std::string& label, double log_p_bias_low = 0.0, double log_p_bias_high = 0.0) {
  const auto x = samples.to(at::kDouble);
  const double n = static_cast<double>(x.size(0));
  const auto cmp = compare_to_mixture(x, mixture);
  const auto& ref = reference.statistics;
  const auto f = ref.component_fraction;
  const auto fraction_se = at::sqrt(f * (1 - f) * (1.0 / n + 1.0 / static_cast<double>(reference.n)));
  BOOST_TEST(((cmp.component_fraction - f).abs() <= 4 * fraction_se).all().item<bool>(),
             label << ": fractions " << cmp.component_fraction << " vs " << f);
  const auto cov = mixture.covariance();
  const auto centred = x - mixture.mean();
  double worst_mean = 0, worst_cov = 0;
  for (int64_t i = 0; i < x.size(1); ++i) {
    const double mean_se = std::sqrt(cov[i][i].item<double>() / n);
    const double mean_z = std::abs(centred.select(1, i).mean().item<double>()) / mean_se;
    worst_mean = std::max(worst_mean, mean_z);
    BOOST_TEST(mean_z <= 4.0, label << ": mean " << i << " off by " << mean_z << " SE");
    for (int64_t j = 0; j <= i; ++j) {
      const auto products = centred.select(1, i) * centred.select(1, j);
      const double se = products.std().item<double>() / std::sqrt(n);
      const double z = std::abs(products.mean().item<double>() - cov[i][j].item<double>()) / se;
      worst_cov = std::max(worst_cov, z);
      BOOST_TEST(z <= 4.0, label << ": covariance " << i << j << " off by " << z << " SE");
    }
  }
  const double log_p_se = std::hypot(cmp.mean_log_likelihood_stderr, ref.mean_log_likelihood_stderr);
  const double log_p_z = (cmp.mean_log_likelihood - ref.mean_log_likelihood) / log_p_se;
  BOOST_TEST_MESSAGE(label << ": mean log p " << cmp.mean_log_likelihood << " vs exact " << ref.mean_log_likelihood
                           << " (" << log_p_z << " SE); worst mean " << worst_mean << " SE, worst covariance "
                           << worst_cov << " SE; fractions " << cmp.component_fraction);
  const double shift = cmp.mean_log_likelihood - ref.mean_log_likelihood;
  BOOST_TEST((shift >= log_p_bias_low - 4 * log_p_se && shift <= log_p_bias_high + 4 * log_p_se),
             label << ": mean log p off by " << log_p_z << " SE (allowed bias [" << log_p_bias_low << ", "
                   << log_p_bias_high << "])");
}

// The differential entropy H(p) = -int p log p of a 2-D mixture by the midpoint rule on a box 10 standard
// deviations beyond every mean, step 0.01 (at least 20 points per the smallest standard deviation, 0.22 for the
// built-in mixture: the rule's error on Gaussians is far below 1e-8, and so is the mass outside the box).
inline double mixture_entropy(const GaussianMixture& mixture) {
  const double sd = mixture.covariances().diagonal(0, 1, 2).max().sqrt().item<double>();
  const at::Tensor lo = at::amin(mixture.means(), 0) - 10 * sd;
  const at::Tensor hi = at::amax(mixture.means(), 0) + 10 * sd;
  const double h = 0.01;
  const auto gx = at::arange(lo[0].item<double>() + h / 2, hi[0].item<double>(), h, at::TensorOptions().dtype(at::kDouble));
  const auto gy = at::arange(lo[1].item<double>() + h / 2, hi[1].item<double>(), h, at::TensorOptions().dtype(at::kDouble));
  const auto mesh = at::meshgrid({gx, gy}, "ij");
  const auto points = at::stack({mesh[0].flatten(), mesh[1].flatten()}, 1);
  double total = 0;
  for (int64_t start = 0; start < points.size(0); start += 200000) {
    const auto log_p = mixture.log_prob(points.narrow(0, start, std::min<int64_t>(200000, points.size(0) - start)));
    total -= (log_p.exp() * log_p).sum().item<double>() * h * h;
  }
  return total;
}

}  // namespace sdeflow::test
