// DDIM and single-step DPM-Solver (orders 1-3) for the probability-flow ODE of a linear process, and the
// usual sampling time grids. With x_t = alpha_t x_0 + sigma_t eps and lambda = log(alpha/sigma), the PF ODE
// dx/dt = f x - 1/2 g^2 score has the exact solution
//   x_t = (alpha_t / alpha_s) x_s - sigma_t int_0^h e^(h - tau) eps_hat(lambda_s + tau) dtau,  h = lambda_t - lambda_s,
// and the solvers approximate eps_hat = -sigma score by Taylor expansion in lambda. Derivations and the
// conditions on the process: docs/diffusion_ode_solvers.md.
#include "samplers/diffusion_ode.hpp"

#include <cmath>
#include <tuple>
#include <typeinfo>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "processes/linear.hpp"
#include "processes/reverse.hpp"
#include "solvers/integrate.hpp"

namespace sdeflow {

namespace {

// The term as a linear process plus a counted score evaluation.
struct Flow {
  const LinearProcess* process = nullptr;
  const ProbabilityFlow* flow = nullptr;
  const ReverseSde* sde = nullptr;

  // eps_hat(x, t) = -sigma(t) score(x, t), one counted model evaluation. For the probability-flow field
  // v = a x - 1/2 g^2 score the score is recovered as 2 (a x - v) / g^2, so that the term counts the
  // evaluation (and sees bind_samples) exactly as for every other ODE solver.
  at::Tensor noise(const at::Tensor& t, const at::Tensor& x) const {
    const auto sigma = per_sample(process->sigma(t));
    if (sde != nullptr) return -sigma * sde->score(t, x);
    const auto v = (*flow)(t, x);
    const auto a = per_sample(process->drift_coefficient(t));
    const auto g2 = per_sample(process->diffusion_coefficient(t).pow(2));
    return 2.0 * sigma * (v - a * x) / g2;
  }
};

// Throws InputError unless the log-SNR of `process` is finite and strictly decreasing on its time range.
void check_log_snr(const LinearProcess& process, const std::string& who) {
  const auto range = process.time_range();
  const auto t = at::linspace(range.eps > 0.0 ? range.eps : 1e-3 * range.T, range.T, 65,
                              at::TensorOptions().dtype(at::kDouble));
  const auto lambda = process.log_snr(t);
  const bool finite = at::isfinite(lambda).all().item<bool>();
  const bool decreasing = (lambda.slice(0, 1) < lambda.slice(0, 0, -1)).all().item<bool>();
  if (!finite || !decreasing) {
    throw InputError(who + ": the log-SNR log(alpha/sigma) of process " + process.name() +
                     " must be finite and strictly decreasing in t");
  }
}

Flow resolve(const Term& term, const std::string& solver, bool allow_reverse_sde) {
  Flow result;
  const Process* process = nullptr;
  if (const auto* flow = dynamic_cast<const ProbabilityFlow*>(&term)) {
    result.flow = flow;
    process = &flow->process();
  } else if (const auto* sde = dynamic_cast<const ReverseSde*>(&term); sde != nullptr && allow_reverse_sde) {
    result.sde = sde;
    process = &sde->process();
  } else {
    throw InputError("solver '" + solver + "' needs the probability-flow ODE of a linear process" +
                     std::string(allow_reverse_sde ? " (or its reverse-time SDE)" : "") + ", got " + term.describe());
  }
  result.process = dynamic_cast<const LinearProcess*>(process);
  if (result.process == nullptr || process->state_dependent_diffusion()) {
    throw InputError("solver '" + solver + "' needs a linear process (x_t = alpha x_0 + sigma eps: vp, subvp, ve), got " +
                     process->name());
  }
  return result;
}

double parameter(const LinearProcess& process, const std::string& key) {
  const auto parameters = process.parameters();
  const auto it = parameters.find(key);
  if (it == parameters.end()) throw Error("process " + process.name() + " has no parameter " + key);
  return it->second;
}

// log(1 + e^z) without overflow or loss of precision for large |z| (at::softplus switches to z above a
// threshold, an error of e^-threshold).
at::Tensor log1p_exp(const at::Tensor& z) {
  return at::where(z > 0, z + at::log1p(at::exp(-z)), at::log1p(at::exp(z)));
}

// t >= 0 with B(t) = beta_min t + (beta_max - beta_min) t^2 / 2 = b: the positive root of the quadratic,
// written without cancellation (and valid for beta_max == beta_min).
at::Tensor invert_integrated_beta(const LinearProcess& process, const at::Tensor& b) {
  const double beta_min = parameter(process, "beta_min");
  const double slope = parameter(process, "beta_max") - beta_min;
  return 2.0 * b / (beta_min + at::sqrt(beta_min * beta_min + 2.0 * slope * b));
}

std::vector<double> to_vector(const at::Tensor& t) {
  const auto c = t.to(at::kCPU, at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// DDIM (Song et al. 2021): predict x0 and eps from the score, move both to the new noise level.
class Ddim : public Stepper {
 public:
  explicit Ddim(double eta) : eta_(eta) {
    if (!std::isfinite(eta) || eta < 0.0 || eta > 1.0) {
      throw InputError("ddim: eta must lie in [0, 1], got " + std::to_string(eta));
    }
  }
  std::string name() const override { return "ddim"; }
  int order() const override { return 1; }
  double strong_order() const override { return eta_ > 0.0 ? 0.5 : 1.0; }
  bool stochastic() const override { return eta_ > 0.0; }
  void check_term(const Term& term) const override {
    check_log_snr(*resolve(term, name(), stochastic()).process, name());
  }

  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override {
    const auto flow = resolve(term, name(), stochastic());
    const auto& process = *flow.process;
    const auto t_next = t + dt;
    const auto eps = flow.noise(t, y);
    const auto x0 = (y - per_sample(process.sigma(t)) * eps) / per_sample(process.alpha(t));
    const auto alpha_t = per_sample(process.alpha(t_next));
    const auto sigma_t = per_sample(process.sigma(t_next));
    if (eta_ == 0.0) return {alpha_t * x0 + sigma_t * eps, at::Tensor()};

    if ((dt > 0).any().item<bool>()) throw InputError("ddim with eta > 0 integrates from T towards eps only");
    // c^2 = eta^2 sigma_t^2 (1 - e^{-2h}): eta^2 times the variance of x_t given (x_s, x_0) under the forward
    // process; sigma_t^2 - c^2 >= 0 for eta <= 1.
    const auto h = per_sample(process.log_snr(t_next) - process.log_snr(t));
    const auto fraction = -at::expm1(-2.0 * h);   // 1 - e^{-2h} in [0, 1)
    const auto mean = alpha_t * x0 + sigma_t * at::sqrt(1.0 - eta_ * eta_ * fraction) * eps;
    if (context.last_step && context.denoise_last) return {mean, at::Tensor()};
    if (context.brownian == nullptr) throw Error("ddim: no Brownian path given");
    const auto unit = context.brownian->increment(t, t_next) / per_sample(at::sqrt(dt.abs()));
    return {mean + eta_ * sigma_t * at::sqrt(fraction) * unit, at::Tensor()};
  }

 private:
  double eta_;
};

// Single-step DPM-Solver (Lu et al. 2022, noise-prediction form).
class DpmSolver : public Stepper {
 public:
  explicit DpmSolver(int order) : order_(order) {}
  std::string name() const override { return "dpm" + std::to_string(order_); }
  int order() const override { return order_; }
  bool stochastic() const override { return false; }
  void check_term(const Term& term) const override { check_log_snr(*resolve(term, name(), false).process, name()); }

  StepResult step(const Term& term, const at::Tensor& t, const at::Tensor& y, const at::Tensor& dt,
                  StepContext& context) override {
    (void)context;
    const auto flow = resolve(term, name(), false);
    const auto& process = *flow.process;
    const auto t_next = t + dt;
    const auto lambda_s = process.log_snr(t);
    const auto h = process.log_snr(t_next) - lambda_s;   // [B]
    const auto alpha_s = per_sample(process.alpha(t));
    const auto alpha_t = per_sample(process.alpha(t_next));
    const auto sigma_t = per_sample(process.sigma(t_next));
    const auto hs = per_sample(h);
    const auto phi = at::expm1(hs);   // e^h - 1
    const auto eps_s = flow.noise(t, y);
    // First-order (DDIM) part: eps_hat frozen at lambda_s.
    auto x = (alpha_t / alpha_s) * y - sigma_t * phi * eps_s;
    if (order_ == 1) return {x, at::Tensor()};

    const auto lo = at::minimum(t, t_next);
    const auto hi = at::maximum(t, t_next);
    // The state at the intermediate log-SNR lambda_s + r h by the first-order update, plus `correction`.
    auto intermediate = [&](double r) {
      const auto s = time_of_log_snr(process, lambda_s + r * h, lo, hi);
      const auto sigma = per_sample(process.sigma(s));
      const auto u = (per_sample(process.alpha(s)) / alpha_s) * y - sigma * at::expm1(r * hs) * eps_s;
      return std::make_tuple(s, sigma, u);
    };
    if (order_ == 2) {
      constexpr double r1 = 0.5;
      const auto [s1, sigma_1, u1] = intermediate(r1);
      (void)sigma_1;
      const auto d1 = flow.noise(s1, u1) - eps_s;
      x = x - sigma_t / (2.0 * r1) * phi * d1;
      return {x, at::Tensor()};
    }
    constexpr double r1 = 1.0 / 3.0, r2 = 2.0 / 3.0;
    const auto [s1, sigma_1, u1] = intermediate(r1);
    (void)sigma_1;
    const auto d1 = flow.noise(s1, u1) - eps_s;
    auto [s2, sigma_2, u2] = intermediate(r2);
    u2 = u2 - sigma_2 * (r2 / r1) * (at::expm1(r2 * hs) / (r2 * hs) - 1.0) * d1;
    const auto d2 = flow.noise(s2, u2) - eps_s;
    x = x - sigma_t / r2 * (phi / hs - 1.0) * d2;
    return {x, at::Tensor()};
  }

 private:
  int order_;
};

}  // namespace

std::unique_ptr<Stepper> make_ddim(double eta) { return std::make_unique<Ddim>(eta); }

std::unique_ptr<Stepper> make_dpm_solver(int order) {
  if (order < 1 || order > 3) {
    throw InputError("dpm-solver: order must be 1, 2 or 3, got " + std::to_string(order));
  }
  return std::make_unique<DpmSolver>(order);
}

at::Tensor time_of_log_snr_bisection(const LinearProcess& process, const at::Tensor& lambda, const at::Tensor& lo,
                                     const at::Tensor& hi) {
  // log_snr decreases in t: where lambda(mid) > lambda the root lies above mid.
  auto a = lo.expand_as(lambda).clone();
  auto b = hi.expand_as(lambda).clone();
  for (int i = 0; i < 200; ++i) {
    const auto mid = 0.5 * (a + b);
    if (!((mid > a) & (mid < b)).any().item<bool>()) break;   // every bracket is down to adjacent numbers
    const auto above = process.log_snr(mid) > lambda;
    a = at::where(above, mid, a);
    b = at::where(above, b, mid);
  }
  return 0.5 * (a + b);
}

at::Tensor time_of_log_snr(const LinearProcess& process, const at::Tensor& lambda, const at::Tensor& lo,
                           const at::Tensor& hi) {
  const auto& type = typeid(process);
  if (type == typeid(VpProcess)) {
    // sigma^2 / alpha^2 = e^B - 1 = e^{-2 lambda}:  B = log(1 + e^{-2 lambda}).
    return invert_integrated_beta(process, log1p_exp(-2.0 * lambda));
  }
  if (type == typeid(SubVpProcess)) {
    // sigma / alpha = (1 - e^{-B}) e^{B/2} = 2 sinh(B/2) = e^{-lambda}:  B = 2 asinh(e^{-lambda} / 2).
    return invert_integrated_beta(process, 2.0 * at::asinh(0.5 * at::exp(-lambda)));
  }
  if (type == typeid(VeProcess)) {
    // sigma^2 = s_min^2 (e^{2 t L} - 1) = e^{-2 lambda}, L = log(s_max / s_min).
    const double s_min = parameter(process, "sigma_min");
    const double log_ratio = std::log(parameter(process, "sigma_max") / s_min);
    return log1p_exp(-2.0 * lambda - 2.0 * std::log(s_min)) / (2.0 * log_ratio);
  }
  return time_of_log_snr_bisection(process, lambda, lo, hi);
}

std::vector<std::string> time_grid_kinds() { return {"uniform", "quadratic", "logsnr", "karras"}; }

std::vector<double> time_grid(const std::string& kind, const LinearProcess& process, int64_t steps, double eps) {
  bool known = false;
  for (const auto& k : time_grid_kinds()) known = known || k == kind;
  if (!known) throw InputError("unknown time grid '" + kind + "' (known: uniform, quadratic, logsnr, karras)");
  if (steps <= 0) throw InputError("time grid: number of steps must be positive, got " + std::to_string(steps));
  const double T = process.time_range().T;
  if (!std::isfinite(eps) || !(eps > 0.0) || !(eps < T)) {
    throw InputError("time grid: need 0 < eps < T = " + std::to_string(T) + ", got eps = " + std::to_string(eps));
  }
  const auto n = static_cast<double>(steps);
  std::vector<double> grid(static_cast<size_t>(steps) + 1);
  if (kind == "uniform") {
    grid = uniform_grid(T, eps, steps);
  } else if (kind == "quadratic") {
    for (int64_t i = 0; i <= steps; ++i) grid[i] = eps + (T - eps) * std::pow(1.0 - static_cast<double>(i) / n, 2);
  } else {
    check_log_snr(process, "time grid '" + kind + "'");
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    const auto ends = process.log_snr(at::tensor({T, eps}, f64));
    const double lambda_T = ends[0].item<double>(), lambda_eps = ends[1].item<double>();
    const auto i = at::arange(steps + 1, f64) / n;
    at::Tensor lambda;
    if (kind == "logsnr") {
      lambda = lambda_T + (lambda_eps - lambda_T) * i;
    } else {
      // Karras et al.: r = sigma/alpha = e^{-lambda} interpolated linearly in r^(1/rho).
      const double a = std::exp(-lambda_T / kKarrasRho), b = std::exp(-lambda_eps / kKarrasRho);
      lambda = -kKarrasRho * at::log(a + (b - a) * i);
    }
    grid = to_vector(time_of_log_snr(process, lambda, at::full_like(lambda, eps), at::full_like(lambda, T)));
  }
  grid.front() = T;
  grid.back() = eps;
  for (size_t k = 1; k < grid.size(); ++k) {
    if (!(grid[k] < grid[k - 1])) {
      throw InputError("time grid '" + kind + "': " + std::to_string(steps) +
                       " steps give a grid that is not strictly decreasing in double precision");
    }
  }
  return grid;
}

}  // namespace sdeflow
