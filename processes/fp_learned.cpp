// Trainable linear FP-Diffusion (processes/fp_learned.hpp; derivations in docs/fp_diffusion.md).
#include "processes/fp_learned.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

namespace {

constexpr double kLog2Pi = 1.8378770664093453;
const auto kF64 = at::TensorOptions().dtype(at::kDouble);

at::Tensor orthogonal(const at::Tensor& k) {
  const auto upper = at::triu(k, 1);
  return at::linalg_matrix_exp(upper - upper.transpose(0, 1));
}

// blockdiag(l_k J), J = [[0, 1], [-1, 0]], with a 1 x 1 zero block last for odd n.
at::Tensor block_rotation(const at::Tensor& l, int64_t n) {
  auto blocks = at::zeros({n, n}, l.options());
  const int64_t pairs = n / 2;
  if (pairs == 0) return blocks;
  const auto idx = at::arange(pairs, at::TensorOptions().dtype(at::kLong)) * 2;
  blocks = blocks.index_put({idx, idx + 1}, l);
  blocks = blocks.index_put({idx + 1, idx}, -l);
  return blocks;
}

at::Tensor checked(const std::map<std::string, at::Tensor>& raw, const std::string& key, at::IntArrayRef shape,
                   const std::string& process) {
  const auto found = raw.find(key);
  if (found == raw.end()) throw InputError("process " + process + ": missing dataset '" + key + "'");
  const auto& value = found->second;
  if (value.sizes() != shape) {
    throw InputError(key + ": expected shape " + shape_text(shape) + ", got " + shape_text(value.sizes()));
  }
  if (!at::isfinite(value).all().item<bool>()) throw InputError(key + ": contains NaN or Inf");
  return value.to(at::kCPU, at::kDouble).clone();
}

MatrixLinearProcess::Spec make_spec(LearnedFpProcess::Variant variant, const at::Tensor& theta, const at::Tensor& k,
                                    const at::Tensor& l, int64_t n, double beta_min, double beta_max,
                                    TimeRange range) {
  at::NoGradGuard no_grad;
  const auto u = orthogonal(k);
  at::Tensor d, omega;
  if (variant == LearnedFpProcess::Variant::noise) {
    d = at::matmul(at::matmul(u, at::diag(at::exp(theta))), u.transpose(0, 1));
    d = 0.5 * (d + d.transpose(0, 1));
    omega = at::zeros({n, n}, kF64);
  } else {
    d = at::eye(n, kF64);
    omega = at::matmul(at::matmul(u, block_rotation(l, n)), u.transpose(0, 1));
    omega = 0.5 * (omega - omega.transpose(0, 1));
  }
  return fp_spec(to_string(variant), d, omega, beta_min, beta_max, range);
}

}  // namespace

std::string to_string(LearnedFpProcess::Variant variant) {
  return variant == LearnedFpProcess::Variant::noise ? "fp-noise" : "fp-drift";
}

LearnedFpProcess::LearnedFpProcess(Variant variant, int64_t n, double beta_min, double beta_max, TimeRange range)
    : LearnedFpProcess(variant,
                       variant == Variant::noise
                           ? std::map<std::string, at::Tensor>{{"theta", at::zeros({n}, kF64)},
                                                               {"K", at::zeros({n, n}, kF64)}}
                           : std::map<std::string, at::Tensor>{{"K", at::zeros({n, n}, kF64)},
                                                               {"l", at::zeros({n / 2}, kF64)}},
                       beta_min, beta_max, range) {}

LearnedFpProcess::LearnedFpProcess(Variant variant, const std::map<std::string, at::Tensor>& raw, double beta_min,
                                   double beta_max, TimeRange range)
    : MatrixLinearProcess([&] {
        const auto k = raw.count("K") ? raw.at("K") : at::Tensor();
        if (!k.defined() || k.dim() != 2 || k.size(0) != k.size(1) || k.size(0) < 1) {
          throw InputError("K: expected a square matrix [n, n], got shape " +
                           (k.defined() ? shape_text(k.sizes()) : std::string("none")));
        }
        const int64_t n = k.size(0);
        const auto name = to_string(variant);
        const auto kk = checked(raw, "K", {n, n}, name);
        const auto theta = variant == Variant::noise ? checked(raw, "theta", {n}, name) : at::Tensor();
        const auto l = variant == Variant::drift ? checked(raw, "l", {n / 2}, name) : at::Tensor();
        return make_spec(variant, theta, kk, l, n, beta_min, beta_max, range);
      }()),
      variant_(variant), n_(raw.at("K").size(0)), beta_min_(beta_min), beta_max_(beta_max), range_(range) {
  k_ = raw.at("K").to(at::kCPU, at::kDouble).clone();
  if (variant_ == Variant::noise) {
    theta_ = raw.at("theta").to(at::kCPU, at::kDouble).clone();
  } else {
    l_ = raw.at("l").to(at::kCPU, at::kDouble).clone();
  }
  for (auto* p : {&theta_, &k_, &l_}) {
    if (p->defined()) p->set_requires_grad(true);
  }
  // The base class was built from these parameters; U and lambda are cached on first use (ensure_cache).
}

std::vector<std::pair<std::string, at::Tensor>> LearnedFpProcess::learned_parameters() const {
  if (variant_ == Variant::noise) return {{"process.theta", theta_}, {"process.K", k_}};
  return {{"process.K", k_}, {"process.l", l_}};
}

std::map<std::string, at::Tensor> LearnedFpProcess::parameter_tensors() const {
  // From the parameters themselves (not the per-step cache), so a checkpoint holds what the optimiser left.
  at::NoGradGuard no_grad;
  const auto spec = make_spec(variant_, theta_.defined() ? theta_.detach() : at::Tensor(), k_.detach(),
                              l_.defined() ? l_.detach() : at::Tensor(), n_, beta_min_, beta_max_, range_);
  std::map<std::string, at::Tensor> out = {{"K", k_.detach().clone()},
                                           {"rinv", spec.noise.clone()},
                                           {"omega", (-spec.drift - 0.5 * spec.noise).clone()}};
  if (variant_ == Variant::noise) out["theta"] = theta_.detach().clone();
  else out["l"] = l_.detach().clone();
  return out;
}

void LearnedFpProcess::refresh() {
  {
    at::NoGradGuard no_grad;
    set_trainable(trainable_);
  }
  replace_spec(make_spec(variant_, theta_.defined() ? theta_.detach() : at::Tensor(), k_.detach(),
                         l_.defined() ? l_.detach() : at::Tensor(), n_, beta_min_, beta_max_, range_));
}

void LearnedFpProcess::set_trainable(bool trainable) {
  trainable_ = trainable;
  recompute_cache();
}

void LearnedFpProcess::recompute_cache() const {
  // U and lambda once per training step: every kernel operation of the step shares them and their autograd graph.
  cached_u_ = orthogonal(param(k_));
  cached_lambda_ = variant_ == Variant::noise ? at::exp(param(theta_)) : at::ones({n_}, kF64);
  cached_version_ = parameter_version();
}

uint64_t LearnedFpProcess::parameter_version() const {
  uint64_t version = k_._version();
  if (theta_.defined()) version += theta_._version();
  return version;
}

void LearnedFpProcess::ensure_cache() const {
  // Stale after an in-place update (an optimiser step bumps the version counters), or without a graph when one is
  // needed (the cache was built under no_grad or detached): recompute.
  const bool needs_graph = trainable_ && at::GradMode::is_enabled() && k_.requires_grad();
  if (!cached_u_.defined() || cached_version_ != parameter_version() ||
      (needs_graph && !cached_u_.requires_grad())) {
    recompute_cache();
  }
}

at::Tensor LearnedFpProcess::rotation() const {
  ensure_cache();
  return cached_u_;
}

at::Tensor LearnedFpProcess::lambdas() const {
  ensure_cache();
  return cached_lambda_;
}

at::Tensor LearnedFpProcess::metric() const {
  if (variant_ == Variant::drift) return at::eye(n_, kF64);
  const auto u = rotation();
  return at::matmul(u * lambdas().unsqueeze(0), u.transpose(0, 1));
}

at::Tensor LearnedFpProcess::symplectic() const {
  if (variant_ == Variant::noise) return at::zeros({n_, n_}, kF64);
  const auto u = rotation();
  return at::matmul(at::matmul(u, block_rotation(param(l_), n_)), u.transpose(0, 1));
}

at::Tensor LearnedFpProcess::integrated(const at::Tensor& t) const {
  const auto tt = t.to(at::kCPU, at::kDouble).reshape({-1});
  return beta_min_ * tt + 0.5 * (beta_max_ - beta_min_) * tt * tt;
}

at::Tensor LearnedFpProcess::beta_prime(const at::Tensor& t) const {
  return beta_min_ + t.to(at::kCPU, at::kDouble).reshape({-1}) * (beta_max_ - beta_min_);
}

at::Tensor LearnedFpProcess::rotate_pairs(const at::Tensor& y, const at::Tensor& angle) const {
  // Column convention x -> R x with R = exp(angle J) = [[c, s], [-s, c]] on each pair (y_{2k}, y_{2k+1}).
  const int64_t pairs = n_ / 2;
  if (pairs == 0) return y;
  const auto head = y.narrow(1, 0, 2 * pairs).reshape({y.size(0), pairs, 2});
  const auto a = head.select(2, 0), b = head.select(2, 1);
  const auto c = at::cos(angle), s = at::sin(angle);
  auto rotated = at::stack({c * a + s * b, -s * a + c * b}, 2).reshape({y.size(0), 2 * pairs});
  if (2 * pairs < n_) rotated = at::cat({rotated, y.narrow(1, 2 * pairs, n_ - 2 * pairs)}, 1);
  return rotated;
}

at::Tensor LearnedFpProcess::perturb(const at::Tensor& x0_in, const at::Tensor& t, const at::Tensor& z_in) const {
  require_state(x0_in, n_, "process " + name() + ": data");
  require_state(z_in, n_, "process " + name() + ": noise");
  const auto x0 = x0_in.to(at::kCPU, at::kDouble), z = z_in.to(at::kCPU, at::kDouble);
  const auto u = rotation();
  const auto b = integrated(t).unsqueeze(1);   // [B, 1]
  at::Tensor y;
  if (variant_ == Variant::noise) {
    const auto lambda = lambdas().unsqueeze(0);
    const auto a = at::exp(-0.5 * lambda * b), sigma = at::sqrt(-at::expm1(-lambda * b));
    y = to_basis(x0, u) * a + z * sigma;   // x_t in U's basis: E_t x0 + L_t z with L_t = U diag(sigma)
  } else {
    // E_t = exp(-B/2) U R U^T with R the rotation by -l B: in U's basis rotate, then scale; L_t = sigma I (any
    // orthogonal factor is the same law; sigma I keeps z in the data's basis).
    const auto angle = -param(l_).unsqueeze(0) * b;
    const auto mean = at::matmul(rotate_pairs(to_basis(x0, u), angle), u.transpose(0, 1)) * at::exp(-0.5 * b);
    return (mean + z * at::sqrt(-at::expm1(-b))).to(x0_in.device(), x0_in.scalar_type());
  }
  return at::matmul(y, u.transpose(0, 1)).to(x0_in.device(), x0_in.scalar_type());
}

at::Tensor LearnedFpProcess::noise_to_score(const at::Tensor& eps_in, const at::Tensor& t) const {
  const auto eps = eps_in.to(at::kCPU, at::kDouble);
  const auto b = integrated(t).unsqueeze(1);
  if (variant_ == Variant::drift) return (-eps / at::sqrt(-at::expm1(-b))).to(eps_in.device(), eps_in.scalar_type());
  // s = -L^{-T} eps = -U diag(1 / sigma) eps.
  const auto sigma = at::sqrt(-at::expm1(-lambdas().unsqueeze(0) * b));
  return at::matmul(-eps / sigma, rotation().transpose(0, 1)).to(eps_in.device(), eps_in.scalar_type());
}

at::Tensor LearnedFpProcess::denoising_loss(const at::Tensor& eps, const at::Tensor& z, const at::Tensor& t,
                                            bool likelihood_weighting) const {
  const auto r = z.to(eps.device(), eps.scalar_type()) - eps;
  if (!likelihood_weighting) return 0.5 * (r * r).sum(1);
  // W_t = beta' L^{-1} D L^{-T} = beta' diag(lambda / sigma^2) in the factor's coordinates (z's).
  const auto b = integrated(t).unsqueeze(1);
  const auto lambda = lambdas().unsqueeze(0);
  const auto w = beta_prime(t).unsqueeze(1) * lambda / (-at::expm1(-lambda * b));
  return 0.5 * (w.to(eps.device(), eps.scalar_type()) * r * r).sum(1);
}

at::Tensor LearnedFpProcess::weight_scale(const at::Tensor& t) const {
  const auto b = integrated(t).unsqueeze(1);
  const auto lambda = lambdas().unsqueeze(0);
  return (beta_prime(t).unsqueeze(1) * lambda / (-at::expm1(-lambda * b))).mean(1);
}

at::Tensor LearnedFpProcess::flow_drift(const at::Tensor& x_in, const at::Tensor& t) const {
  require_state(x_in, n_, "process " + name() + ": state");
  // Row form: (A x)^T = x^T A^T with A = -(1/2 D + omega), A^T = -(1/2 D - omega).
  const auto x = x_in.to(at::kCPU, at::kDouble);
  const auto a_t = 0.5 * metric() - symplectic();
  return (-beta_prime(t).unsqueeze(1) * at::matmul(x, a_t)).to(x_in.device(), x_in.scalar_type());
}

at::Tensor LearnedFpProcess::diffusion_squared(const at::Tensor& x_in, const at::Tensor& t, const at::Tensor& v_in) const {
  require_state(x_in, n_, "process " + name() + ": state");
  const auto v = v_in.to(at::kCPU, at::kDouble);
  return (beta_prime(t).unsqueeze(1) * at::matmul(v, metric())).to(v_in.device(), v_in.scalar_type());
}

at::Tensor LearnedFpProcess::prior_cross_entropy(const at::Tensor& x0_in) const {
  require_state(x0_in, n_, "process " + name() + ": data");
  const auto x0 = x0_in.to(at::kCPU, at::kDouble);
  const double big_b = integrated(at::full({1}, range_.T, kF64)).item<double>();
  const auto lambda = lambdas();
  at::Tensor mean_sq, trace;
  if (variant_ == Variant::noise) {
    const auto a = at::exp(-0.5 * lambda * big_b).unsqueeze(0);
    mean_sq = (to_basis(x0, rotation()) * a).pow(2).sum(1);
    trace = (-at::expm1(-lambda * big_b)).sum();
  } else {
    mean_sq = std::exp(-big_b) * x0.pow(2).sum(1);   // rotations keep the norm
    trace = at::full({}, static_cast<double>(n_) * -std::expm1(-big_b), kF64);
  }
  return 0.5 * (mean_sq + trace) + 0.5 * static_cast<double>(n_) * kLog2Pi;
}

at::Tensor LearnedFpProcess::bound_offset(const at::Tensor& t) const {
  const auto b = integrated(t).unsqueeze(1);
  const auto lambda = lambdas().unsqueeze(0);
  const auto bp = beta_prime(t);
  return -0.5 * bp * (lambda / (-at::expm1(-lambda * b))).sum(1) + 0.5 * bp * lambda.sum(1);
}

}  // namespace sdeflow
