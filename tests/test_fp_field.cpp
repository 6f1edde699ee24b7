// FP-Diffusion with a state-dependent metric D(x) (processes/fp_field.hpp), the simulated likelihood bound and the
// probability-flow regulariser (training/bound_terms.hpp; docs/fp_diffusion.md): the autograd divergence against an
// analytic field, pointwise Fokker-Planck stationarity of N(0, I), Monte-Carlo moments under simulation, the
// simulated bound against closed forms, the regulariser's gradient route, and the CLI.
#include <boost/test/unit_test.hpp>

#include <torch/csrc/autograd/autograd.h>
#include <torch/torch.h>

#include <cmath>

#include "core/device.hpp"
#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/model_file.hpp"
#include "io/nll_file.hpp"
#include "likelihood/likelihood.hpp"
#include "processes/fp_field.hpp"
#include "processes/fp_learned.hpp"
#include "processes/linear.hpp"
#include "processes/registry.hpp"
#include "support.hpp"
#include "training/bound_terms.hpp"
#include "training/objective.hpp"
#include "training/trainer.hpp"

using namespace sdeflow;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);
double max_abs(const at::Tensor& x) { return x.abs().max().item<double>(); }
constexpr double kLog2PiE = 2.8378770664093453;   // log(2 pi e)

// D(x) = diag(1 + a sin^2 x_1, 1) in 2-D: div D = (a sin 2 x_1, 0), sum_ij d_i d_j D_ij = 2 a cos 2 x_1.
class AnalyticMetric final : public MetricField {
 public:
  explicit AnalyticMetric(double a) : a_(a) {}
  int64_t dim() const override { return 2; }
  at::Tensor operator()(const at::Tensor& x) const override {
    const auto x1 = x.to(at::kCPU, at::kDouble).select(1, 0);
    const auto d11 = 1.0 + a_ * at::sin(x1).pow(2);
    const auto zero = at::zeros_like(d11), one = at::ones_like(d11);
    return at::stack({at::stack({d11, zero}, 1), at::stack({zero, one}, 1)}, 1);
  }

 private:
  double a_;
};

// A network metric with a non-trivial last layer (D varies with x), and an antisymmetric omega.
std::shared_ptr<MetricFpProcess> random_field_process(int64_t n, uint64_t seed, double omega_scale = 1.0) {
  auto fresh = NetworkMetric(n, 16, 0.1, seed);
  std::map<std::string, at::Tensor> tensors;
  auto generator = make_generator(at::kCPU, seed + 100);
  for (const auto& [key, value] : fresh.parameters()) tensors[key] = value.detach().clone();
  tensors["metric_w3"] = 0.6 * at::randn(tensors["metric_w3"].sizes(), generator, f64);
  tensors["metric_b3"] = 0.3 * at::randn(tensors["metric_b3"].sizes(), generator, f64);
  const auto a = at::randn({n, n}, generator, f64);
  const auto omega = omega_scale * (a - a.t());
  return std::make_shared<MetricFpProcess>(std::make_shared<NetworkMetric>(tensors, 0.1), omega, 0.1, 20.0,
                                           TimeRange{}, 0.1);
}

at::Tensor column_grad(const at::Tensor& scalar_rows, const at::Tensor& x) {
  return torch::autograd::grad({scalar_rows.sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true,
                               /*allow_unused=*/true)[0];
}

// -div J / p for p = N(0, I), J_i = f_i p - 1/2 sum_j d_j (Lambda_ij p): the Fokker-Planck right-hand side over p.
at::Tensor fokker_planck_residual(const Process& process, const at::Tensor& x0, double t, bool flip_divergence) {
  auto x = x0.clone().requires_grad_(true);
  const auto tt = at::full({x.size(0)}, t, f64);
  const int64_t n = x.size(1);
  const auto p = at::exp(-0.5 * (x * x).sum(1));
  auto f = process.drift(x, tt);
  if (flip_divergence) f = f - process.diffusion_divergence(x, tt);   // the sign error: -1/2 div D
  const auto g = process.diffusion(x, tt).value;
  const auto lambda = at::matmul(g, g.transpose(1, 2));
  at::Tensor residual = at::zeros({x.size(0)}, f64);
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor w = at::zeros({x.size(0)}, f64);
    for (int64_t j = 0; j < n; ++j) w = w + column_grad(lambda.select(1, i).select(1, j) * p, x).select(1, j);
    const auto current = f.select(1, i) * p - 0.5 * w;
    residual = residual - column_grad(current, x).select(1, i);
  }
  return (residual / p).detach();
}

class MinusIdentityScore final : public ScoreModel {   // the score of N(0, I) at every time
 public:
  explicit MinusIdentityScore(int64_t n) : n_(n) {}
  at::Tensor score(const at::Tensor& x, const at::Tensor&) const override { return -x; }
  int64_t dim() const override { return n_; }

 private:
  int64_t n_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(fp_field)

// The autograd divergence of an analytic field, and of a network field against central differences; D is SPD.
BOOST_AUTO_TEST_CASE(metric_divergence_by_autograd) {
  auto generator = make_generator(at::kCPU, 1);
  const auto x = at::randn({64, 2}, generator, f64);
  const AnalyticMetric analytic(2.0);
  const auto div = metric_divergence(analytic, x);
  BOOST_TEST(max_abs(div.select(1, 0) - 2.0 * at::sin(2.0 * x.select(1, 0))) < 1e-13);
  BOOST_TEST(max_abs(div.select(1, 1)) < 1e-13);

  const auto process = random_field_process(3, 2);
  const auto& field = process->metric_field();
  const auto y = at::randn({16, 3}, generator, f64);
  const auto autograd = metric_divergence(field, y);
  at::Tensor numeric = at::zeros({16, 3}, f64);
  const double h = 1e-5;
  {
    at::NoGradGuard no_grad;
    for (int64_t i = 0; i < 3; ++i) {
      auto e = at::zeros({1, 3}, f64);
      e.index_put_({0, i}, h);
      const auto slope = (field(y + e) - field(y - e)) / (2 * h);   // d_i D, [B, n, n]
      numeric = numeric + slope.select(1, i);                        // (div D)_j += d_i D_ij
    }
  }
  BOOST_TEST(max_abs(autograd - numeric) < 1e-8 * (1 + max_abs(numeric)));
  BOOST_TEST(max_abs(numeric) > 1e-2);   // the field does vary
  at::NoGradGuard no_grad;
  const auto d = field(y);
  BOOST_TEST(max_abs(d - d.transpose(1, 2)) < 1e-14);
  BOOST_TEST(at::linalg_eigvalsh(d).min().item<double>() > 0.1 - 1e-12);   // D >= floor I
  // A fresh field is D = I exactly (the last layer starts at zero): the process is VP.
  const NetworkMetric fresh(3, 8, 0.1, 5);
  BOOST_TEST(max_abs(fresh(y) - at::eye(3, f64)) < 1e-15);
}

// N(0, I) is stationary for every SPD field and antisymmetric omega: the Fokker-Planck right-hand side, computed by
// autograd at random points, vanishes to round-off; with the sign of 1/2 div D flipped it does not.
BOOST_AUTO_TEST_CASE(standard_normal_is_stationary_pointwise) {
  auto generator = make_generator(at::kCPU, 3);
  for (const int64_t n : {2, 3}) {
    const auto process = random_field_process(n, 10 + n);
    const auto x = at::randn({12, n}, generator, f64);
    for (const double t : {0.1, 0.7}) {
      const auto right = fokker_planck_residual(*process, x, t, false);
      const auto wrong = fokker_planck_residual(*process, x, t, true);
      BOOST_TEST_MESSAGE("n = " << n << " t = " << t << ": residual " << max_abs(right) << ", flipped sign "
                                << max_abs(wrong));
      BOOST_TEST(max_abs(right) < 1e-11 * (1 + max_abs(wrong)));
      BOOST_TEST(max_abs(wrong) > 1e-2);
    }
  }
  const auto analytic = std::make_shared<MetricFpProcess>(std::make_shared<AnalyticMetric>(2.0), at::zeros({2, 2}, f64),
                                                          0.1, 20.0, TimeRange{}, 0.1);
  const auto x = at::randn({12, 2}, generator, f64);
  BOOST_TEST(max_abs(fokker_planck_residual(*analytic, x, 0.5, false)) < 1e-11);
}

// The probability flow's cancelled form is f - 1/2 div(G G^T); G G^T v is beta' D v; the diffusion is a Cholesky
// factor of beta' D.
BOOST_AUTO_TEST_CASE(cancelled_flow_and_diffusion) {
  const auto process = random_field_process(3, 4);
  auto generator = make_generator(at::kCPU, 4);
  const auto x = at::randn({20, 3}, generator, f64), v = at::randn({20, 3}, generator, f64);
  const auto t = at::rand({20}, generator, f64);
  const auto generic = process->drift(x, t) - 0.5 * process->diffusion_divergence(x, t);
  BOOST_TEST(max_abs(process->flow_drift(x, t) - generic) < 1e-12 * (1 + max_abs(generic)));
  const auto through_g = process->diffusion(x, t).apply_squared(v);
  BOOST_TEST(max_abs(process->diffusion_squared(x, t, v) - through_g) < 1e-12 * (1 + max_abs(through_g)));
  // The base class's generic flow drift (drift - 1/2 divergence) is what the override replaces.
  BOOST_TEST(max_abs(process->Process::flow_drift(x, t) - process->flow_drift(x, t)) < 1e-12 * (1 + max_abs(generic)));
}

// Monte-Carlo moments: N(0, I) simulated from t = 0 to 1 stays N(0, I) up to the sampling error and the scheme's weak
// first-order bias: the deviation of the covariance roughly halves from 50 to 100 steps, and the Richardson
// extrapolation 2 C_100 - C_50 is I within the sampling error. Process::simulate's Euler-Maruyama default reproduces
// VP's marginal.
BOOST_AUTO_TEST_CASE(simulation_keeps_the_standard_normal) {
  const auto process = random_field_process(2, 6, 0.5);
  process->set_trainable(false);
  const int64_t rows = 40000;
  std::vector<double> deviation;
  std::vector<at::Tensor> covariance;
  for (const int64_t steps : {50, 100}) {
    auto generator = make_generator(at::kCPU, 7 + steps);
    const auto x0 = at::randn({rows, 2}, generator, f64);
    at::NoGradGuard no_grad;
    const auto xT = process->simulate(x0, at::zeros({rows}, f64), at::ones({rows}, f64), steps, generator);
    const auto mean = xT.mean(0);
    covariance.push_back(at::matmul(xT.t(), xT) / static_cast<double>(rows));
    deviation.push_back(max_abs(covariance.back() - at::eye(2, f64)));
    BOOST_TEST_MESSAGE(steps << " steps: |mean|_max " << max_abs(mean) << " |cov - I|_max " << deviation.back());
    BOOST_TEST(max_abs(mean) < 5.0 / std::sqrt(static_cast<double>(rows)) + 0.02);
  }
  BOOST_TEST(deviation[1] < 0.65 * deviation[0]);
  const auto extrapolated = 2.0 * covariance[1] - covariance[0];
  BOOST_TEST_MESSAGE("extrapolated |cov - I|_max " << max_abs(extrapolated - at::eye(2, f64)));
  BOOST_TEST(max_abs(extrapolated - at::eye(2, f64)) < 5.0 * std::sqrt(5.0 * 2.0 / rows) + 0.01);
  // VP through the default Euler-Maruyama: mean a(t) x0 and variance sigma(t)^2 from a point.
  const auto vp = make_linear_process("vp", {});
  auto generator = make_generator(at::kCPU, 8);
  const auto x0 = at::full({rows, 1}, 1.5, f64);
  at::NoGradGuard no_grad;
  const auto xt = vp->simulate(x0, at::zeros({rows}, f64), at::full({rows}, 0.3, f64), 400, generator);
  const auto lp = std::dynamic_pointer_cast<LinearProcess>(vp);
  const double a = lp->alpha(at::full({1}, 0.3, f64)).item<double>(), s = lp->sigma(at::full({1}, 0.3, f64)).item<double>();
  BOOST_TEST(std::abs(xt.mean().item<double>() - 1.5 * a) < 4 * s / std::sqrt(static_cast<double>(rows)) + 5e-3);
  BOOST_TEST(std::abs(xt.std().item<double>() - s) < 5 * s / std::sqrt(2.0 * rows) + 5e-3);
}

// The implicit bound's integrand 1/2 s^T Lambda s + div(Lambda s - f_flow) with the exact score has expectation
// -dH(p_t)/dt. (a) N(0, I) data under a state-dependent D (analytic, with curvature) and omega != 0: p_t = N(0, I) at
// every t, so E = 0 at each t, drawing x_t exactly (no simulation). Without the correction hidden in f_flow
// (u = Lambda s - f) the mean is off by -1/2 beta' E[sum_ij d_i d_j D_ij] = -beta' a e^{-2}, which the test sees.
// (b) The whole simulated bound for Gaussian data N(m, S) under a fresh field (D = I: VP, simulated exactly) with
// VP's exact score is H(p_0) + KL(p_T || N(0, I)).
BOOST_AUTO_TEST_CASE(implicit_bound_matches_the_closed_form) {
  const int64_t rows = 40000;
  const double eps = 1e-3, T = 1.0;
  auto draw_times = [&](at::Generator& generator) {
    const auto u = at::rand({rows}, generator, f64);
    return std::pair{eps + (T - eps) * u, at::full({rows}, 1.0 / (T - eps), f64)};
  };
  {
    const double a = 2.0;
    const auto omega = at::tensor({0.0, 0.8, -0.8, 0.0}, f64).reshape({2, 2});
    const auto process = std::make_shared<MetricFpProcess>(std::make_shared<AnalyticMetric>(a), omega, 0.1, 20.0,
                                                           TimeRange{eps, T}, 0.1);
    const ScoreFunction score = [](const at::Tensor& x, const at::Tensor&) { return -x; };
    for (const double t : {0.05, 0.5}) {
      auto generator = make_generator(at::kCPU, 11);
      const auto x = at::randn({rows, 2}, generator, f64);
      const auto tt = at::full({rows}, t, f64);
      const auto integrand = implicit_integrand(*process, score, x, tt, generator).detach();
      const double mean = integrand.mean().item<double>(), se = integrand.std().item<double>() / std::sqrt(1.0 * rows);
      // The uncorrected integrand: div(Lambda s - f) instead of div(Lambda s - f_flow).
      const auto xx = x.clone().requires_grad_(true);
      const auto s = score(xx, tt);
      const auto lambda_s = process->diffusion_squared(xx, tt, s);
      const auto wrong = (0.5 * (s * lambda_s).sum(1) +
                          field_divergence(lambda_s - process->drift(xx, tt), xx, false, generator)).detach();
      const double beta = 0.1 + t * 19.9;
      const double wrong_mean = wrong.mean().item<double>(), wrong_se = wrong.std().item<double>() / std::sqrt(1.0 * rows);
      BOOST_TEST_MESSAGE("t = " << t << ": integrand " << mean << " +- " << se << " (expected 0); uncorrected "
                                << wrong_mean << " +- " << wrong_se << " (expected " << -beta * a * std::exp(-2.0) << ")");
      BOOST_TEST(std::abs(mean) < 4 * se + 1e-6);
      BOOST_TEST(std::abs(wrong_mean + beta * a * std::exp(-2.0)) < 4 * wrong_se + 1e-6);
      BOOST_TEST(beta * a * std::exp(-2.0) > 10 * se);
    }
  }
  {
    const auto process = make_fp_field_process(2, 8, 0.1, 3, 0.1, 20.0, TimeRange{eps, T});
    const auto vp = std::dynamic_pointer_cast<LinearProcess>(make_linear_process("vp", {}));
    auto generator = make_generator(at::kCPU, 12);
    const auto m = at::tensor({0.5, -1.0}, f64);
    const auto chol = at::tensor({0.6, 0.0, 0.3, 0.4}, f64).reshape({2, 2});
    const auto s0 = at::matmul(chol, chol.t());
    const auto x0 = m + at::matmul(at::randn({rows, 2}, generator, f64), chol.t());
    const auto [t, q] = draw_times(generator);
    const ScoreFunction score = [&](const at::Tensor& x, const at::Tensor& tt) {
      const auto alpha = vp->alpha(tt).unsqueeze(1).unsqueeze(2), sigma = vp->sigma(tt).unsqueeze(1).unsqueeze(2);
      const auto cov = alpha * alpha * s0 + sigma * sigma * at::eye(2, f64);       // [B, 2, 2]
      const auto r = (x - alpha.squeeze(2) * m).unsqueeze(2);
      return -at::linalg_solve(cov, r).squeeze(2);
    };
    process->set_trainable(false);
    const auto bound = simulated_bound(*process, score, x0, t, q, 32, generator).detach();
    const double mean = bound.mean().item<double>(), se = bound.std().item<double>() / std::sqrt(1.0 * rows);
    // H(N(m, S)) + KL(N(a m, a^2 S + s^2 I) || N(0, I)) at T.
    const double entropy = kLog2PiE + 0.5 * std::log(at::det(s0).item<double>());
    const auto one = at::ones({1}, f64);
    const double a = vp->alpha(one).item<double>(), s = vp->sigma(one).item<double>();
    const auto cov_t = a * a * s0 + s * s * at::eye(2, f64);
    const auto mean_t = a * m;
    const double kl = 0.5 * (at::trace(cov_t).item<double>() + (mean_t * mean_t).sum().item<double>() - 2.0 -
                             std::log(at::det(cov_t).item<double>()));
    BOOST_TEST_MESSAGE("Gaussian data, D = I: bound " << mean << " +- " << se << " vs " << entropy + kl);
    BOOST_TEST(std::abs(mean - (entropy + kl)) < 4 * se + 0.02);
  }
}

// The probability-flow NLL of the stationary model (score -x) under a state-dependent D and omega != 0 is the
// standard normal's log-density: v = -beta' omega x (D(x) multiplies x + s = 0), a rotation.
BOOST_AUTO_TEST_CASE(stationary_model_nll_is_exact) {
  const auto process = random_field_process(2, 9, 0.7);
  process->set_trainable(false);
  auto generator = make_generator(at::kCPU, 9);
  const auto y = at::randn({40, 2}, generator, f64);
  LikelihoodOptions options;
  options.ode.solver = "dopri5";
  options.ode.rtol = options.ode.atol = 1e-9;
  options.eps = 1e-3;
  const auto result = model_log_likelihood(process, std::make_shared<MinusIdentityScore>(2), y, options, generator);
  const auto expected = -0.5 * (y * y).sum(1) - 1.8378770664093453;
  BOOST_TEST(max_abs(result.log_prob - expected) < 1e-6);
}

namespace {
NetworkModel field_model(std::shared_ptr<Process> process) {
  NetworkModel model;
  model.process = std::move(process);
  model.parameterisation = Parameterisation::noise;
  model.config.architecture = "mlp";
  model.config.data_shape = {2};
  model.config.width = 32;
  model.config.depth = 2;
  model.config.embedding_dim = 16;
  model.network = make_network(model.config, 0);
  model.network->to(at::kCPU, at::kFloat);
  return model;
}

std::vector<at::Tensor> gradients(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const auto& p : tensors) out.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
  return out;
}

void zero_gradients(const std::vector<at::Tensor>& tensors) {
  for (auto p : tensors) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}
}  // namespace

// The regulariser's gradient goes into the forward process's parameters only: with it the network's gradient is the
// one without it (same step and seed), the process's differs; the loss grows by the regulariser's value.
BOOST_AUTO_TEST_CASE(regulariser_reaches_the_forward_parameters_only) {
  for (const std::string name : {"fp-noise", "fp-field"}) {
    std::shared_ptr<Process> process;
    if (name == "fp-noise") {
      auto generator = make_generator(at::kCPU, 21);
      process = std::make_shared<LearnedFpProcess>(
          LearnedFpProcess::Variant::noise,
          std::map<std::string, at::Tensor>{{"theta", 0.3 * at::randn({2}, generator, f64)},
                                            {"K", at::randn({2, 2}, generator, f64)}},
          0.1, 20.0, TimeRange{});
    } else {
      process = random_field_process(2, 22, 0.3);
    }
    auto model = field_model(process);
    TrainOptions plain;
    plain.objective = "bound";
    plain.weighting = Weighting::likelihood;
    plain.eps = 1e-3;
    plain.simulation_steps = 8;
    auto regularised = plain;
    regularised.reg_kinetic = 0.01;
    regularised.reg_jacobian = 0.01;
    std::vector<at::Tensor> network, forward;
    for (const auto& p : model.network->parameters()) network.push_back(p);
    for (const auto& item : process->learned_parameters()) forward.push_back(item.second);
    auto generator = make_generator(at::kCPU, 23);
    const auto x0 = at::randn({64, 2}, generator, f64);
    std::vector<std::vector<at::Tensor>> net_grads, fwd_grads;
    std::vector<double> losses;
    for (const auto& options : {plain, regularised}) {
      auto objective = make_objective("bound", model, options, at::kCPU);
      zero_gradients(network);
      zero_gradients(forward);
      const auto loss = objective->loss(x0, 3, 99);
      loss.backward();
      losses.push_back(loss.item<double>());
      net_grads.push_back(gradients(network));
      fwd_grads.push_back(gradients(forward));
    }
    double net_diff = 0, net_scale = 0, fwd_diff = 0, fwd_scale = 0;
    for (size_t i = 0; i < network.size(); ++i) {
      net_diff = std::max(net_diff, max_abs(net_grads[0][i] - net_grads[1][i]));
      net_scale = std::max(net_scale, max_abs(net_grads[0][i]));
    }
    for (size_t i = 0; i < forward.size(); ++i) {
      fwd_diff = std::max(fwd_diff, max_abs(fwd_grads[0][i] - fwd_grads[1][i]));
      fwd_scale = std::max(fwd_scale, max_abs(fwd_grads[0][i]));
    }
    BOOST_TEST_MESSAGE(name << ": loss " << losses[0] << " -> " << losses[1] << "; network gradient change "
                            << net_diff << " of " << net_scale << ", process gradient change " << fwd_diff << " of "
                            << fwd_scale);
    BOOST_TEST(net_diff <= 1e-5 * net_scale, name);
    BOOST_TEST(fwd_diff > 1e-7 * fwd_scale, name);
    BOOST_TEST(fwd_diff > 1e-3, name);
    BOOST_TEST(losses[1] > losses[0], name);
  }
}

// Through the CLI: train fp-field (joint, the simulated bound) on the checkerboard, resume bit for bit, then info,
// sample (reverse SDE by Euler-Maruyama and the probability flow) and nll work on the file; bad input is exit 2.
BOOST_AUTO_TEST_CASE(cli_trains_and_uses_fp_field) {
  const auto dir = test::scratch_dir("fp_field_cli");
  const auto model = (dir / "field.h5").string(), part = (dir / "field-part.h5").string();
  const std::string train = "train --process fp-field --data checkerboard --arch mlp --width 32 --depth 2 "
                            "--embedding-dim 16 --metric-width 16 --simulation-steps 8 --lr 2e-3 --eps 1e-3 "
                            "--ema 0.99 --iters 60 --batch 128 --seed 0 --device cpu --checkpoint-every 60 --quiet ";
  const auto trained = test::run_cli(train + "--out " + model);
  BOOST_REQUIRE_MESSAGE(trained.exit_status == 0, trained.output);
  BOOST_REQUIRE(test::run_cli(train + "--stop-after 25 --out " + part).exit_status == 0);
  const auto resumed = test::run_cli("train --resume " + part + " --device cpu --quiet");
  BOOST_REQUIRE_MESSAGE(resumed.exit_status == 0, resumed.output);
  const auto a = load_network_model(model), b = load_network_model(part);
  BOOST_TEST(a.training_text.at("objective") == "bound");
  BOOST_TEST(at::equal(a.loss, b.loss));
  for (const auto& [key, value] : a.process->parameter_tensors()) {
    BOOST_TEST(at::equal(value, b.process->parameter_tensors().at(key)), key);
  }
  BOOST_TEST(max_abs(a.process->parameter_tensors().at("metric_w3")) > 0.0);   // the metric trained

  const auto info = test::run_cli("info " + model);
  BOOST_REQUIRE_MESSAGE(info.exit_status == 0, info.output);
  BOOST_TEST(info.output.find("fp-field") != std::string::npos, info.output);
  for (const std::string sampler : {"em", "heun"}) {
    const auto out = (dir / ("samples-" + sampler + ".h5")).string();
    const auto sampled = test::run_cli("sample --model " + model + " --solver " + sampler +
                                       " --n 64 --steps 50 --seed 1 --quiet --out " + out);
    BOOST_REQUIRE_MESSAGE(sampled.exit_status == 0, sampled.output);
  }
  const auto test_data = (dir / "test.h5").string();
  BOOST_REQUIRE(test::run_cli("data --name checkerboard --n 100 --seed 7 --out " + test_data).exit_status == 0);
  const auto nll_out = (dir / "nll.h5").string();
  const auto nll = test::run_cli("nll --model " + model + " --data " + test_data +
                                 " --solver dopri5 --rtol 1e-5 --atol 1e-5 --trace exact --eps 1e-3 --quiet --out " +
                                 nll_out);
  BOOST_REQUIRE_MESSAGE(nll.exit_status == 0, nll.output);
  const auto result = read_nll_file(nll_out);
  BOOST_TEST(std::isfinite(result.summary.at("nll_mean")));
  BOOST_TEST(result.summary.at("failures") == 0.0);

  // Bad input.
  const auto bad = dir / "bad.h5";
  test::expect_input_error("train --process vp --metric-width 8 --iters 2 --out " + bad.string(),
                           "--metric-width applies to --process fp-field only", bad);
  test::expect_input_error("train --process vp --reg-kinetic 1 --iters 2 --out " + bad.string(),
                           "--reg-kinetic applies to --objective bound", bad);
  test::expect_input_error("train --process fp-noise --reg-jacobian -1 --iters 2 --out " + bad.string(),
                           "--reg-jacobian must be >= 0", bad);
  test::expect_input_error("train --process fp-noise --strategy fixed --reg-kinetic 1 --iters 2 --out " + bad.string(),
                           "--reg-kinetic and --reg-jacobian train the forward process", bad);
  test::expect_input_error("train --process fp-field --simulation-steps 0 --iters 2 --out " + bad.string(),
                           "--simulation-steps must lie in", bad);
  // A tampered model file: a misshapen metric tensor, a non-antisymmetric omega.
  {
    const auto tampered = (dir / "tampered-floor.h5").string();
    std::filesystem::copy_file(model, tampered, std::filesystem::copy_options::overwrite_existing);
    {
      h5::File file(tampered, h5::Mode::read_write);
      file.group("process").set_attribute("floor", 2.0);
    }
    const auto out = dir / "tampered-floor-samples.h5";
    test::expect_input_error("sample --model " + tampered + " --n 4 --out " + out.string(), "floor must lie in (0, 1]",
                             out);
  }
  for (const std::string what : {"metric_w2", "omega"}) {
    const auto tampered = (dir / ("tampered-" + what + ".h5")).string();
    std::filesystem::copy_file(model, tampered, std::filesystem::copy_options::overwrite_existing);
    {
      h5::File file(tampered, h5::Mode::read_write);
      auto group = file.group("process");
      const auto value = a.process->parameter_tensors().at(what);
      if (what == "omega") group.write_tensor(what, value + at::eye(2, f64));
      else group.write_tensor(what, value.narrow(0, 0, 3).contiguous());
    }
    const auto out = dir / ("tampered-" + what + "-samples.h5");
    test::expect_input_error("sample --model " + tampered + " --n 4 --out " + out.string(),
                             what == "omega" ? "omega: not antisymmetric" : "metric_w2: expected shape", out);
  }
}

BOOST_AUTO_TEST_SUITE_END()
