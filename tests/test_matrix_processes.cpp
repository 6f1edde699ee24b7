// Constant-matrix processes on exact oracles (seeds-fp.md sections 2, 6, 7; docs/processes.md, "Matrix-linear
// processes"): FP-Diffusion with D = I, omega = 0 is VP to round-off; the transition covariance solves the
// Lyapunov ODE and the paper's I - expm(-B D) does not; the mixture's score and probability-flow divergence
// agree with autograd; the probability-flow NLL with the exact prior equals the exact log p_eps; CLD's moments
// match the critical-damping closed form and its samples' data half matches the mixture.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "io/data_file.hpp"
#include "io/h5.hpp"
#include "io/model_file.hpp"
#include "io/nll_file.hpp"
#include "likelihood/likelihood.hpp"
#include "mixture_checks.hpp"
#include "processes/linear.hpp"
#include "processes/matrix_linear.hpp"
#include "processes/mixture.hpp"
#include "processes/registry.hpp"
#include "processes/reverse.hpp"
#include "samplers/sampling.hpp"
#include "solvers/brownian.hpp"
#include "solvers/integrate.hpp"
#include "solvers/stepper.hpp"
#include "support.hpp"
#include "training/trainer.hpp"

using namespace sdeflow;
using test::random_mixture;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

double max_abs(const at::Tensor& x) { return x.abs().max().item<double>(); }

std::shared_ptr<MatrixLinearProcess> random_fp(int64_t n, uint64_t seed) {
  const auto [rinv, omega] = random_fp_matrices(n, seed, 0.5, 1.0);
  return make_fp_process(rinv, omega, 0.1, 20.0, TimeRange{1e-3, 1.0});
}

// Classical RK4 on the Lyapunov ODE dP/dB = A P + P A^T + Q in the time change B: an oracle independent of
// the closed form (the step's error, ~(B/steps)^4, is below 1e-12 here).
at::Tensor integrate_lyapunov(const at::Tensor& A, const at::Tensor& Q, const at::Tensor& P0, double B, int steps) {
  auto rhs = [&](const at::Tensor& P) { return at::matmul(A, P) + at::matmul(P, A.transpose(0, 1)) + Q; };
  const double h = B / steps;
  auto P = P0.clone();
  for (int i = 0; i < steps; ++i) {
    const auto k1 = rhs(P);
    const auto k2 = rhs(P + 0.5 * h * k1);
    const auto k3 = rhs(P + 0.5 * h * k2);
    const auto k4 = rhs(P + h * k3);
    P = P + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
  }
  return P;
}

// FP-Diffusion with a state-dependent metric (seeds-fp.md sections 1, 7): 2-D, omega = 0,
// D(x) = diag(1 + a sin^2 x1, 1), f = beta' (-1/2 D(x) x + sign/2 div D(x)), G G^T = beta' D(x), with
// div D = (a sin 2 x1, 0). N(0, I) is stationary for sign = +1 only.
class SineMetricProcess : public Process {
 public:
  explicit SineMetricProcess(double a, double sign = 1.0) : a_(a), sign_(sign) {}
  std::string name() const override { return "fp-sine-metric"; }
  at::Tensor rate(const at::Tensor& t) const { return 0.1 + t * 19.9; }
  at::Tensor metric(const at::Tensor& x) const {   // diag(D(x)) [B, 2]
    const auto d1 = 1.0 + a_ * at::sin(x.select(1, 0)).pow(2);
    return at::stack({d1, at::ones_like(d1)}, 1);
  }
  at::Tensor metric_divergence(const at::Tensor& x) const {
    const auto d1 = a_ * at::sin(2.0 * x.select(1, 0));
    return at::stack({d1, at::zeros_like(d1)}, 1);
  }
  at::Tensor drift(const at::Tensor& x, const at::Tensor& t) const override {
    return per_sample_rate(t) * (-0.5 * metric(x) * x + 0.5 * sign_ * metric_divergence(x));
  }
  Diffusion diffusion(const at::Tensor& x, const at::Tensor& t) const override {
    return Diffusion::diagonal(at::sqrt(per_sample_rate(t) * metric(x)));
  }
  bool state_dependent_diffusion() const override { return true; }
  at::Tensor diffusion_divergence(const at::Tensor& x, const at::Tensor& t) const override {
    return per_sample_rate(t) * metric_divergence(x);
  }
  at::Tensor prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                          at::Generator& generator) const override {
    return at::randn({n, dim}, generator, options);
  }
  at::Tensor prior_log_prob(const at::Tensor& xT) const override {
    return -0.5 * xT.pow(2).sum(1) - 1.8378770664093453;
  }
  TimeRange time_range() const override { return {}; }

 private:
  at::Tensor per_sample_rate(const at::Tensor& t) const { return rate(t).reshape({-1, 1}); }
  double a_, sign_;
};

// The forward SDE of a process as a term (Euler-Maruyama integrates it from 0 to t).
class ForwardSde : public SdeTerm {
 public:
  explicit ForwardSde(std::shared_ptr<const Process> process) : process_(std::move(process)) {}
  std::string describe() const override { return "forward SDE of " + process_->name(); }
  at::Tensor drift(const at::Tensor& t, const at::Tensor& y) const override {
    count_evaluation();
    return process_->drift(y, t);
  }
  Diffusion diffusion(const at::Tensor& t, const at::Tensor& y) const override { return process_->diffusion(y, t); }
  NoiseType noise_type() const override { return NoiseType::diagonal; }

 private:
  std::shared_ptr<const Process> process_;
};

// Pointwise Fokker-Planck right-hand side for p = N(0, I) by autograd:
// dp/dt = -div(f p) + 1/2 sum_ij d_i d_j ((G G^T)_ij p), with the diagonal G G^T of the process above.
at::Tensor fokker_planck_residual(const SineMetricProcess& process, const at::Tensor& x0, double time) {
  const auto x = x0.clone().requires_grad_(true);
  const auto t = at::full({x.size(0)}, time, f64);
  const auto p = at::exp(-0.5 * x.pow(2).sum(1)) / (2.0 * M_PI);
  const auto g = process.diffusion(x, t).value;   // [B, 2] diagonal of G
  const auto gg_p = g.pow(2) * p.unsqueeze(1);       // (G G^T)_ii p
  // Probability current J_i = f_i p - 1/2 d_i ((G G^T)_ii p).
  at::Tensor current = process.drift(x, t) * p.unsqueeze(1);
  std::vector<at::Tensor> columns;
  for (int64_t i = 0; i < 2; ++i) {
    const auto grad = torch::autograd::grad({gg_p.select(1, i).sum()}, {x}, {}, true, true)[0];
    columns.push_back(current.select(1, i) - 0.5 * grad.select(1, i));
  }
  at::Tensor residual = at::zeros({x.size(0)}, f64);
  for (int64_t i = 0; i < 2; ++i) {
    const auto grad = torch::autograd::grad({columns[i].sum()}, {x}, {}, true, true)[0];
    residual = residual - grad.select(1, i);
  }
  return residual.detach();
}

// The pushforward of VP through x = sinh(z) (seeds-indm.md section 6): by Ito, with beta = beta(t),
// dx = beta (x / 2 - sqrt(1 + x^2) asinh(x) / 2) dt + sqrt(beta (1 + x^2)) dW (elementwise), so G G^T = diag(beta (1 + x^2))
// and div(G G^T) = 2 beta x. The data-space density is p_t(x) = p_t^z(asinh x) prod (1 + x_i^2)^{-1/2}.
class SinhPushforward : public Process {
 public:
  std::string name() const override { return "vp-sinh"; }
  at::Tensor drift(const at::Tensor& x, const at::Tensor& t) const override {
    return per_sample(vp_.beta(t)) * (0.5 * x - 0.5 * at::sqrt(1.0 + x * x) * at::asinh(x));
  }
  Diffusion diffusion(const at::Tensor& x, const at::Tensor& t) const override {
    return Diffusion::diagonal(at::sqrt(per_sample(vp_.beta(t)) * (1.0 + x * x)));
  }
  bool state_dependent_diffusion() const override { return true; }
  at::Tensor diffusion_divergence(const at::Tensor& x, const at::Tensor& t) const override {
    return 2.0 * per_sample(vp_.beta(t)) * x;
  }
  at::Tensor prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                          at::Generator& generator) const override {
    return at::sinh(at::randn({n, dim}, generator, options));
  }
  at::Tensor prior_log_prob(const at::Tensor& xT) const override {
    const auto z = at::asinh(xT);
    return -0.5 * z.pow(2).sum(1) - 0.5 * xT.size(1) * 1.8378770664093453 - 0.5 * at::log1p(xT * xT).sum(1);
  }
  TimeRange time_range() const override { return vp_.time_range(); }

 private:
  VpProcess vp_;
};

// The exact score and density of a VP mixture pushed through sinh.
class SinhMixtureScore : public ScoreModel {
 public:
  explicit SinhMixtureScore(std::shared_ptr<const GaussianMixture> mixture)
      : latent_(std::move(mixture), make_linear_process("vp", {})) {}
  at::Tensor score(const at::Tensor& x, const at::Tensor& t) const override {
    const auto root = at::sqrt(1.0 + x * x);
    return latent_.score(at::asinh(x), t) / root - x / (root * root);
  }
  int64_t dim() const override { return latent_.dim(); }
  bool has_log_prob() const override { return true; }
  at::Tensor marginal_log_prob(const at::Tensor& x, const at::Tensor& t) const override {
    return latent_.log_prob(at::asinh(x), t) - 0.5 * at::log1p(x * x).sum(1);
  }

 private:
  GaussianMixtureScore latent_;
};

// The probability-flow likelihood with the exact prior (the oracle runs of this suite).
LikelihoodOptions exact_prior_options(const std::string& solver, double tol, TraceMethod trace, double eps) {
  LikelihoodOptions options;
  options.ode.solver = solver;
  options.ode.rtol = options.ode.atol = tol;
  options.trace = trace;
  options.eps = eps;
  options.prior = PriorKind::exact;
  return options;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(matrix_processes)

BOOST_AUTO_TEST_CASE(pushforward_through_sinh_gives_the_exact_data_space_density) {
  // A state-dependent diagonal G: the probability flow's -1/2 div(G G^T) term is what makes the PF-ODE NLL (exact
  // trace by autograd, exact prior) equal the closed-form -log p_eps in data space.
  const auto mixture = builtin_model("gmm2d")->mixture();
  const auto process = std::make_shared<SinhPushforward>();
  const auto model = std::make_shared<SinhMixtureScore>(mixture);
  auto generator = make_generator(at::kCPU, 95);
  const auto x = at::sinh(mixture->sample(24, generator, f64).first);
  // The score is the gradient of the log-density (central differences).
  const auto t = at::full({24}, 0.3, f64);
  auto fd = at::zeros_like(x);
  for (int64_t i = 0; i < 2; ++i) {
    auto e = at::zeros_like(x);
    e.select(1, i).fill_(1e-5);
    fd.select(1, i).copy_((model->marginal_log_prob(x + e, t) - model->marginal_log_prob(x - e, t)) / 2e-5);
  }
  BOOST_TEST(max_abs(model->score(x, t) - fd) < 1e-6 * (1.0 + max_abs(fd)));
  const auto options = exact_prior_options("dopri5", 1e-8, TraceMethod::exact, 1e-3);
  auto g = make_generator(at::kCPU, 0);
  const auto result = negative_log_likelihood(process, model, x, options, DataTransform{}, g);
  const auto exact = -model->marginal_log_prob(x, at::full({24}, options.eps, f64));
  BOOST_TEST_MESSAGE("sinh pushforward: max |nll - exact| = " << max_abs(result.nll - exact));
  BOOST_TEST(max_abs(result.nll - exact) < 1e-6);
  // Samplers that omit div(G G^T) refuse the process.
  SamplingRequest request;
  request.process = process;
  request.model = model;
  request.steps = 10;
  request.n = 4;
  for (const std::string solver : {"reverse-diffusion", "pc"}) {
    request.solver = solver;
    BOOST_CHECK_THROW(sample(request, nullptr), InputError);
  }
  // Euler-Maruyama on the reverse SDE (which carries div(G G^T)) samples it: asinh of the samples is the latent
  // mixture at eps (within Monte-Carlo error after EM's bias at 1000 steps, measured below 2 SE on VP).
  request.solver = "em";
  request.steps = 1000;
  request.n = 20000;
  request.seed = 3;
  const auto samples = at::asinh(sample(request, nullptr).y);
  test::check_against_mixture(samples, *mixture, test::exact_reference(*mixture, 400000), "sinh em", 0.0, 0.0);
}

BOOST_AUTO_TEST_CASE(state_dependent_metric_keeps_the_standard_normal_stationary) {
  auto generator = make_generator(at::kCPU, 71);
  const auto x = at::randn({256, 2}, generator, f64) * 2.0;
  const SineMetricProcess right(0.8), wrong(0.8, -1.0), dropped(0.8, 0.0);
  for (const double time : {0.0, 0.4, 1.0}) {
    const double r = max_abs(fokker_planck_residual(right, x, time));
    BOOST_TEST_MESSAGE("t = " << time << ": Fokker-Planck residual " << r << " (+1/2 div D), "
                              << max_abs(fokker_planck_residual(wrong, x, time)) << " (-1/2 div D), "
                              << max_abs(fokker_planck_residual(dropped, x, time)) << " (no div D)");
    BOOST_TEST(r < 1e-13);
    // The sign matters: dropping or flipping +1/2 div D breaks stationarity.
    BOOST_TEST(max_abs(fokker_planck_residual(wrong, x, time)) > 1e-3);
    BOOST_TEST(max_abs(fokker_planck_residual(dropped, x, time)) > 1e-3);
  }
  // The reverse SDE and the probability flow carry div(G G^T). With the exact score of N(0, I), s = -x:
  // PF field f - 1/2 beta' div D + 1/2 beta' D x = 0 (nothing moves), reverse drift f - beta' div D + beta' D x = -f.
  const auto process = std::make_shared<SineMetricProcess>(0.8);
  class StandardNormal : public ScoreModel {
   public:
    at::Tensor score(const at::Tensor& x, const at::Tensor& t) const override {
      (void)t;
      return -x;
    }
    int64_t dim() const override { return 2; }
  };
  const auto model = std::make_shared<StandardNormal>();
  const ProbabilityFlow flow(process, model);
  const auto t = at::full({x.size(0)}, 0.5, f64);
  BOOST_TEST(max_abs(flow(t, x)) < 1e-13);
  // Reverse SDE drift: f - div(G G^T) - G G^T s = -(forward drift of the time reversal) = -f for a stationary law.
  const ReverseSde reverse(process, model);
  BOOST_TEST(max_abs(reverse.drift(t, x) + process->drift(x, t)) < 1e-13);
}

BOOST_AUTO_TEST_CASE(euler_maruyama_keeps_the_moments_and_has_weak_order_one) {
  // From N(0, I) the law stays N(0, I) exactly; Euler-Maruyama's bias in E[x1^2] shrinks like its step (weak
  // order 1). n = 200000 paths: the standard error of E[x1^2] is sqrt(2 / n) = 0.0032.
  const auto process = std::make_shared<SineMetricProcess>(0.8);
  const ForwardSde term(process);
  const int64_t n = 200000;
  std::vector<double> h, error, se;
  double fine_variance = 0.0;
  for (const int64_t steps : {8, 16, 32, 256}) {
    auto generator = make_generator(at::kCPU, 80 + steps);
    const auto x0 = at::randn({n, 2}, generator, f64);
    auto euler = std::make_unique<EulerMaruyama>();
    FixedGrid grid(uniform_grid(0.0, 0.5, steps));
    GridIncrements brownian(generator, 2);
    IntegrateOptions options;
    options.generator = generator;
    options.brownian = &brownian;
    options.denoise_last = false;
    const auto y = integrate(term, *euler, grid, x0, 0.0, 0.5, SaveAt{}, nullptr, options).y;
    const auto second = y.pow(2).mean(0);
    const auto mean = y.mean(0);
    const double e1 = second[0].item<double>() - 1.0;
    BOOST_TEST_MESSAGE(steps << " steps: E[x1^2] - 1 = " << e1 << ", E[x2^2] - 1 = " << second[1].item<double>() - 1.0
                             << ", mean " << mean[0].item<double>() << ", " << mean[1].item<double>());
    if (steps == 256) {
      fine_variance = e1;
      // The fine run: every moment at Monte-Carlo resolution (4 SE) after the EM bias (~0.02 x 8/256).
      BOOST_TEST(std::abs(mean[0].item<double>()) < 4.0 * std::sqrt(1.0 / n));
      BOOST_TEST(std::abs(mean[1].item<double>()) < 4.0 * std::sqrt(1.0 / n));
      BOOST_TEST(std::abs(e1) < 4.0 * std::sqrt(2.0 / n) + 0.02);
      BOOST_TEST(std::abs(second[1].item<double>() - 1.0) < 4.0 * std::sqrt(2.0 / n) + 0.02);
      const double cross = (y.select(1, 0) * y.select(1, 1)).mean().item<double>();
      BOOST_TEST(std::abs(cross) < 4.0 * std::sqrt(1.0 / n));
      continue;
    }
    h.push_back(0.5 / static_cast<double>(steps));
    error.push_back(std::abs(e1));
    se.push_back(std::sqrt(2.0 / n));
  }
  (void)fine_variance;
  const double slope = test::log_log_slope(h, error);
  const double slope_sd = test::log_log_slope_sd(h, error, se);
  BOOST_TEST_MESSAGE("EM weak order on E[x1^2]: " << slope << " +- " << slope_sd);
  BOOST_TEST(slope > 0.8 - 3.0 * slope_sd);
  BOOST_TEST(slope < 1.2 + 3.0 * slope_sd);
}

BOOST_AUTO_TEST_CASE(fp_with_identity_metric_and_no_rotation_is_vp) {
  const int64_t n = 3;
  const auto fp = make_fp_process(at::eye(n, f64), at::zeros({n, n}, f64), 0.1, 20.0, TimeRange{});
  const auto vp = make_linear_process("vp", {});
  const auto mixture = random_mixture(n, 3, 5);
  const auto fp_score = make_mixture_score(mixture, fp);
  const auto vp_score = make_mixture_score(mixture, vp);
  auto generator = make_generator(at::kCPU, 1);
  const auto x = at::randn({64, n}, generator, f64) * 1.5;
  for (const double time : {1e-3, 0.05, 0.3, 1.0}) {
    const auto t = at::full({64}, time, f64);
    const auto E = fp->transition_matrix(t);
    BOOST_TEST(max_abs(E - vp->alpha(t).reshape({-1, 1, 1}) * at::eye(n, f64)) < 1e-13);
    const auto m = fp->marginal(x, t).value();
    const auto cov = at::matmul(m.std, m.std.transpose(-1, -2));
    BOOST_TEST(max_abs(cov - vp->sigma(t).pow(2).reshape({-1, 1, 1}) * at::eye(n, f64)) < 1e-12);
    BOOST_TEST(max_abs(fp->drift(x, t) - vp->drift(x, t)) < 1e-13);
    BOOST_TEST(max_abs(fp->diffusion(x, t).apply_squared(x) - vp->diffusion(x, t).apply_squared(x)) < 1e-12);
    BOOST_TEST(max_abs(fp_score->marginal_log_prob(x, t) - vp_score->marginal_log_prob(x, t)) < 1e-10);
    BOOST_TEST(max_abs(fp_score->score(x, t) - vp_score->score(x, t)) < 1e-10);
    const auto [s_fp, div_fp] = fp_score->score_and_weighted_divergence(x, t, fp->diffusion(x, t));
    const auto [s_vp, div_vp] = vp_score->score_and_weighted_divergence(x, t, vp->diffusion(x, t));
    BOOST_TEST(max_abs(div_fp - div_vp) < 1e-8 * (1.0 + max_abs(div_vp)));
  }
  BOOST_TEST(max_abs(fp->prior_log_prob(x) - vp->prior_log_prob(x)) < 1e-12);
}

BOOST_AUTO_TEST_CASE(transition_covariance_solves_the_lyapunov_ode_and_the_papers_formula_does_not) {
  // A random 3-D (D, omega) that do not commute: the paper's I - expm(-B D) is exact only when they do.
  const auto [D, omega] = random_fp_matrices(3, 11, 0.5, 1.0);
  const auto commutator = at::matmul(D, omega) - at::matmul(omega, D);
  BOOST_TEST_MESSAGE("|[D, omega]| = " << max_abs(commutator));
  BOOST_TEST(max_abs(commutator) > 0.1);
  const auto fp = make_fp_process(D, omega, 0.1, 20.0, TimeRange{});
  const auto A = fp->drift_matrix();
  auto generator = make_generator(at::kCPU, 3);
  const auto a = at::randn({3, 3}, generator, f64);
  const auto sigma0 = at::matmul(a, a.transpose(0, 1)) * 0.3 + 0.05 * at::eye(3, f64);
  double worst_paper = 0.0;
  for (const double time : {0.05, 0.1, 0.2, 0.4}) {
    const auto t = at::full({1}, time, f64);
    const double B = fp->integrated_rate(t).item<double>();
    const auto E = fp->transition_matrix(t);
    for (const auto& initial : {at::zeros({3, 3}, f64), sigma0}) {
      const auto closed = fp->transition_covariance(E, initial)[0];
      const auto ode = integrate_lyapunov(A, D, initial, B, 4000);
      BOOST_TEST(max_abs(closed - ode) < 1e-10, "t = " << time << ": |closed form - Lyapunov ODE| = " << max_abs(closed - ode));
    }
    const auto paper = at::eye(3, f64) - at::linalg_matrix_exp(-B * D);
    const auto from_point = integrate_lyapunov(A, D, at::zeros({3, 3}, f64), B, 4000);
    worst_paper = std::max(worst_paper, max_abs(paper - from_point));
  }
  BOOST_TEST_MESSAGE("paper's covariance formula off by up to " << worst_paper);
  BOOST_TEST(worst_paper > 0.02);
  // The mean: E_t solves dE/dB = A E (same RK4 on the linear ODE, checked through the first column).
  const auto t = at::full({1}, 0.3, f64);
  const double B = fp->integrated_rate(t).item<double>();
  auto E = at::eye(3, f64);
  const int steps = 4000;
  const double h = B / steps;
  for (int i = 0; i < steps; ++i) {
    const auto k1 = at::matmul(A, E);
    const auto k2 = at::matmul(A, E + 0.5 * h * k1);
    const auto k3 = at::matmul(A, E + 0.5 * h * k2);
    const auto k4 = at::matmul(A, E + h * k3);
    E = E + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
  }
  BOOST_TEST(max_abs(E - fp->transition_matrix(t)[0]) < 1e-11);
}

BOOST_AUTO_TEST_CASE(mixture_score_and_flow_divergence_agree_with_autograd) {
  struct Case {
    std::shared_ptr<MatrixLinearProcess> process;
    std::shared_ptr<GaussianMixture> mixture;
  };
  const std::vector<Case> cases = {{random_fp(2, 21), random_mixture(2, 3, 22)},
                                   {random_fp(5, 23), random_mixture(5, 4, 24)},
                                   {make_cld_process(), random_mixture(2, 3, 25)}};
  for (const auto& c : cases) {
    const auto model = make_mixture_score(c.mixture, c.process);
    const auto flow = std::make_shared<ProbabilityFlow>(c.process, model);
    BOOST_REQUIRE(flow->has_analytic_divergence());
    auto generator = make_generator(at::kCPU, 9);
    const int64_t n = model->dim();
    const auto x = at::randn({6, n}, generator, f64);
    for (const double time : {0.01, 0.2, 0.9}) {
      const auto t = at::full({6}, time, f64);
      // Score vs the gradient of the log-density.
      const auto xg = x.clone().requires_grad_(true);
      const auto log_p = model->marginal_log_prob(xg, t);
      BOOST_REQUIRE(!log_p.requires_grad() || true);
      // The mixture computes in float64 without autograd: differentiate by central differences instead.
      const double h = 1e-5;
      auto fd_score = at::zeros_like(x);
      auto fd_div = at::zeros({6}, f64);
      const auto [value, divergence] = flow->value_and_divergence(t, x);
      for (int64_t i = 0; i < n; ++i) {
        auto e = at::zeros_like(x);
        e.select(1, i).fill_(h);
        fd_score.select(1, i).copy_((model->marginal_log_prob(x + e, t) - model->marginal_log_prob(x - e, t)) / (2 * h));
        fd_div += ((*flow)(t, x + e) - (*flow)(t, x - e)).select(1, i) / (2 * h);
      }
      const auto score = model->score(x, t);
      BOOST_TEST(max_abs(score - fd_score) < 1e-6 * (1.0 + max_abs(score)),
                 c.process->name() << " t = " << time << ": |score - FD| = " << max_abs(score - fd_score));
      BOOST_TEST(max_abs(divergence - fd_div) < 1e-5 * (1.0 + max_abs(divergence)),
                 c.process->name() << " t = " << time << ": |div v - FD| = " << max_abs(divergence - fd_div));
      BOOST_TEST(max_abs(value - (*flow)(t, x)) < 1e-12 * (1.0 + max_abs(value)));
    }
  }
}

BOOST_AUTO_TEST_CASE(fp_probability_flow_nll_equals_the_exact_density) {
  // Random non-commuting (rinv, omega) in 2-D and 8-D, several mixtures: the PF-ODE NLL with the exact
  // prior must equal -log p_eps to the solver's tolerance (target: 1e-6 nats at rtol = atol = 1e-8).
  struct Case {
    int64_t dim;
    uint64_t seed;
  };
  for (const auto& c : {Case{2, 31}, Case{2, 32}, Case{8, 33}}) {
    const auto process = random_fp(c.dim, c.seed);
    const auto mixture = random_mixture(c.dim, 3, c.seed + 100);
    const auto model = make_mixture_score(mixture, process);
    auto generator = make_generator(at::kCPU, c.seed + 200);
    const auto x = mixture->sample(24, generator, f64).first;
    for (const std::string solver : {"dopri5", "arkode-dp"}) {
      for (const auto trace : {TraceMethod::analytic, TraceMethod::exact}) {
        if (trace == TraceMethod::exact && (solver != "dopri5" || c.dim > 2)) continue;
        const auto options = exact_prior_options(solver, 1e-8, trace, 1e-3);
        auto g = make_generator(at::kCPU, 0);
        const auto result = negative_log_likelihood(process, model, x, options, DataTransform{}, g);
        const auto exact = -model->marginal_log_prob(x, at::full({x.size(0)}, options.eps, f64));
        const double error = max_abs(result.nll - exact);
        BOOST_TEST_MESSAGE("fp " << c.dim << "-D seed " << c.seed << " " << solver << " " << to_string(trace)
                                 << ": max |nll - exact| = " << error);
        // dopri5 and SUNDIALS' ARKODE Dormand-Prince: the 1e-6 target. (CVODE-BDF measured up to 8.3e-6 here,
        // K ~ 160 in K tol (1 + |log p|): docs/testing.md.)
        BOOST_TEST(error < 1e-6, "fp " << c.dim << "-D " << solver << ": " << error);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(cld_moments_match_critical_damping) {
  const double M = 0.25, Gamma = 1.0, gamma = 0.04, beta = 4.0;
  const auto cld = make_cld_process(M, Gamma, gamma, beta);
  const auto A = cld->drift_matrix();
  const double lambda = -1.0 / std::sqrt(M);   // the double eigenvalue at Gamma^2 = 4 M
  const auto t = at::tensor({0.01, 0.1, 0.5, 1.0}, f64);
  const auto E = cld->transition_matrix(t);
  const auto eye = at::eye(2, f64);
  const auto initial = at::diag(at::tensor({0.0, gamma * M}, f64));
  for (int64_t i = 0; i < t.size(0); ++i) {
    const double B = beta * t[i].item<double>();
    const auto closed = std::exp(lambda * B) * (eye + (A - lambda * eye) * B);
    BOOST_TEST(max_abs(E[i] - closed) < 1e-13);
    const auto P = cld->transition_covariance(E.narrow(0, i, 1), initial)[0];
    BOOST_TEST(max_abs(P - integrate_lyapunov(A, cld->noise_matrix(), initial, B, 4000)) < 1e-11);
  }
  // The stationary law: S = diag(1, M), and the prior is N(0, S (x) I_d).
  auto generator = make_generator(at::kCPU, 4);
  const auto xT = cld->prior_sample(200000, 4, f64, generator);
  const auto variance = xT.pow(2).mean(0);
  BOOST_TEST(max_abs(variance - at::tensor({1.0, 1.0, M, M}, f64)) < 4 * std::sqrt(2.0 / 200000) * 1.0);
  // Diffusion only on the velocity half, from a Brownian motion of the data dimension: G = [0; sqrt(2 Gamma beta) I_d]
  // of shape [2d, d], applied and squared as the dense matrix would be.
  BOOST_TEST(cld->noise_dim(4) == 2);
  BOOST_TEST(cld->scored_dim(4) == 2);
  const auto g = cld->diffusion(xT.narrow(0, 0, 3), at::full({3}, 0.5, f64));
  BOOST_TEST(static_cast<int>(g.kind) == static_cast<int>(Diffusion::Kind::partial));
  BOOST_TEST((g.value.sizes() == at::IntArrayRef{3, 2}));
  BOOST_TEST(g.offset == 2);
  BOOST_TEST(max_abs(g.value - std::sqrt(2.0 * Gamma * beta)) < 1e-14);
  const auto dense = at::cat({at::zeros({2, 2}, f64), std::sqrt(2.0 * Gamma * beta) * at::eye(2, f64)}, 0);   // [4, 2]
  const auto dw = at::randn({3, 2}, generator, f64), v = at::randn({3, 4}, generator, f64);
  BOOST_TEST(max_abs(g.apply(dw) - dw.matmul(dense.t())) < 1e-14);
  BOOST_TEST(max_abs(g.apply_squared(v) - v.matmul(dense.matmul(dense.t()))) < 1e-13);
  const ReverseSde reverse(cld, make_mixture_score(random_mixture(2, 2, 5), cld));
  BOOST_TEST(reverse.noise_dim(4) == 2);
  // FP has noise on every coordinate.
  BOOST_TEST(random_fp(3, 7)->noise_dim(3) == 3);
}

BOOST_AUTO_TEST_CASE(cld_joint_nll_equals_the_exact_joint_density) {
  const auto cld = make_cld_process();
  const auto mixture = builtin_model("gmm2d")->mixture();
  const auto model = make_mixture_score(mixture, cld);
  BOOST_TEST(model->dim() == 4);
  auto generator = make_generator(at::kCPU, 41);
  const auto x = cld->augment(mixture->sample(24, generator, f64).first, generator);
  for (const double eps : {1e-3, 1e-2}) {
    const auto options = exact_prior_options("dopri5", 1e-8, TraceMethod::analytic, eps);
    auto g = make_generator(at::kCPU, 0);
    // The joint density of the state (x, v) itself: the state-level likelihood.
    const auto result = model_log_likelihood(cld, model, x, options, g);
    const auto exact = -model->marginal_log_prob(x, at::full({x.size(0)}, eps, f64));
    BOOST_TEST_MESSAGE("cld eps = " << eps << ": max |nll - exact| = " << max_abs(result.nll - exact));
    BOOST_TEST(max_abs(result.nll - exact) < 1e-6);
  }
}

BOOST_AUTO_TEST_CASE(cld_data_bound_equals_its_expectation) {
  // -log p(x) <= E_v[-log p_eps(x, v)] - H(N(0, gamma M I_d)): the PF-ODE estimate over K velocity draws per row
  // against the same expectation from the exact joint density (200000 draws: its own error is ~3 % of the test's).
  const auto cld = make_cld_process();
  const auto mixture = builtin_model("gmm2d")->mixture();
  const auto model = make_mixture_score(mixture, cld);
  auto generator = make_generator(at::kCPU, 51);
  const int64_t rows = 4, K = 200;
  const auto x = mixture->sample(rows, generator, f64).first;
  const auto options = exact_prior_options("dopri5", 1e-7, TraceMethod::analytic, 1e-3);
  auto g = make_generator(at::kCPU, 52);
  const auto repeated = x.repeat_interleave(K, 0);
  const auto bound = negative_log_likelihood(cld, model, repeated, options, DataTransform{}, g).nll.reshape({rows, K});
  const double H = cld->augmented_entropy(2);
  BOOST_TEST(std::abs(H - std::log(2.0 * M_PI * std::exp(1.0) * 0.04 * 0.25)) < 1e-12);
  const auto t = at::full({200000}, options.eps, f64);
  for (int64_t i = 0; i < rows; ++i) {
    const auto states = cld->augment(x.narrow(0, i, 1).expand({200000, 2}), generator);
    const double expected = (-model->marginal_log_prob(states, t)).mean().item<double>() - H;
    const double mean = bound[i].mean().item<double>();
    const double se = bound[i].std().item<double>() / std::sqrt(static_cast<double>(K));
    const double log_p = mixture->log_prob(x.narrow(0, i, 1)).item<double>();
    BOOST_TEST_MESSAGE("row " << i << ": bound " << mean << " +- " << se << ", expectation " << expected
                              << ", -log p_0(x) " << -log_p);
    BOOST_TEST(std::abs(mean - expected) < 4.0 * se + 1e-5);
    // A bound: at or above -log p_0(x) up to the eps smoothing (the joint at eps is p_0 convolved over ~1e-3).
    BOOST_TEST(expected > -log_p - 0.01);
  }
}

BOOST_AUTO_TEST_CASE(cld_samples_data_half_matches_the_mixture) {
  const auto cld = make_cld_process();
  const auto mixture = builtin_model("gmm2d")->mixture();
  const auto model = make_mixture_score(mixture, cld);
  // The reference is the exact data-half marginal at eps (the samplers stop there): the x-block of the state's
  // components at eps.
  const double eps = cld->time_range().eps;
  const auto [means, covariances] =
      std::dynamic_pointer_cast<const MatrixMixtureScore>(model)->components(at::full({1}, eps, f64));
  const GaussianMixture at_eps(mixture->weights(), means[0].narrow(1, 0, 2),
                               covariances[0].narrow(1, 0, 2).narrow(2, 0, 2));
  const auto reference = test::exact_reference(at_eps, 400000);
  for (const auto& [solver, steps] : {std::pair{std::string("rk4"), int64_t{200}}, {"em", 1000}, {"reverse-diffusion", 1000}}) {
    SamplingRequest request;
    request.process = cld;
    request.model = model;
    request.solver = solver;
    request.steps = steps;
    request.n = 20000;
    request.seed = 7;
    const auto solution = sample(request, nullptr);
    const auto samples = cld->data_part(solution.y);
    BOOST_TEST(samples.size(1) == 2);
    test::check_against_mixture(samples, at_eps, reference, "cld " + solver, 0.0, 0.0);
  }
}

BOOST_AUTO_TEST_CASE(samplers_that_need_a_score_everywhere_refuse_cld) {
  const auto cld = make_cld_process();
  const auto model = make_mixture_score(builtin_model("gmm2d")->mixture(), cld);
  for (const std::string solver : {"pc", "ddim", "dpm2", "ddim-stochastic"}) {
    SamplingRequest request;
    request.process = cld;
    request.model = model;
    request.solver = solver;
    request.steps = 10;
    request.n = 4;
    BOOST_CHECK_THROW(sample(request, nullptr), InputError);
  }
  SamplingRequest request;
  request.process = cld;
  request.model = model;
  request.solver = "em";
  request.grid = "logsnr";
  request.steps = 10;
  request.n = 4;
  BOOST_CHECK_THROW(sample(request, nullptr), InputError);
}

BOOST_AUTO_TEST_CASE(fp_matrices_are_validated) {
  const auto eye = at::eye(2, f64);
  const auto zero = at::zeros({2, 2}, f64);
  const auto bad = [&](const at::Tensor& rinv, const at::Tensor& omega, const std::string& message) {
    test::expect_input_error_message([&] { (void)make_process("fp", {}, {{"rinv", rinv}, {"omega", omega}}); }, message);
  };
  bad(at::tensor({1.0, 0.5, 0.0, 1.0}, f64).reshape({2, 2}), zero, "rinv: not symmetric");
  bad(at::tensor({1.0, 2.0, 2.0, 1.0}, f64).reshape({2, 2}), zero, "rinv: not positive-definite");
  bad(eye, at::tensor({0.0, 1.0, 1.0, 0.0}, f64).reshape({2, 2}), "omega: not antisymmetric");
  bad(eye, at::zeros({3, 3}, f64), "omega: shape [3, 3] does not match");
  bad(at::full({2, 2}, std::nan(""), f64), zero, "rinv: contains NaN");
  bad(at::zeros({2, 3}, f64), zero, "rinv: expected a square matrix");
  test::expect_input_error_message([&] { (void)make_process("fp", {}, {{"rinv", eye}}); }, "missing dataset 'omega'");
  test::expect_input_error_message([&] { (void)make_process("cld", {{"M", -1.0}}); }, "M must be positive");
  test::expect_input_error_message([&] { (void)make_process("nope", {}); }, "unknown process 'nope'");
}

BOOST_AUTO_TEST_CASE(commands_sample_and_evaluate_fp_and_cld_mixture_models) {
  const auto dir = test::scratch_dir("matrix_processes_cli");
  const auto mixture = builtin_model("gmm2d")->mixture();
  const auto fp = random_fp(2, 61);
  save_gmm_model((dir / "fp.h5").string(), fp, mixture);
  save_gmm_model((dir / "cld.h5").string(), make_cld_process(), mixture);
  // The model files round-trip: the same process (parameters and matrices).
  const auto loaded = load_model((dir / "fp.h5").string());
  BOOST_TEST(loaded->process()->name() == "fp");
  BOOST_TEST(max_abs(loaded->process()->parameter_tensors().at("rinv") - fp->parameter_tensors().at("rinv")) == 0.0);
  BOOST_TEST(load_model((dir / "cld.h5").string())->dim() == 4);
  auto generator = make_generator(at::kCPU, 62);
  const auto x = mixture->sample(16, generator, f64).first;
  save_data((dir / "x.h5").string(), x);
  // nll --prior exact: FP gives the density to the solver's tolerance, CLD a bound with nll_kind = bound.
  for (const std::string name : {"fp", "cld"}) {
    const auto out = dir / (name + "-nll.h5");
    const auto result = test::run_cli("nll --model " + (dir / (name + ".h5")).string() + " --data " +
                                      (dir / "x.h5").string() + " --prior exact --trace analytic --rtol 1e-8 --atol 1e-8 "
                                      "--eps 1e-3 --quiet --out " + out.string() +
                                      (name == "cld" ? " --velocity-samples 4" : ""));
    BOOST_REQUIRE_MESSAGE(result.exit_status == 0, result.output);
    const auto file = read_nll_file(out.string());
    BOOST_TEST(file.complete);
    BOOST_TEST(file.rows == 16);
    BOOST_TEST(file.attributes.at("nll_kind") == (name == "fp" ? "density" : "bound"));
    const auto model = load_model((dir / (name + ".h5")).string());
    if (name == "fp") {
      const auto exact = -model->score()->marginal_log_prob(x, at::full({16}, 1e-3, f64));
      BOOST_TEST(max_abs(file.nll - exact) < 1e-6);
    } else {
      // Each row's bound is above -log p_0(x) minus the eps smoothing, and finite.
      BOOST_TEST(at::isfinite(file.nll).all().item<bool>());
      BOOST_TEST(file.attributes.at("velocity_samples") == "4");
    }
  }
  // sample: the data half for CLD, with the state attribute; refusals name the sampler.
  for (const std::string solver : {"em", "reverse-diffusion", "heun"}) {
    const auto out = dir / ("cld-" + solver + ".h5");
    const auto result = test::run_cli("sample --model " + (dir / "cld.h5").string() + " --solver " + solver +
                                      " --steps 50 --n 64 --save-every 25 --quiet --out " + out.string());
    BOOST_REQUIRE_MESSAGE(result.exit_status == 0, result.output);
    h5::File file(out.string(), h5::Mode::read);
    BOOST_TEST((file.dataset_shape("samples") == std::vector<int64_t>{64, 2}));
    BOOST_TEST(file.group("trajectory").dataset_shape("x")[2] == 4);
    BOOST_TEST(file.attribute_string("state").find("phase space") != std::string::npos);
  }
  const auto refused = dir / "refused.h5";
  test::expect_input_error("sample --model " + (dir / "cld.h5").string() + " --solver pc --steps 10 --n 4 --out " +
                               refused.string(),
                           "needs a score on every coordinate", refused);
  test::expect_input_error("sample --model " + (dir / "fp.h5").string() + " --solver ddim --steps 10 --n 4 --out " +
                               refused.string(),
                           "needs a linear process", refused);
  test::expect_input_error("nll --model " + (dir / "fp.h5").string() + " --data " + (dir / "x.h5").string() +
                               " --velocity-samples 3 --out " + refused.string(),
                           "--velocity-samples applies to processes in phase space", refused);
  // Bad /process matrices: exit 2 naming the dataset.
  struct Bad {
    std::string label, message;
    at::Tensor rinv, omega;
  };
  const auto eye = at::eye(2, f64);
  const std::vector<Bad> bad = {
      {"asymmetric", "rinv: not symmetric", at::tensor({1.0, 0.3, 0.0, 1.0}, f64).reshape({2, 2}), at::zeros({2, 2}, f64)},
      {"symmetric-omega", "omega: not antisymmetric", eye, eye},
      {"shape", "omega: shape [3, 3] does not match", eye, at::zeros({3, 3}, f64)},
      {"nan", "rinv: contains NaN", at::full({2, 2}, std::nan(""), f64), at::zeros({2, 2}, f64)},
      {"not-square", "expected a square matrix", at::zeros({2, 3}, f64), at::zeros({2, 2}, f64)},
  };
  for (const auto& b : bad) {
    const auto path = dir / ("bad-" + b.label + ".h5");
    h5::write_atomically(path.string(), [&](const h5::File& file) {
      write_model_root(file, "gmm");
      const auto group = file.create_group("process");
      group.set_attribute("name", "fp");
      group.write_tensor("rinv", b.rinv);
      group.write_tensor("omega", b.omega);
      const auto g = file.create_group("gmm");
      g.write_tensor("weights", mixture->weights());
      g.write_tensor("means", mixture->means());
      g.write_tensor("covariances", mixture->covariances());
    });
    const auto out = dir / ("bad-" + b.label + "-out.h5");
    test::expect_input_error("sample --model " + path.string() + " --n 4 --steps 5 --out " + out.string(), b.message, out);
    test::expect_input_error("sample --model " + path.string() + " --n 4 --steps 5 --out " + out.string(), "/process", out);
  }
}

BOOST_AUTO_TEST_CASE(denoising_kernel_matches_the_marginal_and_the_exact_score_minimises_the_loss) {
  // The kernel's x_t has the exact marginal's moments; -L^T s_true round-trips through noise_to_score on the scored
  // coordinates; E[loss] at the true score is below a perturbed score's (both weightings).
  const auto mixture = builtin_model("gmm2d")->mixture();
  for (const auto& process : {std::static_pointer_cast<MatrixLinearProcess>(random_fp(2, 91)), make_cld_process()}) {
    const auto exact = std::dynamic_pointer_cast<const MatrixMixtureScore>(make_mixture_score(mixture, process));
    auto generator = make_generator(at::kCPU, 92);
    const int64_t n = 200000, state = process->state_dim(2);
    const auto x0 = mixture->sample(n, generator, f64).first;
    const double time = 0.3;
    const auto t = at::full({n}, time, f64);
    const auto z = at::randn({n, state}, generator, f64);
    const auto xt = process->perturb(x0, t, z);
    const auto [means, covariances] = exact->components(at::full({1}, time, f64));
    // Moments of the mixture of the components against the sample's.
    const auto w = mixture->weights();
    const auto mean = (w.unsqueeze(1) * means[0]).sum(0);
    const auto centred = means[0] - mean;
    const auto cov = (w.reshape({-1, 1, 1}) * (covariances[0] + centred.unsqueeze(2) * centred.unsqueeze(1))).sum(0);
    const auto sample_cov = at::matmul((xt - xt.mean(0)).t(), xt - xt.mean(0)) / (n - 1.0);
    BOOST_TEST(max_abs(xt.mean(0) - mean) < 4.0 * std::sqrt(at::diagonal(cov).max().item<double>() / n));
    BOOST_TEST(max_abs(sample_cov - cov) < 4.0 * std::sqrt(2.0 / n) * at::diagonal(cov).max().item<double>());
    // Round trip: eps = -L^T s gives back s where the model scores.
    const auto rows = xt.narrow(0, 0, 64);
    const auto tt = t.narrow(0, 0, 64);
    const auto score = exact->score(rows, tt);
    const auto L = process->kernel(tt).second;
    const auto eps = -process->apply_blocks(L.transpose(-1, -2), score);
    const auto back = process->noise_to_score(eps, tt);
    const int64_t first = process->score_on_every_coordinate() ? 0 : 2;
    BOOST_TEST(max_abs((back - score).narrow(1, first, state - first)) < 1e-10);
    if (first > 0) BOOST_TEST(max_abs(back.narrow(1, 0, first)) == 0.0);
    // The true score's loss is the minimum: a 5 % perturbation raises it by more than 4 SE.
    const auto all_eps = -process->apply_blocks(process->kernel(t).second.transpose(-1, -2), exact->score(xt, t));
    for (const bool likelihood : {false, true}) {
      const auto best = process->denoising_loss(all_eps, z, t, likelihood);
      const auto worse = process->denoising_loss(1.05 * all_eps, z, t, likelihood);
      const auto gap = worse - best;
      const double se = gap.std().item<double>() / std::sqrt(static_cast<double>(n));
      BOOST_TEST_MESSAGE(process->name() << (likelihood ? " likelihood" : " variance") << ": loss " << best.mean().item<double>()
                                         << ", perturbed excess " << gap.mean().item<double>() << " +- " << se);
      BOOST_TEST(gap.mean().item<double>() > 4.0 * se);
    }
  }
}

BOOST_AUTO_TEST_CASE(time_sampler_for_matrix_processes_is_unbiased) {
  // E_q[w(t) f(t)] = (1 / (T - eps)) int f dt for importance-sampled t (w = 1 / ((T - eps) q)); f(t) = t.
  for (const auto& process : {std::static_pointer_cast<Process>(random_fp(2, 93)), std::static_pointer_cast<Process>(make_cld_process())}) {
    const double eps = 1e-5;
    const TimeSampler sampler(process, Weighting::likelihood, true, eps);
    auto generator = make_generator(at::kCPU, 94);
    const auto [t, w] = sampler.sample(400000, generator);
    const auto values = w * t;
    const double mean = values.mean().item<double>(), se = values.std().item<double>() / std::sqrt(400000.0);
    BOOST_TEST_MESSAGE(process->name() << ": E[w t] = " << mean << " +- " << se << " (exact " << (1.0 + eps) / 2 << ")");
    BOOST_TEST(std::abs(mean - (1.0 + eps) / 2) < 4.0 * se);
    BOOST_TEST((t >= eps).all().item<bool>());
    // Uniform t with the variance weighting: weight 1.
    const TimeSampler uniform(process, Weighting::variance, true, eps);
    BOOST_TEST(max_abs(uniform.sample(100, generator).second - 1.0) == 0.0);
  }
}

// Trains an MLP on a 2-D Gaussian under fp and cld through the CLI and evaluates the held-out NLL against the
// true density: the KL estimate must be >= -4 SE (a density / a bound cannot beat the truth) and <= 0.1 + 4 SE.
BOOST_AUTO_TEST_CASE(train_fp_and_cld_networks_reach_the_gaussian_entropy) {
  const auto dir = test::scratch_dir("matrix_processes_train");
  const auto chol = at::tensor({1.0, 0.0, 0.6, std::sqrt(0.8 - 0.36)}, f64).reshape({2, 2});
  const auto mean = at::tensor({0.5, -0.3}, f64);
  auto draws = [&](int64_t n, uint64_t seed) {
    auto generator = make_generator(at::kCPU, seed);
    return at::randn({n, 2}, generator, f64).matmul(chol.t()) + mean;
  };
  const auto train_file = (dir / "train.h5").string(), test_file = (dir / "test.h5").string();
  save_data(train_file, draws(100000, 1));
  const auto x = draws(500, 2);
  save_data(test_file, x);
  const auto solved = at::linalg_solve_triangular(chol, (x - mean).t(), /*upper=*/false);
  const auto true_nll = 0.5 * solved.pow(2).sum(0) + std::log(2 * M_PI) + 0.5 * std::log(0.44);
  for (const std::string process : {"fp --fp-seed 3", "cld"}) {
    const auto model = (dir / (process.substr(0, 2) + ".h5")).string();
    const auto trained = test::run_cli("train --process " + process + " --data " + train_file +
                                       " --arch mlp --width 64 --depth 2 --embedding-dim 16 --lr 3e-3 --warmup 50 "
                                       "--weighting likelihood --ema 0.99 --iters 1500 --batch 256 --seed 0 --device cpu "
                                       "--checkpoint-every 1500 --quiet --out " + model);
    BOOST_REQUIRE_MESSAGE(trained.exit_status == 0, trained.output);
    const auto loaded = load_network_model(model);
    BOOST_TEST(loaded.process->name() == process.substr(0, process.find(' ')));
    BOOST_TEST(loaded.config.data_shape[0] == (process == "cld" ? 4 : 2));
    BOOST_TEST(loaded.config.output_dim == (process == "cld" ? 2 : 0));   // CLD's network predicts the velocity half
    const auto out = (dir / (process.substr(0, 2) + "-nll.h5")).string();
    const auto nll = test::run_cli("nll --model " + model + " --data " + test_file +
                                   " --solver dopri5 --rtol 1e-5 --atol 1e-5 --trace exact --eps 1e-5 --quiet --out " + out +
                                   (process == "cld" ? " --velocity-samples 4" : ""));
    BOOST_REQUIRE_MESSAGE(nll.exit_status == 0, nll.output);
    const auto result = read_nll_file(out);
    const auto d = result.nll - true_nll;
    const double kl = d.mean().item<double>(), kl_se = d.std().item<double>() / std::sqrt(500.0);
    BOOST_TEST_MESSAGE(process << ": held-out NLL " << result.nll.mean().item<double>() << ", true "
                               << true_nll.mean().item<double>() << ", KL estimate " << kl << " +- " << kl_se);
    BOOST_TEST(kl >= -4 * kl_se, process);
    BOOST_TEST(kl <= 0.1 + 4 * kl_se, process);
  }
  // Bad options: exit 2 naming them, no file.
  const auto bad = dir / "bad.h5";
  test::expect_input_error("train --process fp --data " + train_file + " --iters 2 --out " + bad.string(),
                           "--process fp needs its matrices", bad);
  test::expect_input_error("train --process cld --fp-seed 1 --data " + train_file + " --iters 2 --out " + bad.string(),
                           "--fp-seed applies to --process fp only", bad);
  test::expect_input_error("train --process cld --parameterisation score --data " + train_file + " --iters 2 --out " +
                               bad.string(),
                           "trains the noise parameterisation only", bad);
  test::expect_input_error("train --process-from " + (dir / "missing.h5").string() + " --data " + train_file +
                               " --iters 2 --out " + bad.string(),
                           "missing.h5", bad);
  // --process-from copies the matrices of another model (here the trained fp model: a 2 x 2 fp process).
  const auto copied = dir / "copied.h5";
  const auto run = test::run_cli("train --process-from " + (dir / "fp.h5").string() + " --data " + train_file +
                                 " --iters 20 --batch 64 --width 16 --depth 1 --checkpoint-every 20 --quiet --out " +
                                 copied.string());
  BOOST_REQUIRE_MESSAGE(run.exit_status == 0, run.output);
  BOOST_TEST(max_abs(load_network_model(copied.string()).process->parameter_tensors().at("rinv") -
                     load_network_model((dir / "fp.h5").string()).process->parameter_tensors().at("rinv")) == 0.0);
}

BOOST_AUTO_TEST_SUITE_END()
