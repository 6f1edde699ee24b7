// Tests of networks/gmm and networks/score_model: the exact mixture score, log-density and Laplacian
// against autograd and an independent (Cholesky) evaluation, sampling moments, validation, and the
// score / noise / data conversions.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>

#include "core/error.hpp"
#include "processes/mixture.hpp"
#include "processes/score_model.hpp"
#include "processes/linear.hpp"

using namespace sdeflow;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

std::shared_ptr<GaussianMixture> random_mixture(int64_t k, int64_t d, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  const auto weights = at::softmax(at::randn({k}, generator, f64), 0);
  const auto means = 2.0 * at::randn({k, d}, generator, f64);
  const auto factor = at::randn({k, d, d}, generator, f64) * 0.5;
  const auto covariances = at::matmul(factor, factor.transpose(1, 2)) + 0.1 * at::eye(d, f64);
  return std::make_shared<GaussianMixture>(weights, means, covariances);
}

// log sum_k w_k N(x; m_k, C_k) by Cholesky factorisation: independent of the eigen-decomposition used
// in the library.
at::Tensor reference_log_prob(const at::Tensor& x, const at::Tensor& weights, const at::Tensor& means,
                              const at::Tensor& covariances) {
  const int64_t d = x.size(1);
  std::vector<at::Tensor> terms;
  for (int64_t k = 0; k < weights.size(0); ++k) {
    const auto chol = at::linalg_cholesky(covariances[k]);
    const auto diff = (x - means[k]).transpose(0, 1);
    const auto solved = at::linalg_solve_triangular(chol, diff, /*upper=*/false);
    const auto quad = solved.pow(2).sum(0);
    const auto log_det = 2.0 * at::log(at::diagonal(chol)).sum();
    terms.push_back(std::log(weights[k].item<double>()) - 0.5 * (d * std::log(2 * M_PI) + log_det + quad));
  }
  return at::logsumexp(at::stack(terms, 1), 1);
}

std::vector<std::shared_ptr<LinearProcess>> all_processes() {
  return {make_linear_process("vp", {}), make_linear_process("subvp", {}), make_linear_process("ve", {})};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(gmm)

BOOST_AUTO_TEST_CASE(score_and_laplacian_equal_autograd_of_log_density) {
  const auto mixture = random_mixture(3, 3, 11);
  auto generator = at::detail::createCPUGenerator(5);
  for (const auto& process : all_processes()) {
    GaussianMixtureScore model(mixture, process);
    for (double time : {1e-3, 0.1, 0.5, 1.0}) {
      const auto t = at::full({6}, time, f64);
      const auto x = (process->alpha(t).unsqueeze(1) * 2.0 * at::randn({6, 3}, generator, f64) +
                      process->sigma(t).unsqueeze(1) * at::randn({6, 3}, generator, f64))
                         .requires_grad_(true);
      const auto log_p = model.log_prob(x, t);
      const auto grad = torch::autograd::grad({log_p.sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
      const auto score = model.score(x.detach(), t);
      const double scale = grad.abs().max().item<double>();
      BOOST_TEST((score - grad.detach()).abs().max().item<double>() <= 1e-10 * std::max(scale, 1.0));
      // Laplacian = sum_i d(grad_i)/dx_i by D further backward passes.
      at::Tensor laplacian = at::zeros({6}, f64);
      for (int64_t i = 0; i < 3; ++i) {
        const auto second = torch::autograd::grad({grad.select(1, i).sum()}, {x}, {}, true)[0];
        laplacian = laplacian + second.select(1, i).detach();
      }
      const auto exact = model.laplacian_log_prob(x.detach(), t);
      const double lscale = laplacian.abs().max().item<double>();
      BOOST_TEST((exact - laplacian).abs().max().item<double>() <= 1e-9 * std::max(lscale, 1.0),
                 process->name() << " t = " << time);
    }
  }
}

BOOST_AUTO_TEST_CASE(marginal_density_matches_independent_evaluation) {
  const auto mixture = random_mixture(4, 2, 3);
  auto generator = at::detail::createCPUGenerator(9);
  const auto x = 3.0 * at::randn({50, 2}, generator, f64);
  BOOST_TEST((mixture->log_prob(x) - reference_log_prob(x, mixture->weights(), mixture->means(), mixture->covariances()))
                 .abs().max().item<double>() <= 1e-11);
  for (const auto& process : all_processes()) {
    GaussianMixtureScore model(mixture, process);
    const double time = 0.37;
    const auto t = at::full({50}, time, f64);
    const double a = process->alpha(t)[0].item<double>(), s = process->sigma(t)[0].item<double>();
    const auto covariances = a * a * mixture->covariances() + s * s * at::eye(2, f64);
    const auto reference = reference_log_prob(x, mixture->weights(), a * mixture->means(), covariances);
    BOOST_TEST((model.log_prob(x, t) - reference).abs().max().item<double>() <= 1e-11, process->name());
  }
}

BOOST_AUTO_TEST_CASE(samples_have_the_mixture_moments) {
  const auto mixture = random_mixture(3, 2, 21);
  auto generator = at::detail::createCPUGenerator(1);
  const int64_t n = 200000;
  const auto [x, component] = mixture->sample(n, generator, f64);
  const auto cov = mixture->covariance();
  for (int64_t d = 0; d < 2; ++d) {
    const double se = std::sqrt(cov[d][d].item<double>() / n);
    BOOST_TEST(std::abs(x.select(1, d).mean().item<double>() - mixture->mean()[d].item<double>()) <= 4 * se);
  }
  for (int64_t k = 0; k < 3; ++k) {
    const double w = mixture->weights()[k].item<double>();
    const double fraction = (component == k).sum().item<double>() / n;
    BOOST_TEST(std::abs(fraction - w) <= 4 * std::sqrt(w * (1 - w) / n));
    // Within component k: the sample covariance against Sigma_k; entry (i, j) of a Gaussian sample covariance
    // has variance (Sigma_ii Sigma_jj + Sigma_ij^2) / n_k.
    const auto rows = x.index({component == k});
    const double n_k = static_cast<double>(rows.size(0));
    const auto centred = rows - rows.mean(0);
    const auto sample_cov = at::matmul(centred.t(), centred) / (n_k - 1);
    const auto sigma = mixture->covariances()[k];
    const auto diag = sigma.diagonal();
    const auto se_cov = at::sqrt((at::outer(diag, diag) + sigma * sigma) / n_k);
    BOOST_TEST(((sample_cov - sigma).abs() <= 4 * se_cov).all().item<bool>(), "component " << k);
  }
  // The whole mixture's covariance (not Gaussian): entry (i, j) is the mean of (x_i - m_i)(x_j - m_j), whose
  // standard error is estimated from the same products.
  const auto centred = x - mixture->mean();
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      const auto products = centred.select(1, i) * centred.select(1, j);
      const double se = products.std().item<double>() / std::sqrt(static_cast<double>(n));
      BOOST_TEST(std::abs(products.mean().item<double>() - cov[i][j].item<double>()) <= 4 * se, "entry " << i << j);
    }
  }
}

BOOST_AUTO_TEST_CASE(invalid_mixtures_are_rejected_with_a_reason) {
  const auto w = at::tensor({0.5, 0.5}, f64);
  const auto m = at::zeros({2, 2}, f64);
  const auto c = at::eye(2, f64).repeat({2, 1, 1});
  auto message_of = [](const at::Tensor& weights, const at::Tensor& means, const at::Tensor& covariances) {
    try {
      GaussianMixture mixture(weights, means, covariances);
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  BOOST_TEST(message_of(w, m, c) == "no error");
  BOOST_TEST(message_of(at::tensor({1.5, -0.5}, f64), m, c).find("non-negative") != std::string::npos);
  BOOST_TEST(message_of(at::tensor({0.5, 0.6}, f64), m, c).find("sum to 1") != std::string::npos);
  auto nan_means = m.clone();
  nan_means[0][0] = std::nan("");
  BOOST_TEST(message_of(w, nan_means, c).find("means: contains NaN") != std::string::npos);
  auto asymmetric = c.clone();
  asymmetric[1][0][1] = 0.3;
  BOOST_TEST(message_of(w, m, asymmetric).find("component 1 is not symmetric") != std::string::npos);
  auto indefinite = c.clone();
  indefinite[0][1][1] = -1.0;
  BOOST_TEST(message_of(w, m, indefinite).find("component 0 is not positive-definite") != std::string::npos);
  BOOST_TEST(message_of(w, at::zeros({2, 3}, f64), c).find("[K, D, D]") != std::string::npos);
  BOOST_TEST(message_of(w, at::zeros({3, 2}, f64), c).find("means must be [K, D]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(parameterisations_convert_exactly) {
  const auto process = make_linear_process("vp", {});
  // Data N(0, I) under VP stays N(0, I): score = -x, noise = sigma x, data (x0 estimate) = alpha x.
  const auto x = at::tensor({0.5, -1.0, 2.0, 0.25}, f64).reshape({2, 2});
  const auto t = at::tensor({0.3, 0.8}, f64);
  const auto score = -x;
  const auto noise = score_to_prediction(Parameterisation::noise, score, x, t, *process);
  const auto data = score_to_prediction(Parameterisation::data, score, x, t, *process);
  BOOST_TEST((noise - process->sigma(t).unsqueeze(1) * x).abs().max().item<double>() <= 1e-15);
  BOOST_TEST((data - process->alpha(t).unsqueeze(1) * x).abs().max().item<double>() <= 1e-14);
  for (auto p : {Parameterisation::score, Parameterisation::noise, Parameterisation::data}) {
    const auto back = prediction_to_score(p, score_to_prediction(p, score, x, t, *process), x, t, *process);
    BOOST_TEST((back - score).abs().max().item<double>() <= 1e-13, to_string(p));
  }
  BOOST_CHECK_THROW(parse_parameterisation("velocity"), InputError);
}

BOOST_AUTO_TEST_SUITE_END()
