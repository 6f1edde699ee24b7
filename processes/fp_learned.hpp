#pragma once
// Trainable linear FP-Diffusion (seeds-fp.md section 3; docs/fp_diffusion.md): the forward process
//   dx = -beta'(t) (1/2 D + omega) x dt + sqrt(beta'(t) D) dW,   U = matrix_exp(K - K^T) (K strictly upper),
//   FP-Noise: D = U diag(exp theta) U^T, omega = 0;   FP-Drift: D = I, omega = U blockdiag(l_k J) U^T,
// with theta, K, l learned parameters (float64 leaves). Both have the stationary law N(0, I) and closed forms in
// U's basis (lambda = exp theta, B = B(t)):
//   FP-Noise: E_t = U diag(exp(-lambda B / 2)) U^T, P_t = U diag(1 - exp(-lambda B)) U^T, factor L_t = U diag(sigma);
//   FP-Drift: E_t = exp(-B / 2) U R(B) U^T (R: rotations by -l_k B in U's planes), P_t = (1 - exp(-B)) I.
// The training-time operations (perturb, noise_to_score, denoising_loss, the likelihood-bound terms) are computed
// from the parameters, differentiably, as [B, n] products with U: no [B, n, n] batch is formed. Everything else
// (sampling, the NLL, the exact mixture) goes through the constant-matrix class with rinv = D and omega derived from
// the current parameters (refresh()).
#include <memory>
#include <string>

#include "processes/matrix_linear.hpp"

namespace sdeflow {

class LearnedFpProcess final : public MatrixLinearProcess {
 public:
  enum class Variant { noise, drift };
  // n: the data dimension. Parameters start at zero (D = I, omega = 0: VP with beta_min, beta_max) unless given.
  LearnedFpProcess(Variant variant, int64_t n, double beta_min, double beta_max, TimeRange range);
  // From stored raw parameters: noise {theta [n], K [n, n]}, drift {K [n, n], l [n / 2]}; InputError naming a bad one.
  LearnedFpProcess(Variant variant, const std::map<std::string, at::Tensor>& raw, double beta_min, double beta_max,
                   TimeRange range);

  std::string name() const override { return variant_ == Variant::noise ? "fp-noise" : "fp-drift"; }
  Variant variant() const { return variant_; }
  // The raw parameters and the derived rinv and omega (float64, for the model file).
  std::map<std::string, at::Tensor> parameter_tensors() const override;
  std::vector<std::pair<std::string, at::Tensor>> learned_parameters() const override;
  // Re-derives the constant matrices (drift, diffusion, transitions, ...) from the current parameters.
  void refresh();
  void sync_learned() override { refresh(); }
  // false: the training-time operations use detached parameters (the second stage of `mix`, or `fixed`).
  // Also caches U and lambda from the current parameters (with their graph when trainable), once per training step;
  // the cache is also refreshed by itself when the parameters change in place or a graph is needed.
  void set_trainable(bool trainable) override;
  bool has_likelihood_bound() const override { return true; }

  // U (orthogonal), D and omega from the current parameters ([n, n] float64, differentiable when trainable).
  at::Tensor rotation() const;
  at::Tensor metric() const;
  at::Tensor symplectic() const;

  // Differentiable kernel operations (seeds-fp.md section 5), the state being the data (no hidden part).
  at::Tensor perturb(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& z) const override;
  at::Tensor noise_to_score(const at::Tensor& eps, const at::Tensor& t) const override;
  at::Tensor denoising_loss(const at::Tensor& eps, const at::Tensor& z, const at::Tensor& t,
                            bool likelihood_weighting) const override;
  at::Tensor weight_scale(const at::Tensor& t) const override;
  // The likelihood bound's terms without the score: E[-log N(X_T; 0, I) | x_0] per row ([B]), and at time t
  // -1/2 tr W_t - div f = -1/2 beta' tr(D P_t^{-1}) + 1/2 beta' tr D ([B]; seeds-fp.md section 5).
  // The probability flow's parts from the current parameters, differentiably (the regulariser trains through them):
  // f = -beta' (1/2 D + omega) x and G G^T v = beta' D v, as [B, n] products with [n, n] matrices.
  at::Tensor flow_drift(const at::Tensor& x, const at::Tensor& t) const override;
  at::Tensor diffusion_squared(const at::Tensor& x, const at::Tensor& t, const at::Tensor& v) const override;
  at::Tensor prior_cross_entropy(const at::Tensor& x0) const override;
  at::Tensor bound_offset(const at::Tensor& t) const override;

 private:
  at::Tensor param(const at::Tensor& p) const { return trainable_ ? p : p.detach(); }
  // The kernel in U's basis at times t [B]: mean scale a [B, n] (noise) or the rotation angles and scale (drift),
  // and sigma [B, n].
  at::Tensor to_basis(const at::Tensor& x, const at::Tensor& U) const { return at::matmul(x, U); }
  at::Tensor rotate_pairs(const at::Tensor& y, const at::Tensor& angle) const;   // y [B, n], angle [B, n/2]
  at::Tensor lambdas() const;                                                    // [n]
  at::Tensor integrated(const at::Tensor& t) const;                              // B(t), [B] float64
  at::Tensor beta_prime(const at::Tensor& t) const;                              // beta'(t), [B] float64

  Variant variant_;
  int64_t n_;
  double beta_min_, beta_max_;
  TimeRange range_;
  bool trainable_ = true;
  at::Tensor theta_, k_, l_;   // leaves (FP-Noise: theta, K; FP-Drift: K, l)
  // U and lambda of the current parameters (recomputed when the parameters change in place or a graph is needed).
  void recompute_cache() const;
  void ensure_cache() const;
  uint64_t parameter_version() const;
  mutable at::Tensor cached_u_, cached_lambda_;
  mutable uint64_t cached_version_ = 0;
};

std::string to_string(LearnedFpProcess::Variant variant);

}  // namespace sdeflow
