// Trainable linear FP-Diffusion (processes/fp_learned.hpp, training/likelihood_bound.cpp; docs/fp_diffusion.md):
// the structured kernel against the constant-matrix class, FP-Drift against rotated VP, gradients against finite
// differences, the bound's terms against the Gaussian closed form, strategies, resume, model files and the CLI.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>

#include "core/device.hpp"
#include "core/error.hpp"
#include "io/data_file.hpp"
#include "io/h5.hpp"
#include "io/model_file.hpp"
#include "io/nll_file.hpp"
#include "mixture_checks.hpp"
#include "processes/fp_learned.hpp"
#include "processes/linear.hpp"
#include "processes/mixture.hpp"
#include "processes/registry.hpp"
#include "support.hpp"
#include "training/trainer.hpp"

using namespace sdeflow;
using test::random_mixture;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);
double max_abs(const at::Tensor& x) { return x.abs().max().item<double>(); }

// A process with non-trivial parameters (theta, K random; l random), refreshed.
std::shared_ptr<LearnedFpProcess> random_learned(LearnedFpProcess::Variant variant, int64_t n, uint64_t seed) {
  auto generator = make_generator(at::kCPU, seed);
  std::map<std::string, at::Tensor> raw = {{"K", 0.7 * at::randn({n, n}, generator, f64)}};
  if (variant == LearnedFpProcess::Variant::noise) raw["theta"] = 0.8 * at::randn({n}, generator, f64);
  else raw["l"] = 1.5 * at::randn({n / 2}, generator, f64);
  return std::make_shared<LearnedFpProcess>(variant, raw, 0.1, 20.0, TimeRange{});
}

const std::vector<LearnedFpProcess::Variant> kVariants = {LearnedFpProcess::Variant::noise,
                                                          LearnedFpProcess::Variant::drift};

}  // namespace

BOOST_AUTO_TEST_SUITE(fp_learned)

// The structured kernel (U's basis, no [B, n, n]) is the constant-matrix class's: mean E_t x_0 and covariance
// L_t L_t^T = P_t; D stays SPD and omega antisymmetric; the score of the noise parameterisation inverts the factor.
BOOST_AUTO_TEST_CASE(structured_kernel_matches_the_matrix_exponential) {
  for (const auto variant : kVariants) {
    for (const int64_t n : {2, 3, 5}) {
      const auto p = random_learned(variant, n, 10 + n);
      const auto label = to_string(variant) + " n = " + std::to_string(n);
      at::NoGradGuard no_grad;
      const auto d = p->metric(), omega = p->symplectic();
      BOOST_TEST(max_abs(d - d.t()) < 1e-13, label);
      BOOST_TEST(at::linalg_eigvalsh(d).min().item<double>() > 0.0, label);
      BOOST_TEST(max_abs(omega + omega.t()) < 1e-13, label);
      const auto u = p->rotation();
      BOOST_TEST(max_abs(at::matmul(u, u.t()) - at::eye(n, f64)) < 1e-13, label);
      auto generator = make_generator(at::kCPU, 3);
      const auto x0 = at::randn({4, n}, generator, f64);
      const auto t = at::tensor({0.01, 0.2, 0.5, 1.0}, f64);
      const auto E = p->transition_matrix(t);
      const auto P = p->transition_covariance(E, at::zeros({n, n}, f64));
      const auto mean = p->perturb(x0, t, at::zeros({4, n}, f64));
      BOOST_TEST(max_abs(mean - at::matmul(E, x0.unsqueeze(-1)).squeeze(-1)) < 1e-12, label);
      // Columns of L_t: perturb(0, t, e_i).
      for (int64_t b = 0; b < 4; ++b) {
        const auto tb = t.narrow(0, b, 1).expand({n});
        const auto L = p->perturb(at::zeros({n, n}, f64), tb, at::eye(n, f64)).t();
        BOOST_TEST(max_abs(at::matmul(L, L.t()) - P[b]) < 1e-12, label);
        // s = -L^{-T} eps, so -L^T s = eps.
        const auto eps = at::randn({n, n}, generator, f64);
        const auto s = p->noise_to_score(eps, tb);
        BOOST_TEST(max_abs(-at::matmul(s, L) - eps) < 1e-10, label);
      }
    }
  }
}

// FP-Drift has rotated VP marginals: its exact mixture score at (x, t) is VP's score of the mixture rotated by
// R_t = exp(-omega B(t)) (the means R mu_k, covariances R Sigma_k R^T), and its NLL is VP's.
BOOST_AUTO_TEST_CASE(fp_drift_score_is_the_rotated_vp_score) {
  const auto drift = random_learned(LearnedFpProcess::Variant::drift, 2, 5);
  const auto vp = std::dynamic_pointer_cast<const LinearProcess>(make_linear_process("vp", {}));
  const auto mixture = random_mixture(2, 3, 6);
  const auto score = make_mixture_score(mixture, drift);
  auto generator = make_generator(at::kCPU, 7);
  for (const double time : {0.05, 0.3, 0.9}) {
    const double big_b = 0.1 * time + 0.5 * (20.0 - 0.1) * time * time;
    const auto R = at::linalg_matrix_exp(-drift->symplectic().detach() * big_b);
    const auto rotated = std::make_shared<GaussianMixture>(
        mixture->weights(), at::matmul(mixture->means(), R.t()),
        at::matmul(at::matmul(R, mixture->covariances()), R.t()));
    const GaussianMixtureScore reference(rotated, vp);
    const auto x = at::randn({16, 2}, generator, f64);
    const auto t = at::full({16}, time, f64);
    const auto a = score->score(x, t), b = reference.score(x, t);
    BOOST_TEST(max_abs(a - b) < 1e-9 * (1.0 + max_abs(b)), "t = " << time);
  }
}

// The parameterisation maps and the bound's terms are differentiable: autograd equals central differences.
BOOST_AUTO_TEST_CASE(gradients_match_finite_differences) {
  for (const auto variant : kVariants) {
    const auto p = random_learned(variant, 3, 21);
    auto generator = make_generator(at::kCPU, 22);
    const auto x0 = at::randn({5, 3}, generator, f64), z = at::randn({5, 3}, generator, f64);
    const auto eps = at::randn({5, 3}, generator, f64);
    const auto t = at::tensor({0.02, 0.1, 0.4, 0.7, 1.0}, f64);
    auto objective = [&] {
      p->set_trainable(true);   // U and lambda from the current parameters, as a training step does
      const auto xt = p->perturb(x0, t, z);
      return (p->prior_cross_entropy(x0) + p->denoising_loss(eps, z, t, true) + p->bound_offset(t)).sum() +
             (xt * xt).sum() + p->metric().sum() + p->symplectic().pow(2).sum();
    };
    for (const auto& [name, leaf] : p->learned_parameters()) {
      if (leaf.grad().defined()) leaf.grad().zero_();
      objective().backward();
      const auto grad = leaf.grad().clone();
      auto flat = leaf.detach().view({-1});
      double worst = 0.0;
      for (int64_t i = 0; i < flat.numel(); ++i) {
        if (name == "process.K" && i / 3 >= i % 3) continue;   // only the strict upper triangle acts
        const double h = 1e-6, keep = flat[i].item<double>();
        double plus, minus;
        {
          at::NoGradGuard no_grad;
          flat[i] = keep + h;
          plus = objective().item<double>();
          flat[i] = keep - h;
          minus = objective().item<double>();
          flat[i] = keep;
        }
        const double fd = (plus - minus) / (2 * h);
        worst = std::max(worst, std::abs(fd - grad.view({-1})[i].item<double>()) / (1.0 + std::abs(fd)));
      }
      BOOST_TEST_MESSAGE(to_string(variant) << " " << name << ": max relative |autograd - central difference| " << worst);
      BOOST_TEST(worst < 1e-6, to_string(variant) << " " << name);
    }
  }
}

// With the exact score and Gaussian data N(m, S) the bound's expectation is H(p_0) + KL(p_T || N(0, I))
// (seeds-fp.md section 5; the eps = 1e-4 cut-off changes it by O(eps)): a Monte-Carlo estimate agrees within 4
// standard errors.
BOOST_AUTO_TEST_CASE(bound_with_the_exact_score_is_entropy_plus_prior_kl) {
  const int64_t n = 2;
  const auto mean = at::tensor({0.5, -0.3}, f64);
  const auto chol = at::tensor({1.0, 0.0, 0.6, std::sqrt(0.8 - 0.36)}, f64).reshape({2, 2});
  const auto cov = at::matmul(chol, chol.t());
  const auto gaussian = std::make_shared<GaussianMixture>(at::ones({1}, f64), mean.unsqueeze(0), cov.unsqueeze(0));
  for (const auto variant : kVariants) {
    const auto p = random_learned(variant, n, 31);
    at::NoGradGuard no_grad;
    const auto score = make_mixture_score(gaussian, p);
    const double eps = 1e-4, T = 1.0;
    const int64_t m = 400000;
    auto generator = make_generator(at::kCPU, 32);
    const auto x0 = at::randn({m, n}, generator, f64).matmul(chol.t()) + mean;
    // t from the objective's proposal (half uniform, half log-uniform on [eps, T]) with exact 1/q weights: the
    // integrand's O(1/t) fluctuation near 0 is then O(1) (a uniform t gives a standard error 7 times larger).
    const auto u = at::rand({m}, generator, f64);
    const auto t = at::where(at::rand({m}, generator, f64) < 0.5, eps + (T - eps) * u, eps * at::pow(T / eps, u));
    const auto q = 0.5 / (T - eps) + 0.5 / (t * std::log(T / eps));
    const auto z = at::randn({m, n}, generator, f64);
    const auto xt = p->perturb(x0, t, z);
    // The exact score in the noise parameterisation of the same factor: eps = -L^T s.
    const auto s = score->score(xt, t);
    at::Tensor eps_exact;
    {
      // -L^T s row by row: the column L e_i of each row's factor is perturb(0, t, e_i).
      std::vector<at::Tensor> parts;
      for (int64_t i = 0; i < n; ++i) {
        const auto e = at::zeros({m, n}, f64).index_fill_(1, at::tensor({i}, at::kLong), 1.0);
        const auto column = p->perturb(at::zeros({m, n}, f64), t, e);   // L e_i
        parts.push_back(-(column * s).sum(1, true));                    // -(L^T s)_i
      }
      eps_exact = at::cat(parts, 1);
    }
    const auto bound = p->prior_cross_entropy(x0) +
                       (p->denoising_loss(eps_exact, z, t, true) + p->bound_offset(t)) / q;
    const double value = bound.mean().item<double>(), se = bound.std().item<double>() / std::sqrt(double(m));
    // H(p_0) + KL(N(E m, E S E^T + P) || N(0, I)) at T.
    const auto E = p->transition_matrix(at::full({1}, T, f64))[0];
    const auto P = p->transition_covariance(E.unsqueeze(0), at::zeros({n, n}, f64))[0];
    const auto mT = at::matmul(E, mean), cT = at::matmul(at::matmul(E, cov), E.t()) + P;
    const double entropy = 0.5 * (n * std::log(2 * M_PI * M_E) + at::logdet(cov).item<double>());
    const double kl = 0.5 * (at::trace(cT).item<double>() + mT.pow(2).sum().item<double>() - n -
                             at::logdet(cT).item<double>());
    BOOST_TEST_MESSAGE(to_string(variant) << ": bound " << value << " +- " << se << ", H + KL " << entropy + kl);
    BOOST_TEST(se < 0.05, to_string(variant));   // measured 0.023 (uniform t: 0.16)
    BOOST_TEST(std::abs(value - (entropy + kl)) < 4 * se + 1e-3, to_string(variant));
  }
}

// Model files: the raw parameters and the derived rinv/omega round-trip; a stored rinv that does not match the
// parameters is refused; the exact mixture under a learned process gives nll --prior exact its closed form.
BOOST_AUTO_TEST_CASE(model_files_and_the_exact_nll) {
  const auto dir = test::scratch_dir("fp_learned_files");
  const auto mixture = random_mixture(2, 3, 41);
  for (const auto variant : kVariants) {
    const auto p = random_learned(variant, 2, 42);
    const auto path = (dir / (to_string(variant) + ".h5")).string();
    save_gmm_model(path, p, mixture);
    const auto loaded = load_model(path);
    BOOST_TEST(loaded->process()->name() == to_string(variant));
    for (const auto& [key, value] : p->parameter_tensors()) {
      BOOST_TEST(max_abs(loaded->process()->parameter_tensors().at(key) - value) == 0.0, key);
    }
    auto generator = make_generator(at::kCPU, 43);
    const auto x = mixture->sample(12, generator, f64).first;
    save_data((dir / "x.h5").string(), x);
    const auto out = dir / (to_string(variant) + "-nll.h5");
    const auto run = test::run_cli("nll --model " + path + " --data " + (dir / "x.h5").string() +
                                   " --prior exact --trace analytic --rtol 1e-8 --atol 1e-8 --eps 1e-3 --quiet --out " +
                                   out.string());
    BOOST_REQUIRE_MESSAGE(run.exit_status == 0, run.output);
    const auto exact = -loaded->score()->marginal_log_prob(x, at::full({12}, 1e-3, f64));
    BOOST_TEST(max_abs(read_nll_file(out.string()).nll - exact) < 1e-6, to_string(variant));
  }
  // A tampered rinv: exit 2 naming the dataset.
  const auto tampered = (dir / "tampered.h5").string();
  save_gmm_model(tampered, random_learned(LearnedFpProcess::Variant::noise, 2, 44), mixture);
  {
    h5::File file(tampered, h5::Mode::read_write);
    file.group("process").write_tensor("rinv", 2.0 * at::eye(2, f64));
  }
  const auto out = dir / "tampered-nll.h5";
  test::expect_input_error("nll --model " + tampered + " --data " + (dir / "x.h5").string() + " --out " + out.string(),
                           "rinv: does not match the learned parameters", out);
}

namespace {
NetworkModel learned_model(const std::shared_ptr<TrainingData>& data, LearnedFpProcess::Variant variant) {
  NetworkModel model;
  model.process = std::make_shared<LearnedFpProcess>(variant, 2, 0.1, 20.0, TimeRange{});
  model.parameterisation = Parameterisation::noise;
  model.config.architecture = "mlp";
  model.config.data_shape = data->shape();
  model.config.width = 32;
  model.config.depth = 2;
  model.config.embedding_dim = 16;
  model.data.name = data->name();
  model.data.shape = data->shape();
  return model;
}

std::map<std::string, at::Tensor> raw_parameters(const Trainer& trainer) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, value] : trainer.model().process->learned_parameters()) out[name] = value.detach().clone();
  return out;
}

// The options of a short run with the whole bound.
TrainOptions bound_options(int64_t iterations, int64_t batch) {
  TrainOptions options;
  options.objective = "bound";
  options.weighting = Weighting::likelihood;
  options.iterations = iterations;
  options.batch = batch;
  return options;
}

bool same(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b) {
  for (const auto& [name, value] : a) {
    if (!at::equal(value, b.at(name))) return false;
  }
  return a.size() == b.size();
}
}  // namespace

// joint trains the process, fixed never does, mix trains it for --forward-steps and then freezes it; resuming a
// checkpoint repeats the uninterrupted run, the forward parameters and their Adam moments included (same batch
// composition and thread count: the documented determinism).
BOOST_AUTO_TEST_CASE(strategies_and_exact_resume) {
  const auto dir = test::scratch_dir("fp_learned_strategies");
  const auto data = open_training_data("checkerboard");
  auto options = bound_options(30, 64);
  options.lr = 5e-3;
  options.warmup = 0;
  options.checkpoint_every = 1000;
  const auto zero = raw_parameters(Trainer(learned_model(data, LearnedFpProcess::Variant::noise), options, data, at::kCPU));
  for (const std::string strategy : {"joint", "fixed", "mix"}) {
    auto o = options;
    o.strategy = strategy;
    o.forward_steps = strategy == "mix" ? 15 : 0;
    Trainer trainer(learned_model(data, LearnedFpProcess::Variant::noise), o, data, at::kCPU);
    for (int64_t k = 0; k < 15; ++k) BOOST_TEST(std::isfinite(trainer.step()));
    const auto middle = raw_parameters(trainer);
    for (int64_t k = 15; k < 30; ++k) trainer.step();
    const auto end = raw_parameters(trainer);
    if (strategy == "fixed") BOOST_TEST(same(end, zero), strategy);
    if (strategy == "joint") BOOST_TEST(!same(end, middle), strategy);
    if (strategy == "mix") {
      BOOST_TEST(!same(middle, zero), strategy);
      BOOST_TEST(same(end, middle), strategy);   // frozen after the joint stage
    }
  }
  // Resume.
  for (const auto variant : kVariants) {
    const auto a = (dir / (to_string(variant) + "-a.h5")).string(), b = (dir / (to_string(variant) + "-b.h5")).string();
    Trainer uninterrupted(learned_model(data, variant), options, data, at::kCPU);
    uninterrupted.run(a);
    {
      Trainer first(learned_model(data, variant), options, data, at::kCPU);
      first.run(b, 12);
    }
    auto resumed = Trainer::resume(b, data, at::kCPU);
    resumed->run(b);
    const auto ma = load_network_model(a), mb = load_network_model(b);
    for (const auto& [key, value] : ma.process->parameter_tensors()) {
      BOOST_TEST(at::equal(value, mb.process->parameter_tensors().at(key)), to_string(variant) << " " << key);
    }
    BOOST_TEST(at::equal(ma.loss, mb.loss), to_string(variant));
    const h5::File fa(a, h5::Mode::read), fb(b, h5::Mode::read);
    for (const auto& [name, value] : uninterrupted.model().process->learned_parameters()) {
      (void)value;
      const auto ga = fa.group("training").group("optimizer").group(name);
      const auto gb = fb.group("training").group("optimizer").group(name);
      BOOST_TEST(at::equal(ga.read_tensor("exp_avg_sq"), gb.read_tensor("exp_avg_sq")), name);
      BOOST_TEST(ga.read_tensor("exp_avg").scalar_type() == at::kDouble, name);
    }
  }
}

// Through the CLI on the checkerboard: FP-Noise trained jointly with the whole bound does not collapse (D's
// eigenvalues stay near 1; the bound, the training loss, stays above the held-out NLL) and reaches VP's NLL with the
// same network and budget; bad options are named.
BOOST_AUTO_TEST_CASE(cli_trains_fp_noise_without_collapse) {
  const auto dir = test::scratch_dir("fp_learned_cli");
  const auto test_data = (dir / "test.h5").string();
  BOOST_REQUIRE(test::run_cli("data --name checkerboard --n 1000 --seed 7 --out " + test_data).exit_status == 0);
  std::map<std::string, NllFile> results;
  std::map<std::string, double> final_loss;
  for (const std::string process : {"vp", "fp-noise", "fp-drift"}) {
    const auto model = (dir / (process + ".h5")).string();
    const auto trained = test::run_cli("train --process " + process +
                                       " --data checkerboard --arch mlp --width 64 --depth 2 --embedding-dim 16 "
                                       "--lr 2e-3 --weighting likelihood --ema 0.99 --iters 1500 --batch 256 --seed 0 "
                                       "--device cpu --checkpoint-every 1500 --quiet --out " + model);
    BOOST_REQUIRE_MESSAGE(trained.exit_status == 0, trained.output);
    const auto out = (dir / (process + "-nll.h5")).string();
    const auto nll = test::run_cli("nll --model " + model + " --data " + test_data +
                                   " --solver dopri5 --rtol 1e-5 --atol 1e-5 --trace exact --eps 1e-5 --quiet --out " + out);
    BOOST_REQUIRE_MESSAGE(nll.exit_status == 0, nll.output);
    results[process] = read_nll_file(out);
    const auto network = load_network_model(model);
    final_loss[process] = network.training_numbers.at("final_loss");
    BOOST_TEST_MESSAGE(process << ": held-out NLL " << results[process].summary.at("nll_mean") << " +- "
                               << results[process].summary.at("nll_stderr") << ", final training loss "
                               << final_loss[process]);
    if (process != "vp") {   // after training: D symmetric positive-definite, omega antisymmetric, to round-off
      const auto tensors = network.process->parameter_tensors();
      const auto d = tensors.at("rinv"), omega = tensors.at("omega");
      BOOST_TEST(max_abs(d - d.t()) < 1e-13, process);
      BOOST_TEST(max_abs(omega + omega.t()) < 1e-13, process);
      BOOST_TEST(at::linalg_eigvalsh(d).min().item<double>() > 0.0, process);
    }
    if (process == "fp-noise") {
      BOOST_TEST(network.training_text.at("objective") == "bound");
      const auto eig = at::linalg_eigvalsh(network.process->parameter_tensors().at("rinv"));
      BOOST_TEST_MESSAGE("fp-noise: eigenvalues of D " << eig);
      BOOST_TEST(eig.min().item<double>() > 0.3);
      BOOST_TEST(eig.max().item<double>() < 3.0);
    }
  }
  for (const std::string process : {"fp-noise", "fp-drift"}) {
    const double nll = results[process].summary.at("nll_mean"), se = results[process].summary.at("nll_stderr");
    // The bound is an upper bound on the NLL (up to the Monte-Carlo error of the last log block).
    BOOST_TEST(final_loss[process] > nll - 0.15, process);
    BOOST_TEST(nll < results["vp"].summary.at("nll_mean") + 0.15 + 4 * se, process);
  }
  const auto bad = dir / "bad.h5";
  test::expect_input_error("train --process fp-noise --objective dsm --iters 2 --out " + bad.string(),
                           "has learned parameters", bad);
  test::expect_input_error("train --process fp-noise --weighting variance --iters 2 --out " + bad.string(),
                           "its weighting is likelihood", bad);
  test::expect_input_error("train --process vp --strategy mix --iters 2 --out " + bad.string(),
                           "applies to --objective bound", bad);
  test::expect_input_error("train --process fp-noise --strategy mix --iters 2 --out " + bad.string(),
                           "--strategy mix needs --forward-steps", bad);
  test::expect_input_error("train --process fp-noise --strategy sideways --iters 2 --out " + bad.string(),
                           "unknown --strategy 'sideways'", bad);
  test::expect_input_error("train --process vp --objective bound --iters 2 --out " + bad.string(),
                           "needs a forward process with a closed-form likelihood bound", bad);
}

// On a GPU the network trains on the device while the process's float64 parameters stay on the CPU (clipping sums the
// gradient norms per device): the run follows the CPU run (float32 network: relative 1e-3 on the loss log, 1e-3 on
// theta after 40 Adam steps of at most lr = 1e-3 each). Skipped without a CUDA device.
BOOST_AUTO_TEST_CASE(cuda_joint_training_follows_the_cpu_run) {
  if (!cuda_available()) {
    BOOST_TEST_MESSAGE("skipped: no CUDA device");
    return;
  }
  const auto dir = test::scratch_dir("fp_learned_cuda");
  const auto data = open_training_data("checkerboard");
  auto options = bound_options(40, 128);
  options.log_every = 10;
  Trainer cpu(learned_model(data, LearnedFpProcess::Variant::noise), options, data, at::kCPU);
  cpu.run((dir / "cpu.h5").string());
  Trainer cuda(learned_model(data, LearnedFpProcess::Variant::noise), options, data, at::Device(at::kCUDA, 0));
  cuda.run((dir / "cuda.h5").string());
  const auto a = load_network_model((dir / "cpu.h5").string()), b = load_network_model((dir / "cuda.h5").string());
  BOOST_TEST(((a.loss - b.loss).abs() / a.loss.abs()).max().item<double>() <= 1e-3);
  const auto ta = a.process->parameter_tensors(), tb = b.process->parameter_tensors();
  BOOST_TEST(max_abs(ta.at("theta") - tb.at("theta")) <= 1e-3);
}

BOOST_AUTO_TEST_SUITE_END()
