// Constant-matrix linear SDEs: FP-Diffusion (constant R^{-1}, omega) and critically-damped Langevin
// (processes/matrix_linear.hpp; derivations in docs/processes.md, "Matrix-linear processes").
#include "processes/matrix_linear.hpp"

#include <cmath>

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

namespace {

constexpr double kLog2Pi = 1.8378770664093453;
const auto kF64 = at::TensorOptions().dtype(at::kDouble);

void require(bool condition, const std::string& message) {
  if (!condition) throw InputError(message);
}

double max_abs(const at::Tensor& x) { return x.numel() == 0 ? 0.0 : x.abs().max().item<double>(); }

void check_range(const TimeRange& range, const std::string& process) {
  require(std::isfinite(range.eps) && std::isfinite(range.T), "process " + process + ": eps and T must be finite");
  require(range.eps >= 0.0 && range.T > range.eps,
          "process " + process + ": need 0 <= eps < T, got eps = " + std::to_string(range.eps) +
              ", T = " + std::to_string(range.T));
}

at::Tensor square_matrix(const at::Tensor& m, const std::string& what) {
  require(m.defined() && m.dim() == 2 && m.size(0) == m.size(1) && m.size(0) >= 1,
          what + ": expected a square matrix [n, n], got shape " + (m.defined() ? shape_text(m.sizes()) : "none"));
  auto result = m.to(at::kCPU, at::kDouble).contiguous();
  require(at::isfinite(result).all().item<bool>(), what + ": contains NaN or Inf");
  return result;
}

}  // namespace

MatrixLinearProcess::MatrixLinearProcess(Spec spec) : spec_(std::move(spec)) { build(); }

void MatrixLinearProcess::replace_spec(Spec spec) {
  spec_ = std::move(spec);
  build();
}

void MatrixLinearProcess::build() {
  const auto& name = spec_.name;
  spec_.drift = square_matrix(spec_.drift, "process " + name + ": drift matrix");
  const int64_t k = spec_.drift.size(0);
  spec_.noise = square_matrix(spec_.noise, "process " + name + ": noise matrix");
  spec_.stationary = square_matrix(spec_.stationary, "process " + name + ": stationary covariance");
  require(spec_.noise.size(0) == k && spec_.stationary.size(0) == k, "process " + name + ": matrices of different sizes");
  check_range(spec_.range, name);
  require(std::isfinite(spec_.beta_min) && std::isfinite(spec_.beta_max) && spec_.beta_min >= 0.0 &&
              spec_.beta_max > 0.0 && spec_.beta_max >= spec_.beta_min,
          "process " + name + ": need 0 <= beta_min <= beta_max and beta_max > 0");
  require(spec_.data_blocks >= 1 && spec_.data_blocks <= k, "process " + name + ": data_blocks out of range");
  require(spec_.data_blocks == k || (std::isfinite(spec_.hidden_variance) && spec_.hidden_variance > 0.0),
          "process " + name + ": the hidden coordinates need a positive initial variance");
  // Q symmetric PSD: a Cholesky factor when it is positive-definite, else it must be diagonal (CLD).
  const auto q = spec_.noise;
  diagonal_noise_ = max_abs(q - at::diag(at::diagonal(q))) == 0.0;
  const auto [q_factor, q_info] = at::linalg_cholesky_ex(q);
  full_rank_noise_ = q_info.item<int64_t>() == 0;
  if (diagonal_noise_) {
    require((at::diagonal(q) >= 0.0).all().item<bool>(), "process " + name + ": noise matrix has a negative variance");
    noise_factor_ = at::diag(at::sqrt(at::diagonal(q)));
  } else {
    require(full_rank_noise_, "process " + name + ": a singular noise matrix must be diagonal");
    noise_factor_ = q_factor;
  }
  const auto [s_factor, s_info] = at::linalg_cholesky_ex(spec_.stationary);
  require(s_info.item<int64_t>() == 0, "process " + name + ": stationary covariance is not positive-definite");
  stationary_factor_ = s_factor;
  stationary_logdet_ = 2.0 * at::log(at::diagonal(s_factor)).sum().item<double>();
  stationary_inverse_ = at::cholesky_inverse(s_factor);
  initial_covariance_ = at::zeros({k, k}, kF64);
  for (int64_t i = spec_.data_blocks; i < k; ++i) initial_covariance_[i][i] = spec_.hidden_variance;
  score_blocks_ = full_rank_noise_ ? at::ones({k}, kF64) : (at::diagonal(q) > 0.0).to(at::kDouble);
  first_noise_block_ = 0;
  if (!full_rank_noise_) {
    // Noise on a trailing run of blocks (CLD's velocity): a Brownian motion of those blocks only.
    const auto acts = at::diagonal(q) > 0.0;
    int64_t first = k;
    while (first > 0 && acts[first - 1].item<bool>()) --first;
    if (first < k && !acts.narrow(0, 0, first).any().item<bool>()) first_noise_block_ = first;
  }
  // S must be stationary: A S + S A^T + Q = 0 (else the prior is not the process's limit law).
  const auto lyapunov = at::matmul(spec_.drift, spec_.stationary) +
                        at::matmul(spec_.stationary, spec_.drift.transpose(0, 1)) + spec_.noise;
  require(max_abs(lyapunov) <= 1e-10 * (1.0 + max_abs(spec_.noise)),
          "process " + name + ": S is not stationary (|A S + S A^T + Q| = " + std::to_string(max_abs(lyapunov)) + ")");
}

int64_t MatrixLinearProcess::block_size(const at::Tensor& x) const {
  const int64_t k = blocks();
  if (x.dim() != 2 || x.size(1) % k != 0 || (spec_.fixed_block_size && x.size(1) != k)) {
    throw InputError("process " + spec_.name + ": expected a state [B, " +
                     (spec_.fixed_block_size ? std::to_string(k) : std::to_string(k) + " m") + "], got " +
                     shape_text(x.sizes()));
  }
  return x.size(1) / k;
}

at::Tensor MatrixLinearProcess::rate(const at::Tensor& t) const {
  return spec_.beta_min + t * (spec_.beta_max - spec_.beta_min);
}

at::Tensor MatrixLinearProcess::integrated_rate(const at::Tensor& t) const {
  return spec_.beta_min * t + 0.5 * (spec_.beta_max - spec_.beta_min) * t * t;
}

namespace {

// expm(A b) for every entry of b [B]; once when all entries are equal (a fixed grid's rows share their time).
at::Tensor exponentials(const at::Tensor& A, const at::Tensor& b) {
  if (b.size(0) > 1 && (b == b[0]).all().item<bool>()) {
    return at::linalg_matrix_exp(A * b[0].item<double>()).unsqueeze(0).expand({b.size(0), A.size(0), A.size(1)});
  }
  return at::linalg_matrix_exp(A.unsqueeze(0) * b.reshape({-1, 1, 1}));
}

}  // namespace

at::Tensor MatrixLinearProcess::transition_matrix(const at::Tensor& t) const {
  return exponentials(spec_.drift, integrated_rate(t.to(at::kCPU, at::kDouble).reshape({-1})));
}

at::Tensor MatrixLinearProcess::transition_matrix(const at::Tensor& t, const at::Tensor& s) const {
  const auto tt = t.to(at::kCPU, at::kDouble).reshape({-1});
  const auto ss = s.to(at::kCPU, at::kDouble).reshape({-1});
  return exponentials(spec_.drift, integrated_rate(tt) - integrated_rate(ss));
}

at::Tensor MatrixLinearProcess::transition_covariance(const at::Tensor& E, const at::Tensor& initial) const {
  const auto s = spec_.stationary;
  auto p = s - at::matmul(at::matmul(E, s - initial), E.transpose(-1, -2));
  return 0.5 * (p + p.transpose(-1, -2));
}

at::Tensor MatrixLinearProcess::apply_blocks(const at::Tensor& M, const at::Tensor& x) const {
  const int64_t m = block_size(x);
  const int64_t k = blocks();
  const auto xv = x.reshape({x.size(0), k, m});
  const auto mm = M.to(x.device(), x.scalar_type());
  return at::matmul(mm, xv).reshape({x.size(0), k * m});
}

at::Tensor MatrixLinearProcess::expand_blocks(const at::Tensor& M, int64_t m) const {
  if (m == 1) return M;
  const int64_t k = M.size(-1);
  const auto eye = at::eye(m, M.options());
  auto shape = M.sizes().vec();
  shape.pop_back();
  shape.pop_back();
  const auto big = M.unsqueeze(-1).unsqueeze(-3) * eye.unsqueeze(-2).unsqueeze(0);   // [.., k, m, k, m]
  shape.push_back(k * m);
  shape.push_back(k * m);
  return big.reshape(shape);
}

at::Tensor MatrixLinearProcess::drift(const at::Tensor& x, const at::Tensor& t) const {
  return per_sample(rate(t)) * apply_blocks(spec_.drift, x);
}

int64_t MatrixLinearProcess::noise_dim(int64_t state_dim) const {
  return state_dim - state_dim / blocks() * first_noise_block_;
}

Diffusion MatrixLinearProcess::diffusion(const at::Tensor& x, const at::Tensor& t) const {
  const int64_t m = block_size(x);
  const auto scale = at::sqrt(rate(t)).reshape({-1, 1});
  if (first_noise_block_ > 0) {
    const int64_t k = blocks(), first = first_noise_block_;
    const auto g = at::diagonal(noise_factor_).narrow(0, first, k - first).repeat_interleave(m).to(x.device(),
                                                                                                    x.scalar_type());
    return Diffusion::partial((scale * g.unsqueeze(0)).expand({x.size(0), (k - first) * m}), first * m, k * m);
  }
  if (diagonal_noise_) {
    const auto g = at::diagonal(noise_factor_).repeat_interleave(m).to(x.device(), x.scalar_type());
    return Diffusion::diagonal((scale * g.unsqueeze(0)).expand({x.size(0), x.size(1)}));
  }
  const auto c = expand_blocks(noise_factor_, m).to(x.device(), x.scalar_type());
  return Diffusion::full((scale.unsqueeze(-1) * c.unsqueeze(0)).expand({x.size(0), x.size(1), x.size(1)}));
}

std::optional<at::Tensor> MatrixLinearProcess::drift_divergence(const at::Tensor& x, const at::Tensor& t) const {
  const int64_t m = block_size(x);
  const double trace = at::trace(spec_.drift).item<double>() * static_cast<double>(m);
  return (trace * rate(t)).expand({x.size(0)});
}

std::optional<Gaussian> MatrixLinearProcess::marginal(const at::Tensor& x0, const at::Tensor& t) const {
  const int64_t m = block_size(x0);
  const auto E = transition_matrix(t);
  const auto P = transition_covariance(E, at::zeros_like(spec_.stationary));
  const auto L = at::linalg_cholesky(P);
  return Gaussian{apply_blocks(E, x0), expand_blocks(L, m).to(x0.device(), x0.scalar_type())};
}

std::pair<at::Tensor, Diffusion> MatrixLinearProcess::discretize(const at::Tensor& x, const at::Tensor& t,
                                                                const at::Tensor& dt) const {
  const int64_t m = block_size(x);
  const auto E = transition_matrix(t, t - dt);
  const auto eye = at::eye(blocks(), kF64).unsqueeze(0);
  const auto f_disc = apply_blocks(E - eye, x);
  if (full_rank_noise_) {
    const auto P = transition_covariance(E, at::zeros_like(spec_.stationary));
    const auto L = at::linalg_cholesky(P);
    return {f_disc, Diffusion::full(expand_blocks(L, m).to(x.device(), x.scalar_type()))};
  }
  auto g = diffusion(x, t);
  g.value = g.value * at::sqrt(per_sample(dt).abs());
  return {f_disc, g};
}

at::Tensor MatrixLinearProcess::prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                                             at::Generator& generator) const {
  const auto z = at::randn({n, dim}, generator, options);
  return apply_blocks(stationary_factor_, z);
}

at::Tensor MatrixLinearProcess::prior_log_prob(const at::Tensor& xT) const {
  const int64_t m = block_size(xT);
  const auto y = apply_blocks(stationary_inverse_, xT);
  const double norm = 0.5 * static_cast<double>(m) * (static_cast<double>(blocks()) * kLog2Pi + stationary_logdet_);
  return -0.5 * (xT * y).sum(1) - norm;
}

int64_t MatrixLinearProcess::state_dim(int64_t data_dim) const { return data_dim * blocks() / spec_.data_blocks; }

int64_t MatrixLinearProcess::data_dim(int64_t state_dim) const { return state_dim * spec_.data_blocks / blocks(); }

at::Tensor MatrixLinearProcess::data_part(const at::Tensor& state) const {
  if (spec_.data_blocks == blocks()) return state;
  (void)block_size(state);
  return state.narrow(1, 0, data_dim(state.size(1)));
}

at::Tensor MatrixLinearProcess::augment(const at::Tensor& data, at::Generator& generator) const {
  if (spec_.data_blocks == blocks()) return data;
  const int64_t hidden = state_dim(data.size(1)) - data.size(1);
  const auto v = at::randn({data.size(0), hidden}, generator, data.options()) * std::sqrt(spec_.hidden_variance);
  return at::cat({data, v}, 1);
}

double MatrixLinearProcess::augmented_entropy(int64_t data_dim) const {
  const int64_t hidden = state_dim(data_dim) - data_dim;
  if (hidden == 0) return 0.0;
  return 0.5 * static_cast<double>(hidden) * (kLog2Pi + 1.0 + std::log(spec_.hidden_variance));
}

std::pair<at::Tensor, at::Tensor> MatrixLinearProcess::kernel(const at::Tensor& t) const {
  const auto E = transition_matrix(t);
  return {E, at::linalg_cholesky(transition_covariance(E, initial_covariance_))};
}

at::Tensor MatrixLinearProcess::perturb(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& z) const {
  const int64_t n = state_dim(x0.size(1));
  require_state(z, n, "process " + spec_.name + ": noise");
  const auto state = n == x0.size(1) ? x0 : at::cat({x0, at::zeros({x0.size(0), n - x0.size(1)}, x0.options())}, 1);
  const auto [E, L] = kernel(t);
  return apply_blocks(E, state) + apply_blocks(L, z);
}

namespace {
// L^{-1} for lower-triangular L [B, k, k].
at::Tensor lower_inverse(const at::Tensor& L) {
  return at::linalg_solve_triangular(L, at::eye(L.size(-1), L.options()).expand_as(L), /*upper=*/false);
}
}  // namespace

at::Tensor MatrixLinearProcess::noise_to_score(const at::Tensor& eps, const at::Tensor& t) const {
  const int64_t m = block_size(eps);
  const auto L_inv = lower_inverse(kernel(t).second);
  const auto mask = score_blocks_.repeat_interleave(m).to(eps.device(), eps.scalar_type());
  return -apply_blocks(L_inv.transpose(-1, -2), eps) * mask;
}

at::Tensor MatrixLinearProcess::denoising_loss(const at::Tensor& eps, const at::Tensor& z, const at::Tensor& t,
                                               bool likelihood_weighting) const {
  const int64_t m = block_size(eps);
  const auto r = z - eps;
  if (!likelihood_weighting) {
    const auto mask = score_blocks_.repeat_interleave(m).to(eps.device(), eps.scalar_type());
    return 0.5 * (r * r * mask).sum(1);
  }
  const auto L_inv = lower_inverse(kernel(t).second);
  const auto rate64 = rate(t.to(at::kCPU, at::kDouble).reshape({-1})).reshape({-1, 1, 1});
  const auto W = rate64 * at::matmul(at::matmul(L_inv, spec_.noise), L_inv.transpose(-1, -2));
  return 0.5 * (r * apply_blocks(W, r)).sum(1);
}

at::Tensor MatrixLinearProcess::weight_scale(const at::Tensor& t) const {
  const auto L_inv = lower_inverse(kernel(t).second);
  const auto rate64 = rate(t.to(at::kCPU, at::kDouble).reshape({-1}));
  const auto trace = at::matmul(at::matmul(L_inv, spec_.noise), L_inv.transpose(-1, -2)).diagonal(0, -2, -1).sum(-1);
  return rate64 * trace / static_cast<double>(blocks());
}

std::shared_ptr<MatrixLinearProcess> make_fp_process(const at::Tensor& rinv_in, const at::Tensor& omega_in,
                                                     double beta_min, double beta_max, TimeRange range) {
  const auto rinv = square_matrix(rinv_in, "rinv");
  const auto omega = square_matrix(omega_in, "omega");
  const int64_t n = rinv.size(0);
  require(omega.size(0) == n, "omega: shape " + shape_text(omega.sizes()) + " does not match rinv's " +
                                  shape_text(rinv.sizes()));
  const double scale = std::max(1.0, max_abs(rinv));
  const double asym = max_abs(rinv - rinv.transpose(0, 1));
  require(asym <= 1e-12 * scale, "rinv: not symmetric (max |R - R^T| = " + std::to_string(asym) + ")");
  const auto [factor, info] = at::linalg_cholesky_ex(rinv);
  (void)factor;
  require(info.item<int64_t>() == 0, "rinv: not positive-definite");
  const double sym = max_abs(omega + omega.transpose(0, 1));
  require(sym <= 1e-12 * std::max(1.0, max_abs(omega)),
          "omega: not antisymmetric (max |omega + omega^T| = " + std::to_string(sym) + ")");
  auto spec = fp_spec("fp", rinv, omega, beta_min, beta_max, range);
  spec.parameter_tensors = {{"rinv", rinv}, {"omega", omega}};
  return std::make_shared<MatrixLinearProcess>(std::move(spec));
}

MatrixLinearProcess::Spec fp_spec(const std::string& name, const at::Tensor& rinv, const at::Tensor& omega,
                                  double beta_min, double beta_max, TimeRange range) {
  const int64_t n = rinv.size(0);
  MatrixLinearProcess::Spec spec;
  spec.name = name;
  spec.drift = -0.5 * rinv - omega;
  spec.noise = rinv;
  spec.stationary = at::eye(n, kF64);
  spec.beta_min = beta_min;
  spec.beta_max = beta_max;
  spec.range = range;
  spec.data_blocks = n;
  spec.fixed_block_size = true;
  spec.parameters = {{"beta_min", beta_min}, {"beta_max", beta_max}, {"eps", range.eps}, {"T", range.T}};
  return spec;
}

std::shared_ptr<MatrixLinearProcess> make_cld_process(double M, double Gamma, double gamma, double beta,
                                                      TimeRange range) {
  for (const auto& [key, value] : {std::pair{"M", M}, {"Gamma", Gamma}, {"gamma", gamma}, {"beta", beta}}) {
    require(std::isfinite(value) && value > 0.0, std::string("process cld: ") + key + " must be positive and finite");
  }
  MatrixLinearProcess::Spec spec;
  spec.name = "cld";
  spec.drift = at::tensor({0.0, 1.0 / M, -1.0, -Gamma / M}, kF64).reshape({2, 2});
  spec.noise = at::tensor({0.0, 0.0, 0.0, 2.0 * Gamma}, kF64).reshape({2, 2});
  spec.stationary = at::tensor({1.0, 0.0, 0.0, M}, kF64).reshape({2, 2});
  spec.beta_min = spec.beta_max = beta;
  spec.range = range;
  spec.data_blocks = 1;
  spec.hidden_variance = gamma * M;
  spec.parameters = {{"M", M}, {"Gamma", Gamma}, {"gamma", gamma}, {"beta", beta}, {"eps", range.eps}, {"T", range.T}};
  return std::make_shared<MatrixLinearProcess>(std::move(spec));
}

std::pair<at::Tensor, at::Tensor> random_fp_matrices(int64_t n, uint64_t seed, double log_eigen_spread,
                                                     double rotation_scale) {
  auto generator = make_generator(at::kCPU, seed);
  const auto k = at::triu(at::randn({n, n}, generator, kF64), 1);
  const auto u = at::linalg_matrix_exp(k - k.transpose(0, 1));
  const auto theta = log_eigen_spread * at::randn({n}, generator, kF64);
  auto rinv = at::matmul(at::matmul(u, at::diag(at::exp(theta))), u.transpose(0, 1));
  rinv = 0.5 * (rinv + rinv.transpose(0, 1));
  auto blocks = at::zeros({n, n}, kF64);
  const auto l = rotation_scale * at::randn({n / 2}, generator, kF64);
  for (int64_t i = 0; i + 1 < n; i += 2) {
    blocks[i][i + 1] = l[i / 2];
    blocks[i + 1][i] = -l[i / 2];
  }
  auto omega = at::matmul(at::matmul(u, blocks), u.transpose(0, 1));
  omega = 0.5 * (omega - omega.transpose(0, 1));
  return {rinv, omega};
}

}  // namespace sdeflow
