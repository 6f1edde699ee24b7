// VP, sub-VP and VE forward SDEs (score-based SDE models, eqs. for VP/sub-VP/VE; NDM Sec. 2 for the
// Gaussian marginal form). Derivations of every coefficient: docs/processes.md.
#include "processes/linear.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

void require(bool condition, const std::string& message) {
  if (!condition) throw InputError(message);
}

void check_range(const TimeRange& range, const std::string& process) {
  require(std::isfinite(range.eps) && std::isfinite(range.T),
          "process " + process + ": eps and T must be finite");
  require(range.eps >= 0.0 && range.T > range.eps,
          "process " + process + ": need 0 <= eps < T, got eps = " + std::to_string(range.eps) +
              ", T = " + std::to_string(range.T));
}

}  // namespace

LinearProcess::LinearProcess(TimeRange range) : range_(range) {}

std::optional<at::Tensor> LinearProcess::drift_divergence(const at::Tensor& x, const at::Tensor& t) const {
  return static_cast<double>(x.size(1)) * drift_coefficient(t).expand({x.size(0)});
}

at::Tensor LinearProcess::drift(const at::Tensor& x, const at::Tensor& t) const {
  return per_sample(drift_coefficient(t)) * x;
}

Diffusion LinearProcess::diffusion(const at::Tensor& x, const at::Tensor& t) const {
  (void)x;
  return Diffusion::scalar(per_sample(diffusion_coefficient(t)));
}

std::optional<Gaussian> LinearProcess::marginal(const at::Tensor& x0, const at::Tensor& t) const {
  return Gaussian{per_sample(alpha(t)) * x0, per_sample(sigma(t))};
}

std::pair<at::Tensor, Diffusion> LinearProcess::discretize(const at::Tensor& x, const at::Tensor& t,
                                                           const at::Tensor& dt) const {
  const auto previous = t - dt;
  const auto ratio = alpha(t) / alpha(previous);
  const auto s_now = sigma(t);
  const auto s_prev = sigma(previous);
  const auto variance = (s_now * s_now - ratio * ratio * s_prev * s_prev).clamp_min(0.0);
  return {per_sample(ratio - 1.0) * x, Diffusion::scalar(per_sample(at::sqrt(variance)))};
}

at::Tensor LinearProcess::prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                                       at::Generator& generator) const {
  return at::randn({n, dim}, generator, options) * prior_std();
}

at::Tensor LinearProcess::prior_log_prob(const at::Tensor& xT) const {
  const double s = prior_std();
  const auto dim = static_cast<double>(xT.size(1));
  return -0.5 * dim * (kLog2Pi + 2.0 * std::log(s)) - 0.5 * xT.pow(2).sum(1) / (s * s);
}

VpProcess::VpProcess(double beta_min, double beta_max, TimeRange range)
    : LinearProcess(range), beta_min_(beta_min), beta_max_(beta_max) {
  check_range(range, "vp");
  require(std::isfinite(beta_min) && std::isfinite(beta_max), "process vp: beta_min and beta_max must be finite");
  require(beta_min >= 0.0 && beta_max > 0.0 && beta_max >= beta_min,
          "process vp: need 0 <= beta_min <= beta_max and beta_max > 0, got beta_min = " +
              std::to_string(beta_min) + ", beta_max = " + std::to_string(beta_max));
}

at::Tensor VpProcess::beta(const at::Tensor& t) const { return beta_min_ + t * (beta_max_ - beta_min_); }

at::Tensor VpProcess::integrated_beta(const at::Tensor& t) const {
  return beta_min_ * t + 0.5 * (beta_max_ - beta_min_) * t * t;
}

at::Tensor VpProcess::alpha(const at::Tensor& t) const { return at::exp(-0.5 * integrated_beta(t)); }

at::Tensor VpProcess::sigma(const at::Tensor& t) const {
  return at::sqrt(-at::expm1(-integrated_beta(t)));
}

at::Tensor VpProcess::drift_coefficient(const at::Tensor& t) const { return -0.5 * beta(t); }

at::Tensor VpProcess::diffusion_coefficient(const at::Tensor& t) const { return at::sqrt(beta(t)); }

std::map<std::string, double> VpProcess::parameters() const {
  return {{"beta_min", beta_min_}, {"beta_max", beta_max_}, {"eps", range_.eps}, {"T", range_.T}};
}

at::Tensor SubVpProcess::sigma(const at::Tensor& t) const { return -at::expm1(-integrated_beta(t)); }

at::Tensor SubVpProcess::diffusion_coefficient(const at::Tensor& t) const {
  return at::sqrt(beta(t) * -at::expm1(-2.0 * integrated_beta(t)));
}

VeProcess::VeProcess(double sigma_min, double sigma_max, TimeRange range)
    : LinearProcess(range), sigma_min_(sigma_min), sigma_max_(sigma_max) {
  check_range(range, "ve");
  require(std::isfinite(sigma_min) && std::isfinite(sigma_max), "process ve: sigma_min and sigma_max must be finite");
  require(sigma_min > 0.0 && sigma_max > sigma_min,
          "process ve: need 0 < sigma_min < sigma_max, got sigma_min = " + std::to_string(sigma_min) +
              ", sigma_max = " + std::to_string(sigma_max));
}

at::Tensor VeProcess::noise_level(const at::Tensor& t) const {
  return sigma_min_ * at::exp(t * std::log(sigma_max_ / sigma_min_));
}

at::Tensor VeProcess::alpha(const at::Tensor& t) const { return at::ones_like(t); }

at::Tensor VeProcess::sigma(const at::Tensor& t) const {
  // sigma(t)^2 - sigma_min^2 = sigma_min^2 (exp(2 t log r) - 1), with expm1 for accuracy near t = 0.
  return sigma_min_ * at::sqrt(at::expm1(2.0 * t * std::log(sigma_max_ / sigma_min_)));
}

at::Tensor VeProcess::drift_coefficient(const at::Tensor& t) const { return at::zeros_like(t); }

at::Tensor VeProcess::diffusion_coefficient(const at::Tensor& t) const {
  return noise_level(t) * std::sqrt(2.0 * std::log(sigma_max_ / sigma_min_));
}

std::map<std::string, double> VeProcess::parameters() const {
  return {{"sigma_min", sigma_min_}, {"sigma_max", sigma_max_}, {"eps", range_.eps}, {"T", range_.T}};
}

std::vector<std::string> process_names() { return {"vp", "subvp", "ve"}; }

std::shared_ptr<const LinearProcess> require_scalar_process(const std::shared_ptr<const Process>& process,
                                                            const std::string& what) {
  if (!process) throw InputError(what + ": no process");
  auto linear = std::dynamic_pointer_cast<const LinearProcess>(process);
  if (!linear) {
    throw InputError(what + " needs a process with scalar coefficients (vp, subvp, ve); process " + process->name() +
                     " is not");
  }
  return linear;
}

std::shared_ptr<LinearProcess> make_linear_process(const std::string& name,
                                                   const std::map<std::string, double>& parameters) {
  auto take = [&](const std::vector<std::string>& allowed) {
    std::map<std::string, double> values;
    for (const auto& [key, value] : parameters) {
      bool known = false;
      for (const auto& a : allowed) known = known || a == key;
      if (!known) throw InputError("process " + name + ": unknown parameter '" + key + "'");
      if (!std::isfinite(value)) throw InputError("process " + name + ": parameter " + key + " is not finite");
      values[key] = value;
    }
    return values;
  };
  auto get = [](const std::map<std::string, double>& values, const std::string& key, double fallback) {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  };
  if (name == "vp" || name == "subvp") {
    const auto v = take({"beta_min", "beta_max", "eps", "T"});
    const TimeRange range{get(v, "eps", 1e-3), get(v, "T", 1.0)};
    if (name == "vp") return std::make_shared<VpProcess>(get(v, "beta_min", 0.1), get(v, "beta_max", 20.0), range);
    return std::make_shared<SubVpProcess>(get(v, "beta_min", 0.1), get(v, "beta_max", 20.0), range);
  }
  if (name == "ve") {
    const auto v = take({"sigma_min", "sigma_max", "eps", "T"});
    return std::make_shared<VeProcess>(get(v, "sigma_min", 0.01), get(v, "sigma_max", 50.0),
                                       TimeRange{get(v, "eps", 1e-3), get(v, "T", 1.0)});
  }
  throw InputError("unknown process '" + name + "' (known: vp, subvp, ve)");
}

}  // namespace sdeflow
