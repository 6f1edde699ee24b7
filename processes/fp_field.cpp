// FP-Diffusion with a state-dependent metric D(x) (processes/fp_field.hpp; derivations in docs/fp_diffusion.md).
#include "processes/fp_field.hpp"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

namespace {

constexpr double kLog2Pi = 1.8378770664093453;
const auto kF64 = at::TensorOptions().dtype(at::kDouble);

at::Tensor cpu64(const at::Tensor& x) { return x.to(at::kCPU, at::kDouble); }

at::Tensor stored(const std::map<std::string, at::Tensor>& tensors, const std::string& key) {
  const auto found = tensors.find(key);
  if (found == tensors.end()) throw InputError("process fp-field: missing dataset '" + key + "'");
  const auto value = found->second;
  if (!at::isfinite(value).all().item<bool>()) throw InputError(key + ": contains NaN or Inf");
  return cpu64(value).clone();
}

void require_shape(const at::Tensor& value, const std::string& key, at::IntArrayRef shape) {
  if (value.sizes() != shape) {
    throw InputError(key + ": expected shape " + shape_text(shape) + ", got " + shape_text(value.sizes()));
  }
}

// Row-wise lower-triangular entries [B, m] -> flattened [B, n * n] through a constant 0/1 matrix.
at::Tensor lower_embedding(int64_t n) {
  const int64_t m = n * (n + 1) / 2;
  auto embed = at::zeros({m, n * n}, kF64);
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) embed.index_put_({k++, i * n + j}, 1.0);
  }
  return embed;
}

at::Tensor uniform(at::IntArrayRef shape, double bound, at::Generator& generator) {
  return (2.0 * at::rand(shape, generator, kF64) - 1.0) * bound;
}

}  // namespace

at::Tensor metric_divergence(const MetricField& field, const at::Tensor& x) {
  const bool outer = at::GradMode::is_enabled();
  torch::AutoGradMode enable(true);
  const bool graph = outer && (x.requires_grad() || (field.trainable() && !field.parameters().empty()));
  const auto input = x.requires_grad() ? cpu64(x) : cpu64(x).detach().requires_grad_(true);
  const auto d = field(input);
  const int64_t n = field.dim();
  std::vector<at::Tensor> columns(static_cast<size_t>(n));
  for (auto& c : columns) c = at::zeros({x.size(0)}, kF64);
  if (!d.requires_grad()) return at::zeros({x.size(0), n}, kF64);   // a constant field
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j) {
      // grad_x of sum_b D_ij(x_b): row b holds d_k D_ij(x_b) for every k (rows are independent).
      const bool last = i == n - 1 && j == n - 1;
      const auto g = torch::autograd::grad({d.select(1, i).select(1, j).sum()}, {input}, {}, /*retain_graph=*/graph || !last,
                                           /*create_graph=*/graph, /*allow_unused=*/true)[0];
      if (!g.defined()) continue;
      columns[static_cast<size_t>(j)] = columns[static_cast<size_t>(j)] + g.select(1, i);   // d_i D_ij
      if (i != j) columns[static_cast<size_t>(i)] = columns[static_cast<size_t>(i)] + g.select(1, j);   // d_j D_ji
    }
  }
  auto result = at::stack(columns, 1);
  return graph ? result : result.detach();
}

// ---- NetworkMetric ----

NetworkMetric::NetworkMetric(int64_t n, int64_t width, double floor, uint64_t seed) : n_(n), floor_(floor) {
  if (n < 1 || width < 1) throw InputError("fp-field: the dimension and the metric network's width must be positive");
  if (!(floor > 0 && floor <= 1)) throw InputError("fp-field: floor must lie in (0, 1]");
  auto generator = make_generator(at::kCPU, seed);
  const int64_t m = n * (n + 1) / 2;
  const double a1 = 1.0 / std::sqrt(static_cast<double>(n)), a2 = 1.0 / std::sqrt(static_cast<double>(width));
  w1_ = uniform({width, n}, a1, generator);
  b1_ = uniform({width}, a1, generator);
  w2_ = uniform({width, width}, a2, generator);
  b2_ = uniform({width}, a2, generator);
  w3_ = at::zeros({m, width}, kF64);
  b3_ = at::zeros({m}, kF64);
  for (auto* p : {&w1_, &b1_, &w2_, &b2_, &w3_, &b3_}) p->set_requires_grad(true);
  embed_ = lower_embedding(n);
}

NetworkMetric::NetworkMetric(const std::map<std::string, at::Tensor>& tensors, double floor) : floor_(floor) {
  if (!(floor > 0 && floor <= 1)) throw InputError("fp-field: floor must lie in (0, 1]");
  w1_ = stored(tensors, "metric_w1");
  if (w1_.dim() != 2 || w1_.size(0) < 1 || w1_.size(1) < 1) {
    throw InputError("metric_w1: expected a matrix [width, n], got shape " + shape_text(w1_.sizes()));
  }
  const int64_t width = w1_.size(0);
  n_ = w1_.size(1);
  const int64_t m = n_ * (n_ + 1) / 2;
  b1_ = stored(tensors, "metric_b1");
  require_shape(b1_, "metric_b1", {width});
  w2_ = stored(tensors, "metric_w2");
  require_shape(w2_, "metric_w2", {width, width});
  b2_ = stored(tensors, "metric_b2");
  require_shape(b2_, "metric_b2", {width});
  w3_ = stored(tensors, "metric_w3");
  require_shape(w3_, "metric_w3", {m, width});
  b3_ = stored(tensors, "metric_b3");
  require_shape(b3_, "metric_b3", {m});
  for (auto* p : {&w1_, &b1_, &w2_, &b2_, &w3_, &b3_}) p->set_requires_grad(true);
  embed_ = lower_embedding(n_);
}

at::Tensor NetworkMetric::operator()(const at::Tensor& x_in) const {
  require_state(x_in, n_, "fp-field metric: state");
  const auto x = cpu64(x_in);
  const auto h1 = at::silu(at::addmm(param(b1_), x, param(w1_).t()));
  const auto h2 = at::silu(at::addmm(param(b2_), h1, param(w2_).t()));
  const auto lower = at::addmm(param(b3_), h2, param(w3_).t());                 // [B, m]
  const auto eye = at::eye(n_, kF64);
  const auto factor = std::sqrt(1.0 - floor_) * eye + at::matmul(lower, embed_).reshape({-1, n_, n_});
  return at::matmul(factor, factor.transpose(1, 2)) + floor_ * eye;
}

std::vector<std::pair<std::string, at::Tensor>> NetworkMetric::parameters() const {
  return {{"metric_w1", w1_}, {"metric_b1", b1_}, {"metric_w2", w2_},
          {"metric_b2", b2_}, {"metric_w3", w3_}, {"metric_b3", b3_}};
}

// ---- MetricFpProcess ----

MetricFpProcess::MetricFpProcess(std::shared_ptr<MetricField> metric, at::Tensor omega, double beta_min,
                                 double beta_max, TimeRange range, double floor)
    : metric_(std::move(metric)), omega_(cpu64(omega).clone()), beta_min_(beta_min), beta_max_(beta_max),
      range_(range), floor_(floor), n_(metric_->dim()) {
  require_shape(omega_, "omega", {n_, n_});
  if (!at::isfinite(omega_).all().item<bool>()) throw InputError("omega: contains NaN or Inf");
  if ((omega_ + omega_.t()).abs().max().item<double>() > 1e-12 * (1.0 + omega_.abs().max().item<double>())) {
    throw InputError("omega: not antisymmetric");
  }
  if (!(beta_min > 0 && beta_max >= beta_min)) throw InputError("fp-field: need 0 < beta_min <= beta_max");
  if (!(range.eps > 0 && range.eps < range.T)) throw InputError("fp-field: need 0 < eps < T");
}

std::map<std::string, double> MetricFpProcess::parameters() const {
  return {{"beta_min", beta_min_}, {"beta_max", beta_max_}, {"eps", range_.eps}, {"T", range_.T}, {"floor", floor_}};
}

std::map<std::string, at::Tensor> MetricFpProcess::parameter_tensors() const {
  std::map<std::string, at::Tensor> out = {{"omega", omega_.clone()}};
  for (const auto& [key, value] : metric_->parameters()) out[key] = value.detach().clone();
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> MetricFpProcess::learned_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [key, value] : metric_->parameters()) out.emplace_back("process." + key, value);
  return out;
}

at::Tensor MetricFpProcess::integrated(const at::Tensor& t) const {
  const auto tt = cpu64(t).reshape({-1});
  return beta_min_ * tt + 0.5 * (beta_max_ - beta_min_) * tt * tt;
}

at::Tensor MetricFpProcess::beta_prime(const at::Tensor& t) const {
  return beta_min_ + cpu64(t).reshape({-1}) * (beta_max_ - beta_min_);
}

at::Tensor MetricFpProcess::metric(const at::Tensor& x) const { return (*metric_)(x); }

namespace {
at::Tensor apply_rows(const at::Tensor& matrices, const at::Tensor& rows) {   // [B, n, n] x [B, n] -> [B, n]
  return at::matmul(matrices, rows.unsqueeze(-1)).squeeze(-1);
}
}  // namespace

at::Tensor MetricFpProcess::drift(const at::Tensor& x_in, const at::Tensor& t) const {
  require_state(x_in, n_, "process fp-field: state");
  const auto x = cpu64(x_in);
  const auto d = metric(x);
  const auto inner = -0.5 * apply_rows(d, x) - at::matmul(x, omega_.t()) + 0.5 * metric_divergence(*metric_, x);
  return (beta_prime(t).unsqueeze(1) * inner).to(x_in.device(), x_in.scalar_type());
}

Diffusion MetricFpProcess::diffusion(const at::Tensor& x_in, const at::Tensor& t) const {
  require_state(x_in, n_, "process fp-field: state");
  const auto chol = at::linalg_cholesky(metric(cpu64(x_in)));
  const auto g = at::sqrt(beta_prime(t)).reshape({-1, 1, 1}) * chol;
  return Diffusion::full(g.to(x_in.device(), x_in.scalar_type()));
}

at::Tensor MetricFpProcess::diffusion_divergence(const at::Tensor& x_in, const at::Tensor& t) const {
  require_state(x_in, n_, "process fp-field: state");
  return (beta_prime(t).unsqueeze(1) * metric_divergence(*metric_, cpu64(x_in))).to(x_in.device(), x_in.scalar_type());
}

at::Tensor MetricFpProcess::flow_drift(const at::Tensor& x_in, const at::Tensor& t) const {
  require_state(x_in, n_, "process fp-field: state");
  const auto x = cpu64(x_in);
  const auto inner = 0.5 * apply_rows(metric(x), x) + at::matmul(x, omega_.t());
  return (-beta_prime(t).unsqueeze(1) * inner).to(x_in.device(), x_in.scalar_type());
}

at::Tensor MetricFpProcess::diffusion_squared(const at::Tensor& x_in, const at::Tensor& t, const at::Tensor& v) const {
  require_state(x_in, n_, "process fp-field: state");
  const auto value = beta_prime(t).unsqueeze(1) * apply_rows(metric(cpu64(x_in)), cpu64(v));
  return value.to(v.device(), v.scalar_type());
}

at::Tensor MetricFpProcess::simulate(const at::Tensor& x_in, const at::Tensor& t_from, const at::Tensor& t_to,
                                     int64_t steps, at::Generator& generator) const {
  require_state(x_in, n_, "process fp-field: state");
  if (steps < 1) throw InputError("simulate: steps must be at least 1");
  // h > 0 keeps I - E^2 positive-definite for the Cholesky factor when t_from = t_to.
  const auto h = at::clamp_min((integrated(t_to) - integrated(t_from)) / static_cast<double>(steps), 1e-12);
  const auto eye = at::eye(n_, kF64);
  auto y = cpu64(x_in);
  for (int64_t k = 0; k < steps; ++k) {
    const auto d = metric(y);
    const auto e = at::linalg_matrix_exp(-0.5 * h.reshape({-1, 1, 1}) * d);   // expm(-h D / 2), symmetric
    const auto factor = at::linalg_cholesky(eye - at::matmul(e, e));           // (I - expm(-h D))^(1/2)
    const auto rest = -at::matmul(y, omega_.t()) + 0.5 * metric_divergence(*metric_, y);
    const auto z = at::randn({y.size(0), n_}, generator, kF64);
    y = apply_rows(e, y) + h.unsqueeze(1) * rest + apply_rows(factor, z);
  }
  return y.to(x_in.device(), x_in.scalar_type());
}

at::Tensor MetricFpProcess::noise_to_score(const at::Tensor& eps, const at::Tensor& t) const {
  const auto sigma = at::sqrt(-at::expm1(-integrated(t))).unsqueeze(1);
  return -eps / sigma.to(eps.device(), eps.scalar_type());
}

at::Tensor MetricFpProcess::prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                                         at::Generator& generator) const {
  require_state(at::zeros({1, dim}), n_, "process fp-field: prior");
  return at::randn({n, dim}, generator, options);
}

at::Tensor MetricFpProcess::prior_log_prob(const at::Tensor& xT) const {
  return -0.5 * (xT * xT).sum(1) - 0.5 * static_cast<double>(xT.size(1)) * kLog2Pi;
}

std::shared_ptr<MetricFpProcess> make_fp_field_process(int64_t n, int64_t width, double floor, uint64_t seed,
                                                       double beta_min, double beta_max, TimeRange range) {
  return std::make_shared<MetricFpProcess>(std::make_shared<NetworkMetric>(n, width, floor, seed),
                                           at::zeros({n, n}, kF64), beta_min, beta_max, range, floor);
}

}  // namespace sdeflow
