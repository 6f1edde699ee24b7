// Exact Gaussian-mixture marginals under linear processes. Each covariance is diagonalised once,
// Sigma_k = U_k diag(lambda_k) U_k^T, so alpha^2 Sigma_k + sigma^2 I = U_k diag(alpha^2 lambda_k + sigma^2)
// U_k^T for every t: no factorisation per time (docs/processes.md, "Exact Gaussian-mixture scores").
#include "processes/mixture.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "processes/linear.hpp"
#include "processes/matrix_linear.hpp"

namespace sdeflow {

namespace {
constexpr double kLog2Pi = 1.8378770664093453;
}

GaussianMixture::GaussianMixture(const at::Tensor& weights, const at::Tensor& means,
                                 const at::Tensor& covariances) {
  if (weights.dim() != 1 || weights.size(0) < 1) throw InputError("gmm: weights must be a non-empty [K] vector");
  const int64_t k = weights.size(0);
  if (means.dim() != 2 || means.size(0) != k || means.size(1) < 1) {
    throw InputError("gmm: means must be [K, D] with K = " + std::to_string(k) + " (the number of weights)");
  }
  const int64_t d = means.size(1);
  if (covariances.dim() != 3 || covariances.size(0) != k || covariances.size(1) != d || covariances.size(2) != d) {
    throw InputError("gmm: covariances must be [K, D, D] = [" + std::to_string(k) + ", " + std::to_string(d) +
                     ", " + std::to_string(d) + "]");
  }
  weights_ = weights.to(at::kCPU, at::kDouble).contiguous();
  means_ = means.to(at::kCPU, at::kDouble).contiguous();
  covariances_ = covariances.to(at::kCPU, at::kDouble).contiguous();
  require_finite(weights_, "gmm: weights");
  require_finite(means_, "gmm: means");
  require_finite(covariances_, "gmm: covariances");
  if ((weights_ < 0).any().item<bool>()) throw InputError("gmm: weights must be non-negative");
  const double total = weights_.sum().item<double>();
  if (std::abs(total - 1.0) > 1e-6) {
    throw InputError("gmm: weights must sum to 1 (sum = " + std::to_string(total) + ")");
  }
  for (int64_t i = 0; i < k; ++i) {
    const auto c = covariances_[i];
    const double scale = c.abs().max().item<double>();
    const double asym = (c - c.transpose(0, 1)).abs().max().item<double>();
    if (asym > 1e-10 * std::max(scale, 1e-300)) {
      throw InputError("gmm: covariance of component " + std::to_string(i) + " is not symmetric");
    }
  }
  auto [values, vectors] = at::linalg_eigh(covariances_);
  for (int64_t i = 0; i < k; ++i) {
    const double smallest = values[i].min().item<double>();
    const double largest = values[i].max().item<double>();
    if (!(smallest > 1e-12 * std::max(largest, 1e-300)) || !(smallest > 0.0)) {
      throw InputError("gmm: covariance of component " + std::to_string(i) + " is not positive-definite");
    }
  }
  eigenvalues_ = values.contiguous();
  eigenvectors_ = vectors.contiguous();
  stacked_vectors_ = eigenvectors_.permute({1, 0, 2}).reshape({d, k * d}).contiguous();
  projected_means_ = at::matmul(eigenvectors_.transpose(1, 2), means_.unsqueeze(2)).squeeze(2).contiguous();
}

at::Tensor GaussianMixture::mean() const { return (weights_.unsqueeze(1) * means_).sum(0); }

at::Tensor GaussianMixture::covariance() const {
  const auto m = mean();
  const auto centred = means_ - m;
  const auto between = centred.unsqueeze(2) * centred.unsqueeze(1);
  return (weights_.reshape({-1, 1, 1}) * (covariances_ + between)).sum(0);
}

GaussianMixture::Evaluation GaussianMixture::evaluate(const at::Tensor& x, const at::Tensor& alpha,
                                                      const at::Tensor& sigma, bool with_laplacian) const {
  require_state(x, dim(), "gmm: state");
  const int64_t b = x.size(0), k = components(), d = dim();
  const auto options = x.options();
  const auto lambda = eigenvalues_.to(options);
  const auto stacked = stacked_vectors_.to(options);
  const auto log_w = at::log(weights_.to(options));
  // In the eigenbasis of component k: p_k = U_k^T (x - alpha mu_k) = U_k^T x - alpha U_k^T mu_k, all k at
  // once with one matrix product; C_k = U_k diag(alpha^2 lambda_k + sigma^2) U_k^T.
  const auto projected = at::matmul(x, stacked).view({b, k, d}) -
                         alpha.to(options).view({-1, 1, 1}) * projected_means_.to(options).unsqueeze(0);   // [B, K, D]
  // When every row shares one time (shared-step solvers, the first step of all) the variances are [K, D]:
  // their logarithms and reciprocals are computed once instead of per row.
  const bool one_time = alpha.numel() == 1 || (b > 1 && at::equal(alpha, alpha.narrow(0, 0, 1).expand_as(alpha)) &&
                                               at::equal(sigma, sigma.narrow(0, 0, 1).expand_as(sigma)));
  at::Tensor inverse, log_det, trace;   // 1 / variance [.., K, D]; sum log variance, sum 1 / variance [.., K]
  if (one_time) {
    const auto a = alpha.reshape({-1})[0].to(options);
    const auto s = sigma.reshape({-1})[0].to(options);
    const auto variance = a * a * lambda + s * s;   // [K, D]
    inverse = variance.reciprocal();
    log_det = at::log(variance).sum(1);
    trace = inverse.sum(1);
  } else {
    const auto a = alpha.to(options).view({-1, 1, 1});
    const auto s = sigma.to(options).view({-1, 1, 1});
    const auto variance = a * a * lambda.unsqueeze(0) + s * s;   // [B, K, D]
    inverse = variance.reciprocal();
    log_det = at::log(variance).sum(2);
    trace = inverse.sum(2);
  }
  const auto whitened = projected * inverse;          // C_k^{-1} (x - m_k) in the eigenbasis
  const auto quad = (projected * whitened).sum(2);    // [B, K]
  const auto joint = log_w.unsqueeze(0) - 0.5 * (static_cast<double>(d) * kLog2Pi + log_det + quad);
  Evaluation result;
  result.log_prob = at::logsumexp(joint, 1);
  result.responsibilities = at::exp(joint - result.log_prob.unsqueeze(1));
  // score = sum_k r_k (-C_k^{-1} (x - m_k)) = -sum_k U_k (r_k whitened_k): one matrix product.
  const auto weighted = (result.responsibilities.unsqueeze(2) * whitened).view({b, k * d});
  result.score = -at::matmul(weighted, stacked.t());
  if (with_laplacian) {
    // Laplacian of log sum_k w_k N_k = sum_k r_k (|g_k|^2 - tr C_k^{-1}) - |sum_k r_k g_k|^2 with
    // g_k = -C_k^{-1} (x - m_k); |g_k| is the norm of `whitened` (U_k is orthogonal).
    const auto per_component = whitened.pow(2).sum(2) - trace;
    result.laplacian = (result.responsibilities * per_component).sum(1) - result.score.pow(2).sum(1);
  }
  return result;
}

at::Tensor GaussianMixture::log_prob(const at::Tensor& x) const {
  const auto ones = at::ones({x.size(0)}, x.options());
  return evaluate(x, ones, at::zeros_like(ones)).log_prob;
}

std::pair<at::Tensor, at::Tensor> GaussianMixture::sample(int64_t n, at::Generator& generator,
                                                          const at::TensorOptions& options) const {
  const auto component = at::multinomial(weights_, n, /*replacement=*/true, generator);
  const auto noise = at::randn({n, dim()}, generator, at::TensorOptions().dtype(at::kDouble));
  const auto factor = eigenvectors_ * at::sqrt(eigenvalues_).unsqueeze(1);   // U diag(sqrt(lambda))
  const auto picked = factor.index_select(0, component);
  const auto x = means_.index_select(0, component) + at::matmul(picked, noise.unsqueeze(2)).squeeze(2);
  return {x.to(options), component};
}

GaussianMixtureScore::GaussianMixtureScore(std::shared_ptr<const GaussianMixture> mixture,
                                           std::shared_ptr<const LinearProcess> process)
    : mixture_(std::move(mixture)), process_(std::move(process)) {}

at::Tensor GaussianMixtureScore::score(const at::Tensor& x, const at::Tensor& t) const {
  return mixture_->evaluate(x, process_->alpha(t), process_->sigma(t)).score;
}

at::Tensor GaussianMixtureScore::log_prob(const at::Tensor& x, const at::Tensor& t) const {
  return mixture_->evaluate(x, process_->alpha(t), process_->sigma(t)).log_prob;
}

std::pair<at::Tensor, at::Tensor> GaussianMixtureScore::score_and_divergence(const at::Tensor& x,
                                                                             const at::Tensor& t) const {
  auto e = mixture_->evaluate(x, process_->alpha(t), process_->sigma(t), true);
  return {e.score, e.laplacian};
}

at::Tensor GaussianMixtureScore::laplacian_log_prob(const at::Tensor& x, const at::Tensor& t) const {
  return mixture_->evaluate(x, process_->alpha(t), process_->sigma(t), true).laplacian;
}

}  // namespace sdeflow

namespace sdeflow {

MixtureComparison compare_to_mixture(const at::Tensor& samples, const GaussianMixture& mixture) {
  require_state(samples, mixture.dim(), "compare_to_mixture: samples");
  const auto x = samples.to(at::kCPU, at::kDouble);
  const auto n = static_cast<double>(x.size(0));
  MixtureComparison result;
  result.sample_mean = x.mean(0);
  const auto centred = x - result.sample_mean;
  result.sample_covariance = at::matmul(centred.transpose(0, 1), centred) / std::max(n - 1.0, 1.0);
  const auto ones = at::ones({x.size(0)}, x.options());
  const auto evaluation = mixture.evaluate(x, ones, at::zeros_like(ones));
  const auto assigned = evaluation.responsibilities.argmax(1);
  result.component_fraction =
      at::bincount(assigned, {}, mixture.components()).to(at::kDouble) / n;
  const auto w = mixture.weights();
  result.component_fraction_stderr = at::sqrt(w * (1.0 - w) / n);
  result.mean_log_likelihood = evaluation.log_prob.mean().item<double>();
  result.mean_log_likelihood_stderr = (evaluation.log_prob.std().item<double>()) / std::sqrt(n);
  result.max_abs_mean_error = (result.sample_mean - mixture.mean()).abs().max().item<double>();
  result.max_abs_covariance_error = (result.sample_covariance - mixture.covariance()).abs().max().item<double>();
  return result;
}

}  // namespace sdeflow

namespace sdeflow {

namespace {

// G G^T as an [B, n, n] float64 matrix.
at::Tensor squared_diffusion_matrix(const Diffusion& g, int64_t batch, int64_t n) {
  const auto v = g.value.to(at::kCPU, at::kDouble);
  switch (g.kind) {
    case Diffusion::Kind::scalar:
      return v.reshape({-1, 1, 1}).pow(2) * at::eye(n, v.options()).unsqueeze(0).expand({batch, n, n});
    case Diffusion::Kind::diagonal:
      return at::diag_embed(v.pow(2).expand({batch, n}));
    case Diffusion::Kind::full:
      return at::matmul(v, v.transpose(-1, -2)).expand({batch, n, n});
    case Diffusion::Kind::partial:
      return at::diag_embed(at::constant_pad_nd(v.pow(2), {g.offset, n - g.offset - v.size(-1)}).expand({batch, n}));
  }
  throw Error("squared_diffusion_matrix: unknown kind");
}

}  // namespace

MatrixMixtureScore::MatrixMixtureScore(std::shared_ptr<const GaussianMixture> mixture,
                                       std::shared_ptr<const MatrixLinearProcess> process)
    : mixture_(std::move(mixture)), process_(std::move(process)) {
  if (!mixture_ || !process_) throw InputError("MatrixMixtureScore: no mixture or process");
  const int64_t d = mixture_->dim();
  state_dim_ = process_->state_dim(d);
  // The process checks the state's shape (FP: its matrices are d x d).
  (void)process_->data_part(at::zeros({1, state_dim_}, at::kDouble));
  (void)process_->drift(at::zeros({1, state_dim_}, at::kDouble), at::zeros({1}, at::kDouble));
  block_size_ = state_dim_ / process_->blocks();
  const int64_t k = mixture_->components();
  state_means_ = at::zeros({k, state_dim_}, at::kDouble);
  state_means_.narrow(1, 0, d).copy_(mixture_->means());
  state_covariances_ = at::zeros({k, state_dim_, state_dim_}, at::kDouble);
  state_covariances_.narrow(1, 0, d).narrow(2, 0, d).copy_(mixture_->covariances());
  for (int64_t i = d; i < state_dim_; ++i) state_covariances_.select(1, i).select(1, i).fill_(process_->hidden_variance());
}

std::pair<at::Tensor, at::Tensor> MatrixMixtureScore::components(const at::Tensor& t) const {
  const auto E = process_->expand_blocks(process_->transition_matrix(t), block_size_);          // [B, n, n]
  const auto S = process_->expand_blocks(process_->stationary_covariance(), block_size_);      // [n, n]
  const auto means = at::matmul(state_means_.unsqueeze(0), E.transpose(-1, -2));               // [B, K, n]
  const auto Eb = E.unsqueeze(1);
  auto covariances = S + at::matmul(at::matmul(Eb, state_covariances_ - S), Eb.transpose(-1, -2));
  covariances = 0.5 * (covariances + covariances.transpose(-1, -2));
  return {means, covariances};
}

MatrixMixtureScore::Evaluation MatrixMixtureScore::evaluate(const at::Tensor& x, const at::Tensor& t,
                                                            const at::Tensor& weight) const {
  require_state(x, state_dim_, "mixture score: x");
  const auto xd = x.to(at::kCPU, at::kDouble);
  auto td = t.to(at::kCPU, at::kDouble).reshape({-1});
  if (td.size(0) == 1 && xd.size(0) != 1) td = td.expand({xd.size(0)});
  // The components depend on t only: on a fixed grid every row shares one time, so factor once and broadcast.
  const bool shared_time = td.size(0) > 1 && (td == td[0]).all().item<bool>();
  auto [means, covariances] = components(shared_time ? td.narrow(0, 0, 1) : td);
  // Explicit inverses through the Cholesky factor (n is small here; float64): batched matmuls instead of one
  // LAPACK call per row and component, and factored once when the rows share their time.
  const auto L = at::linalg_cholesky(covariances);                                  // [B or 1, K, n, n]
  const auto eye = at::eye(state_dim_, at::kDouble).expand_as(L);
  const auto L_inv = at::linalg_solve_triangular(L, eye, /*upper=*/false);
  const auto C_inv = at::matmul(L_inv.transpose(-1, -2), L_inv);
  const auto logdet = 2.0 * at::log(at::diagonal(L, 0, -2, -1)).sum(-1);             // [B or 1, K]
  if (shared_time) means = means.expand({xd.size(0), means.size(1), means.size(2)});
  const auto diff = xd.unsqueeze(1) - means;                                        // [B, K, n]
  // M [B or 1, K, n, n] applied to diff row by row: one [B, n] x [n, n] product per component when shared.
  auto apply = [&](const at::Tensor& M, const at::Tensor& v) {
    if (shared_time) return at::einsum("kij,bkj->bki", {M[0], v});
    return at::matmul(M, v.unsqueeze(-1)).squeeze(-1);
  };
  const auto y = apply(L_inv, diff);
  const auto mahalanobis = y.pow(2).sum(-1);                                        // [B, K]
  const double n = static_cast<double>(state_dim_);
  const auto log_components = at::log(mixture_->weights()).unsqueeze(0) - 0.5 * mahalanobis - 0.5 * logdet -
                              0.5 * n * 1.8378770664093453;
  Evaluation result;
  result.log_prob = at::logsumexp(log_components, 1);
  const auto r = at::softmax(log_components, 1);                                    // [B, K]
  const auto g = -apply(C_inv, diff);                                               // [B, K, n]
  const auto score = (r.unsqueeze(-1) * g).sum(1);
  result.score = score;
  if (weight.defined()) {
    const auto W = weight.to(at::kCPU, at::kDouble);                                // [B, n, n], symmetric
    const auto Wg = at::matmul(W.unsqueeze(1), g.unsqueeze(-1)).squeeze(-1);        // [B, K, n]
    const auto gWg = (Wg * g).sum(-1);                                              // [B, K]
    const auto trace = (C_inv * W.unsqueeze(1)).sum({-2, -1});                      // tr(C^{-1} W), [B, K]
    const auto sWs = (at::matmul(W, score.unsqueeze(-1)).squeeze(-1) * score).sum(-1);
    result.weighted_divergence = (r * (gWg - trace)).sum(1) - sWs;
    result.weighted_divergence = result.weighted_divergence.to(x.device(), x.scalar_type());
  }
  result.log_prob = result.log_prob.to(x.device(), x.scalar_type());
  result.score = result.score.to(x.device(), x.scalar_type());
  return result;
}

at::Tensor MatrixMixtureScore::score(const at::Tensor& x, const at::Tensor& t) const {
  return evaluate(x, t, at::Tensor()).score;
}

std::pair<at::Tensor, at::Tensor> MatrixMixtureScore::score_and_divergence(const at::Tensor& x,
                                                                           const at::Tensor& t) const {
  const auto eye = at::eye(state_dim_, at::kDouble).unsqueeze(0).expand({x.size(0), state_dim_, state_dim_});
  auto e = evaluate(x, t, eye);
  return {e.score, e.weighted_divergence};
}

std::pair<at::Tensor, at::Tensor> MatrixMixtureScore::score_and_weighted_divergence(const at::Tensor& x,
                                                                                    const at::Tensor& t,
                                                                                    const Diffusion& g) const {
  auto e = evaluate(x, t, squared_diffusion_matrix(g, x.size(0), state_dim_));
  return {e.score, e.weighted_divergence};
}

std::shared_ptr<ScoreModel> make_mixture_score(std::shared_ptr<const GaussianMixture> mixture,
                                               std::shared_ptr<const Process> process) {
  if (auto linear = std::dynamic_pointer_cast<const LinearProcess>(process)) {
    return std::make_shared<GaussianMixtureScore>(std::move(mixture), std::move(linear));
  }
  if (auto matrix = std::dynamic_pointer_cast<const MatrixLinearProcess>(process)) {
    return std::make_shared<MatrixMixtureScore>(std::move(mixture), std::move(matrix));
  }
  throw InputError("the exact mixture score needs a process with a Gaussian transition; process " +
                   (process ? process->name() : std::string("(none)")) + " has none in closed form");
}

at::Tensor MatrixMixtureScore::marginal_log_prob(const at::Tensor& x, const at::Tensor& t) const {
  return evaluate(x, t, at::Tensor()).log_prob;
}

}  // namespace sdeflow
