#pragma once
// The exact Gaussian-mixture model: data p_0 = sum_k w_k N(mu_k, Sigma_k) in any dimension. Under a linear
// process the marginal stays a mixture, p_t = sum_k w_k N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I), so its
// score, log-density and Laplacian are exact (docs/processes.md, "Exact Gaussian-mixture scores").
#include <ATen/ATen.h>

#include <memory>

#include "processes/score_model.hpp"

namespace sdeflow {

class LinearProcess;
class MatrixLinearProcess;
class Process;

class GaussianMixture {
 public:
  // weights [K], means [K, D], covariances [K, D, D]; any floating dtype, stored as CPU float64.
  // Throws InputError for wrong shapes, NaN/Inf, negative or non-normalised weights (|sum - 1| > 1e-6),
  // and covariances that are not symmetric positive-definite, naming the component.
  GaussianMixture(const at::Tensor& weights, const at::Tensor& means, const at::Tensor& covariances);

  int64_t components() const { return weights_.size(0); }
  int64_t dim() const { return means_.size(1); }
  const at::Tensor& weights() const { return weights_; }
  const at::Tensor& means() const { return means_; }
  const at::Tensor& covariances() const { return covariances_; }

  at::Tensor mean() const;         // [D]
  at::Tensor covariance() const;   // [D, D]

  // Exact quantities of the marginal with coefficients alpha, sigma ([B] each) at x [B, D].
  struct Evaluation {
    at::Tensor log_prob;          // [B]
    at::Tensor score;             // [B, D]
    at::Tensor laplacian;         // [B]  (trace of the Hessian of log p)
    at::Tensor responsibilities;  // [B, K]
  };
  Evaluation evaluate(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& sigma,
                      bool with_laplacian = false) const;

  // log p_0(x): the data density.
  at::Tensor log_prob(const at::Tensor& x) const;
  // n samples of p_0 and the component each came from.
  std::pair<at::Tensor, at::Tensor> sample(int64_t n, at::Generator& generator,
                                           const at::TensorOptions& options) const;

 private:
  at::Tensor weights_, means_, covariances_;
  at::Tensor eigenvalues_;   // [K, D]   Sigma_k = U_k diag(lambda_k) U_k^T
  at::Tensor eigenvectors_;  // [K, D, D]
  at::Tensor stacked_vectors_;    // [D, K D]: columns k D .. k D + D - 1 hold U_k, so x U gives every U_k^T x
  at::Tensor projected_means_;    // [K, D] U_k^T mu_k
};

// The mixture's exact score under a linear process: a ScoreModel usable by every solver.
class GaussianMixtureScore : public ScoreModel {
 public:
  GaussianMixtureScore(std::shared_ptr<const GaussianMixture> mixture,
                       std::shared_ptr<const LinearProcess> process);
  at::Tensor score(const at::Tensor& x, const at::Tensor& t) const override;
  int64_t dim() const override { return mixture_->dim(); }
  at::Tensor log_prob(const at::Tensor& x, const at::Tensor& t) const;            // log p_t(x), [B]
  at::Tensor laplacian_log_prob(const at::Tensor& x, const at::Tensor& t) const;  // [B]
  bool has_score_divergence() const override { return true; }
  std::pair<at::Tensor, at::Tensor> score_and_divergence(const at::Tensor& x, const at::Tensor& t) const override;
  bool has_log_prob() const override { return true; }
  at::Tensor marginal_log_prob(const at::Tensor& x, const at::Tensor& t) const override { return log_prob(x, t); }
  const GaussianMixture& mixture() const { return *mixture_; }
  const LinearProcess& process() const { return *process_; }

 private:
  std::shared_ptr<const GaussianMixture> mixture_;
  std::shared_ptr<const LinearProcess> process_;
};

// The mixture's exact score under a constant-matrix process (FP, CLD; seeds-fp.md section 7): component k at
// time t is N((E_t (x) I) mu_k, S (x) I + (E_t (x) I)(Sigma_k - S (x) I)(E_t (x) I)^T), where mu_k and Sigma_k
// are the component in the process's state (CLD: (mu_k, 0) and blockdiag(Sigma_k, gamma M I)). Score,
// log-density and tr(W grad s) for any W in closed form (Cholesky per row and component, float64): meant for
// oracles in modest dimension (the state dimension n costs O(B K n^3)).
class MatrixMixtureScore : public ScoreModel {
 public:
  MatrixMixtureScore(std::shared_ptr<const GaussianMixture> mixture, std::shared_ptr<const MatrixLinearProcess> process);
  at::Tensor score(const at::Tensor& x, const at::Tensor& t) const override;
  int64_t dim() const override { return state_dim_; }
  bool has_score_divergence() const override { return true; }
  // The Laplacian tr(grad s) (W = I).
  std::pair<at::Tensor, at::Tensor> score_and_divergence(const at::Tensor& x, const at::Tensor& t) const override;
  std::pair<at::Tensor, at::Tensor> score_and_weighted_divergence(const at::Tensor& x, const at::Tensor& t,
                                                                  const Diffusion& g) const override;
  bool has_log_prob() const override { return true; }
  at::Tensor marginal_log_prob(const at::Tensor& x, const at::Tensor& t) const override;
  const GaussianMixture& mixture() const { return *mixture_; }
  // The state's components at time t: means [B, K, n], covariances [B, K, n, n] (float64, CPU).
  std::pair<at::Tensor, at::Tensor> components(const at::Tensor& t) const;

  struct Evaluation {
    at::Tensor log_prob, score, weighted_divergence;   // [B], [B, n], [B] (undefined unless a weight was given)
  };
  // weight: G G^T as [B, n, n] (or undefined: no divergence).
  Evaluation evaluate(const at::Tensor& x, const at::Tensor& t, const at::Tensor& weight) const;

 private:
  std::shared_ptr<const GaussianMixture> mixture_;
  std::shared_ptr<const MatrixLinearProcess> process_;
  int64_t state_dim_, block_size_;
  at::Tensor state_means_;         // [K, n]
  at::Tensor state_covariances_;   // [K, n, n]
};

// The mixture's exact score under `process`: GaussianMixtureScore for a scalar process, MatrixMixtureScore for
// a constant-matrix one (InputError for a process without a closed-form Gaussian transition).
std::shared_ptr<ScoreModel> make_mixture_score(std::shared_ptr<const GaussianMixture> mixture,
                                               std::shared_ptr<const Process> process);

}  // namespace sdeflow

namespace sdeflow {

// How well samples reproduce a mixture: moments, component fractions (each sample assigned to its most
// responsible component) with their binomial standard errors, and the mean exact log-likelihood.
struct MixtureComparison {
  at::Tensor sample_mean, sample_covariance;   // [D], [D, D]
  at::Tensor component_fraction;               // [K]
  at::Tensor component_fraction_stderr;        // [K] sqrt(w (1 - w) / n)
  double mean_log_likelihood = 0.0;            // mean of log p_0(samples)
  double mean_log_likelihood_stderr = 0.0;
  double max_abs_mean_error = 0.0, max_abs_covariance_error = 0.0;
};
MixtureComparison compare_to_mixture(const at::Tensor& samples, const GaussianMixture& mixture);

}  // namespace sdeflow
