#pragma once
// Linear forward SDEs with constant matrices (FP-Diffusion with constant R^{-1} and omega, seeds-fp.md
// sections 2 and 7; critically-damped Langevin, section 6):
//
//   dx = beta'(t) (A (x) I_m) x dt + sqrt(beta'(t)) (C (x) I_m) dW,   C C^T = Q,   A S + S A^T + Q = 0,
//
// a k x k block structure acting on k groups of m coordinates (FP: k = D, m = 1; CLD: k = 2 (position,
// velocity), m = d). With B(t) = int_0^t beta' and E_t = expm(A B(t)), the transition from x_0 is Gaussian,
// N((E_t (x) I) x_0, (S - E_t S E_t^T) (x) I), and from x_0 ~ N(mu, Sigma0) the marginal covariance is
// S - E_t (S - Sigma0) E_t^T (not FP-Diffusion's printed I - expm(-B D), exact only when D and omega commute).
// Derivations: docs/processes.md, "Matrix-linear processes". The algebra runs in float64.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "processes/process.hpp"

namespace sdeflow {

class MatrixLinearProcess : public Process {
 public:
  struct Spec {
    std::string name;
    at::Tensor drift;            // A [k, k]
    at::Tensor noise;            // Q [k, k], symmetric positive semi-definite
    at::Tensor stationary;       // S [k, k], symmetric positive-definite, A S + S A^T + Q = 0
    double beta_min = 0.1, beta_max = 20.0;   // beta'(t) = beta_min + t (beta_max - beta_min)
    TimeRange range;
    int64_t data_blocks = 0;     // the first data_blocks blocks are the data; the rest start from hidden_variance
    double hidden_variance = 0.0;   // initial variance of each hidden coordinate (CLD: gamma M)
    bool fixed_block_size = false;  // FP: m = 1 (the state dimension is k); CLD: any m
    std::map<std::string, double> parameters;          // as written to /process (attributes)
    std::map<std::string, at::Tensor> parameter_tensors;   // as written to /process (float64 datasets)
  };
  explicit MatrixLinearProcess(Spec spec);

  std::string name() const override { return spec_.name; }
  std::map<std::string, double> parameters() const override { return spec_.parameters; }
  std::map<std::string, at::Tensor> parameter_tensors() const override { return spec_.parameter_tensors; }

  at::Tensor drift(const at::Tensor& x, const at::Tensor& t) const override;
  Diffusion diffusion(const at::Tensor& x, const at::Tensor& t) const override;
  std::optional<at::Tensor> drift_divergence(const at::Tensor& x, const at::Tensor& t) const override;
  // The transition from a point x_0 (the whole state): N((E_t (x) I) x_0, L L^T), L the Cholesky factor.
  std::optional<Gaussian> marginal(const at::Tensor& x0, const at::Tensor& t) const override;
  // Exact mean map E_{t, t-dt}; with a full-rank Q the exact transition covariance too (FP), otherwise
  // (CLD: no noise on the position) the Euler noise sqrt(beta' dt) C, so the predictor needs the score only
  // where Q acts.
  std::pair<at::Tensor, Diffusion> discretize(const at::Tensor& x, const at::Tensor& t,
                                               const at::Tensor& dt) const override;
  at::Tensor prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                          at::Generator& generator) const override;
  at::Tensor prior_log_prob(const at::Tensor& xT) const override;
  TimeRange time_range() const override { return spec_.range; }

  int64_t state_dim(int64_t data_dim) const override;
  int64_t data_dim(int64_t state_dim) const override;
  at::Tensor data_part(const at::Tensor& state) const override;
  at::Tensor augment(const at::Tensor& data, at::Generator& generator) const override;
  bool score_on_every_coordinate() const override { return full_rank_noise_; }
  // With noise on the last blocks only (CLD: the velocity), the Brownian motion has their dimension.
  int64_t noise_dim(int64_t state_dim) const override;
  int64_t scored_dim(int64_t state_dim) const override { return noise_dim(state_dim); }
  double augmented_entropy(int64_t data_dim) const override;

  bool has_denoising_kernel() const override { return true; }
  at::Tensor perturb(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& z) const override;
  at::Tensor noise_to_score(const at::Tensor& eps, const at::Tensor& t) const override;
  at::Tensor denoising_loss(const at::Tensor& eps, const at::Tensor& z, const at::Tensor& t,
                            bool likelihood_weighting) const override;
  at::Tensor weight_scale(const at::Tensor& t) const override;
  // The denoising kernel at t: E_t and the Cholesky factor L_t of S - E_t (S - Sigma0') E_t^T with Sigma0' = 0 on
  // the data blocks and hidden_variance on the hidden ones ([B, k, k] each, float64 CPU).
  std::pair<at::Tensor, at::Tensor> kernel(const at::Tensor& t) const;

  // The k x k structure, float64 on the CPU.
  int64_t blocks() const { return spec_.drift.size(0); }
  const at::Tensor& drift_matrix() const { return spec_.drift; }
  const at::Tensor& noise_matrix() const { return spec_.noise; }
  const at::Tensor& stationary_covariance() const { return spec_.stationary; }
  int64_t data_blocks() const { return spec_.data_blocks; }
  double hidden_variance() const { return spec_.hidden_variance; }
  at::Tensor rate(const at::Tensor& t) const;              // beta'(t), [B]
  at::Tensor integrated_rate(const at::Tensor& t) const;   // B(t), [B]
  // E_t = expm(A B(t)) and E_{t, s} = expm(A (B(t) - B(s))): [B, k, k] float64 on the CPU.
  at::Tensor transition_matrix(const at::Tensor& t) const;
  at::Tensor transition_matrix(const at::Tensor& t, const at::Tensor& s) const;
  // S - E (S - Sigma0) E^T for E [B, k, k] and Sigma0 [k, k] or [B, k, k].
  at::Tensor transition_covariance(const at::Tensor& E, const at::Tensor& initial) const;
  // (M (x) I_m) x for M [k, k] or [B, k, k] and x [B, k m], in x's dtype and device.
  at::Tensor apply_blocks(const at::Tensor& M, const at::Tensor& x) const;
  // M (x) I_m as an [.., k m, k m] matrix.
  at::Tensor expand_blocks(const at::Tensor& M, int64_t m) const;

 protected:
  // A learned process re-derives its constant matrices from its parameters (validated as at construction).
  void replace_spec(Spec spec);
  const Spec& spec() const { return spec_; }

 private:
  void build();
  int64_t block_size(const at::Tensor& x) const;
  Spec spec_;
  bool full_rank_noise_ = true;
  at::Tensor noise_factor_;        // C [k, k]: Cholesky of Q (full rank) or sqrt of its diagonal
  bool diagonal_noise_ = false;
  int64_t first_noise_block_ = 0;   // singular diagonal Q acting on blocks first_noise_block_ .. k-1 only (else 0)
  at::Tensor stationary_factor_;   // chol(S)
  double stationary_logdet_ = 0.0;
  at::Tensor stationary_inverse_;
  at::Tensor initial_covariance_;   // Sigma0' [k, k]
  at::Tensor score_blocks_;         // [k] 1 where Q acts (the model's score), else 0
};

// FP-Diffusion with constant matrices: A = -1/2 D - omega, Q = D, S = I (D = R^{-1} symmetric positive-definite,
// omega antisymmetric, both [n, n]). InputError naming `what` (e.g. "/process/rinv") for a bad matrix.
std::shared_ptr<MatrixLinearProcess> make_fp_process(const at::Tensor& rinv, const at::Tensor& omega, double beta_min,
                                                     double beta_max, TimeRange range);
// The Spec of an FP process with D = rinv and omega ([n, n] float64, already validated): A = -1/2 D - omega, Q = D,
// S = I, one coordinate per block; no parameter tensors (the caller adds what it stores).
MatrixLinearProcess::Spec fp_spec(const std::string& name, const at::Tensor& rinv, const at::Tensor& omega,
                                  double beta_min, double beta_max, TimeRange range);
// Critically-damped Langevin (Dockhorn et al.): A = [[0, 1/M], [-1, -Gamma/M]], Q = diag(0, 2 Gamma),
// S = diag(1, M), B(t) = beta t, v_0 ~ N(0, gamma M I).
std::shared_ptr<MatrixLinearProcess> make_cld_process(double M = 0.25, double Gamma = 1.0, double gamma = 0.04,
                                                      double beta = 4.0, TimeRange range = {});

// A random SPD rinv and antisymmetric omega through the exponential-map parameterisation of seeds-fp.md
// section 3: U = matrix_exp(K - K^T), rinv = U diag(exp(theta)) U^T, omega = U blockdiag(l_k J) U^T.
std::pair<at::Tensor, at::Tensor> random_fp_matrices(int64_t n, uint64_t seed, double log_eigen_spread = 1.0,
                                                     double rotation_scale = 1.0);

}  // namespace sdeflow
