// Tests of training (training/trainer.hpp, `sdeflow train`): the time sampler is unbiased and its importance
// sampling removes the weight's variance; the loss forms agree; a short training on a 2-D Gaussian lowers the
// loss and its NLL (through `sdeflow nll`) comes close to the true entropy; a resumed run repeats the
// uninterrupted one bit for bit; a killed run leaves a valid, resumable checkpoint; bad input exits with 2.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "core/device.hpp"
#include "core/error.hpp"
#include "io/data_file.hpp"
#include "io/model_file.hpp"
#include "io/nll_file.hpp"
#include "io/toy_data.hpp"
#include "likelihood/likelihood.hpp"
#include "support.hpp"
#include "training/trainer.hpp"

using namespace sdeflow;
using sdeflow::test::run_cli;
namespace fs = std::filesystem;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

// The 2-D Gaussian of the training tests: mean m, covariance S = L L^T.
const std::vector<double> kMean = {0.5, -0.3};
at::Tensor gaussian_cholesky() { return at::tensor({1.0, 0.0, 0.6, std::sqrt(0.8 - 0.36)}, f64).reshape({2, 2}); }
double gaussian_entropy() {   // 0.5 log det(2 pi e S), det S = 1.0 * 0.8 - 0.6^2
  return 0.5 * (2 * std::log(2 * M_PI * M_E) + std::log(0.8 - 0.36));
}
at::Tensor gaussian_samples(int64_t n, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  return at::randn({n, 2}, generator, f64).matmul(gaussian_cholesky().t()) + at::tensor(kMean, f64);
}

NetworkModel small_mlp_model(const std::shared_ptr<TrainingData>& data) {
  NetworkModel model;
  model.process = make_linear_process("vp", {});
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

}  // namespace

BOOST_AUTO_TEST_SUITE(training)

// E_q[w(t) f(t)] must equal (1 / (T - eps)) int lambda / sigma^2 f dt. With f = sigma^2 and the likelihood
// weighting this is (B(T) - B(eps)) / (T - eps) for VP (int g^2 = int beta). The importance-sampled weights are
// nearly constant; uniform t under the same weighting has weights spread over five orders of magnitude.
BOOST_AUTO_TEST_CASE(time_sampler_is_unbiased_and_importance_sampling_flattens_the_weights) {
  const auto process = std::dynamic_pointer_cast<VpProcess>(make_linear_process("vp", {}));
  const double eps = 1e-5, T = 1.0;
  const double expected = (process->integrated_beta(at::tensor({T}, f64)) -
                           process->integrated_beta(at::tensor({eps}, f64))).item<double>() / (T - eps);
  for (bool importance : {true, false}) {
    TimeSampler sampler(process, Weighting::likelihood, importance, eps);
    auto generator = at::detail::createCPUGenerator(11);
    const int64_t n = 200000;
    const auto [t, w] = sampler.sample(n, generator);
    BOOST_TEST(t.min().item<double>() >= eps);
    BOOST_TEST(t.max().item<double>() <= T);
    const auto sigma = process->sigma(t);
    const auto values = w * sigma * sigma;
    const double mean = values.mean().item<double>();
    const double se = values.std().item<double>() / std::sqrt(static_cast<double>(n));
    BOOST_TEST(std::abs(mean - expected) <= 4 * se + 1e-12, "importance " << importance << ": " << mean << " vs "
                                                                          << expected << " (se " << se << ")");
    const double relative_spread = (w.std() / w.mean()).item<double>();
    BOOST_TEST_MESSAGE("likelihood weighting, importance " << importance << ": weight std / mean = " << relative_spread);
    if (importance) {
      BOOST_TEST(relative_spread < 2e-3);
    } else {
      BOOST_TEST(relative_spread > 10.0);
    }
  }
  // Variance weighting: uniform t, weight 1.
  TimeSampler variance(process, Weighting::variance, true, eps);
  auto generator = at::detail::createCPUGenerator(12);
  const auto [t, w] = variance.sample(100000, generator);
  BOOST_TEST((w == 1.0).all().item<bool>());
  BOOST_TEST(t.mean().item<double>() == 0.5 * (T + eps), boost::test_tools::tolerance(4 * 0.2887 / std::sqrt(1e5) / 0.5));
}

// The noise and score forms of the loss are one loss: a noise prediction e and the score -e / sigma give the
// same value; the data form with x0_hat = (x_t - sigma e) / alpha too. A perfect noise prediction has loss 0.
BOOST_AUTO_TEST_CASE(loss_forms_agree) {
  const auto process = make_linear_process("vp", {});
  auto generator = at::detail::createCPUGenerator(3);
  const int64_t b = 64;
  const auto x0 = at::randn({b, 3}, generator, f64), z = at::randn({b, 3}, generator, f64);
  const auto t = 0.01 + 0.98 * at::rand({b}, generator, f64);
  const auto alpha = process->alpha(t).unsqueeze(1), sigma = process->sigma(t).unsqueeze(1);
  const auto xt = alpha * x0 + sigma * z;
  const auto weight = at::rand({b}, generator, f64) + 0.5;
  const auto e = z + 0.3 * at::randn({b, 3}, generator, f64);
  const auto noise = denoising_loss(e, Parameterisation::noise, x0, xt, z, t, weight, *process);
  const auto score = denoising_loss(-e / sigma, Parameterisation::score, x0, xt, z, t, weight, *process);
  const auto data = denoising_loss((xt - sigma * e) / alpha, Parameterisation::data, x0, xt, z, t, weight, *process);
  BOOST_TEST((noise - score).abs().max().item<double>() <= 1e-10 * noise.abs().max().item<double>());
  BOOST_TEST((noise - data).abs().max().item<double>() <= 1e-8 * noise.abs().max().item<double>());
  BOOST_TEST((noise - weight * 0.09 * (e - z).pow(2).sum(1) / 2 / 0.09).abs().max().item<double>() <= 1e-12);
  BOOST_TEST(denoising_loss(z, Parameterisation::noise, x0, xt, z, t, weight, *process).abs().max().item<double>() == 0.0);
}

// A short likelihood-weighted training on a 2-D Gaussian: the loss falls, and the NLL of held-out samples under
// the trained model (sdeflow nll, dopri5, exact trace) comes within 0.05 nats + 4 standard errors of the
// Gaussian's entropy. The margin is what 1500 Adam steps of a 2 x 32 MLP reach here (measured 0.0xx); the
// Monte-Carlo part is the standard error of the held-out mean.
BOOST_AUTO_TEST_CASE(short_training_on_a_gaussian_reaches_its_entropy) {
  const auto dir = test::scratch_dir("train_gaussian");
  const auto train_file = (dir / "train.h5").string(), test_file = (dir / "test.h5").string();
  save_data(train_file, gaussian_samples(20000, 1));
  save_data(test_file, gaussian_samples(1000, 2));
  const auto model_file = (dir / "model.h5").string();
  const auto trained = run_cli("train --data " + train_file + " --arch mlp --width 64 --depth 2 --embedding-dim 16 "
                               "--iters 1500 --batch 256 --lr 3e-3 --warmup 50 --weighting likelihood --ema 0.99 "
                               "--seed 0 --device cpu --checkpoint-every 500 --out " + model_file);
  BOOST_TEST_REQUIRE(trained.exit_status == 0, trained.output);
  const auto model = load_model(model_file);
  BOOST_TEST_REQUIRE(model.network != nullptr);
  const auto& log = model.network->loss;
  BOOST_TEST_REQUIRE(log.numel() == 150);   // one entry per 10 steps
  // The loss has an irreducible part: at the true score, E|sigma s + z|^2 = D - sigma^2 tr C_t^-1 with
  // C_t = alpha^2 S + sigma^2 I, so the minimum is (1 / (T - eps)) int g^2 / (2 sigma^2) (D - sigma^2 tr C_t^-1) dt.
  const auto process = model.process;
  const auto eigen = at::linalg_eigvalsh(gaussian_cholesky().matmul(gaussian_cholesky().t()));
  const auto grid = at::logspace(std::log10(1e-5), 0.0, 200001, 10.0, f64);
  const auto alpha = process->alpha(grid), sigma = process->sigma(grid), g = process->diffusion_coefficient(grid);
  const auto trace = (1.0 / (alpha.pow(2).unsqueeze(1) * eigen.unsqueeze(0) + sigma.pow(2).unsqueeze(1))).sum(1);
  const auto integrand = g.pow(2) / (2 * sigma.pow(2)) * (2.0 - sigma.pow(2) * trace);
  const double minimum = at::trapezoid(integrand, grid).item<double>() / (1.0 - 1e-5);
  const double first = log.narrow(0, 0, 10).mean().item<double>(), last = log.narrow(0, 140, 10).mean().item<double>();
  BOOST_TEST_MESSAGE("loss: first 100 steps " << first << ", last 100 steps " << last << ", minimum " << minimum);
  // Excess over the minimum: each logged block averages 2560 samples of a loss whose spread is ~1 (importance-
  // sampled t), so a block mean is known to ~0.02; the excess must fall to a fifth.
  BOOST_TEST(last - minimum < 0.2 * (first - minimum));
  BOOST_TEST(last > minimum - 0.1);
  BOOST_TEST(model.network->training_numbers.at("steps") == 1500.0);
  BOOST_TEST(model.network->training_text.at("dataset") == train_file);

  const auto nll_file = (dir / "nll.h5").string();
  const auto nll = run_cli("nll --model " + model_file + " --data " + test_file +
                           " --solver dopri5 --rtol 1e-5 --atol 1e-5 --trace exact --out " + nll_file);
  BOOST_TEST_REQUIRE(nll.exit_status == 0, nll.output);
  const auto result = read_nll_file(nll_file);
  const double mean = result.summary.at("nll_mean"), se = result.summary.at("nll_stderr");
  // The held-out samples' own mean log-density under the true Gaussian: the target the model should match.
  const auto x = gaussian_samples(1000, 2) - at::tensor(kMean, f64);
  const auto solved = at::linalg_solve_triangular(gaussian_cholesky(), x.t(), /*upper=*/false);
  const double true_nll = (0.5 * solved.pow(2).sum(0) + std::log(2 * M_PI) + 0.5 * std::log(0.44)).mean().item<double>();
  BOOST_TEST_MESSAGE("held-out NLL " << mean << " +- " << se << ", true NLL of the same rows " << true_nll
                                     << ", entropy " << gaussian_entropy());
  BOOST_TEST(std::abs(true_nll - gaussian_entropy()) <= 4 * se);
  BOOST_TEST(std::abs(mean - true_nll) <= 0.05);
}

// Stopping after 40 of 60 steps and resuming gives the same weights, EMA, Adam moments and loss log as the
// uninterrupted run, bit for bit (CPU, one thread: every batch, time and noise is a function of (seed, step)).
BOOST_AUTO_TEST_CASE(resume_repeats_the_uninterrupted_run_exactly) {
  const auto dir = test::scratch_dir("train_resume");
  TrainOptions options;
  options.iterations = 60;
  options.batch = 64;
  options.warmup = 10;
  options.log_every = 7;          // a log block straddles the interruption
  options.checkpoint_every = 20;
  options.ema = 0.9;
  options.weighting = Weighting::likelihood;
  const auto data = open_training_data("checkerboard");
  const auto whole = (dir / "whole.h5").string(), part = (dir / "part.h5").string();
  Trainer uninterrupted(small_mlp_model(data), options, data, at::kCPU);
  uninterrupted.run(whole);
  {
    Trainer interrupted(small_mlp_model(data), options, data, at::kCPU);
    interrupted.run(part, /*stop_after=*/40);
    BOOST_TEST(interrupted.steps_done() == 40);
  }
  auto resumed = Trainer::resume(part, data, at::kCPU);
  BOOST_TEST(resumed->steps_done() == 40);
  resumed->run(part);
  const auto a = load_network_model(whole), b = load_network_model(part);
  auto compare = [](const ScoreNetwork& x, const ScoreNetwork& y, const std::string& what) {
    const auto px = x.named_parameters(), py = y.named_parameters();
    for (const auto& item : px) {
      BOOST_TEST(torch::equal(item.value(), py[item.key()]), what << " " << item.key() << " differs");
    }
  };
  compare(*a.network, *b.network, "weights");
  compare(*a.ema, *b.ema, "EMA");
  BOOST_TEST(torch::equal(a.loss, b.loss));
  BOOST_TEST(torch::equal(a.loss_step, b.loss_step));
  BOOST_TEST(a.loss.numel() == 8);   // 60 / 7
  BOOST_TEST(a.training_numbers.at("final_loss") == b.training_numbers.at("final_loss"));
  // A different seed trains a different network.
  TrainOptions other = options;
  other.seed = 1;
  other.iterations = 5;
  Trainer different(small_mlp_model(data), other, data, at::kCPU);
  different.run((dir / "other.h5").string());
  BOOST_TEST(!torch::equal(different.model().network->parameters()[0], a.network->parameters()[0]));
}

// A training killed by SIGKILL keeps its last checkpoint: a valid model file at a multiple of
// --checkpoint-every, which `--resume` continues.
BOOST_AUTO_TEST_CASE(killed_training_leaves_a_resumable_checkpoint) {
  const auto dir = test::scratch_dir("train_killed");
  const auto out = (dir / "model.h5").string();
  const std::string bin = std::getenv("SDEFLOW_BIN") ? std::getenv("SDEFLOW_BIN") : "sdeflow";
  const std::string script =
      "'" + bin + "' train --data checkerboard --width 32 --depth 2 --iters 10000000 --batch 64 --device cpu "
      "--checkpoint-every 25 --quiet --out '" + out + "' & pid=$!; i=0; "
      "while [ ! -f '" + out + "' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; sleep 0.3; kill -9 $pid; "
      "wait $pid 2>/dev/null; exit 0";
  const int status = std::system(script.c_str());   // runs it with /bin/sh -c
  (void)status;
  BOOST_TEST_REQUIRE(fs::exists(out));
  const auto model = load_network_model(out);   // throws if the file were partial
  const auto steps = static_cast<int64_t>(model.training_numbers.at("steps"));
  BOOST_TEST(steps > 0);
  BOOST_TEST(steps % 25 == 0);
  const auto resumed = run_cli("train --resume " + out + " --stop-after " + std::to_string(steps + 25) + " --device cpu");
  BOOST_TEST_REQUIRE(resumed.exit_status == 0, resumed.output);
  BOOST_TEST(load_network_model(out).training_numbers.at("steps") == static_cast<double>(steps + 25));
}

// On a GPU: the same run on CUDA sees the same batches, times and noise (all drawn on the CPU), so its loss log
// follows the CPU run's to float32 rounding (relative 1e-3 over 40 steps; Adam's normalised updates keep the
// parameter drift of order lr per step), and the CUDA-trained model's NLL on CUDA matches its NLL on the CPU.
BOOST_AUTO_TEST_CASE(cuda_training_follows_the_cpu_run) {
  if (!cuda_available()) {
    BOOST_TEST_MESSAGE("skipped: no CUDA device");
    return;
  }
  const auto dir = test::scratch_dir("train_cuda");
  TrainOptions options;
  options.iterations = 40;
  options.batch = 128;
  options.log_every = 10;
  const auto data = open_training_data("moons");
  Trainer cpu(small_mlp_model(data), options, data, at::kCPU);
  cpu.run((dir / "cpu.h5").string());
  Trainer cuda(small_mlp_model(data), options, data, at::Device(at::kCUDA, 0));
  cuda.run((dir / "cuda.h5").string());
  const auto a = load_network_model((dir / "cpu.h5").string()), b = load_network_model((dir / "cuda.h5").string());
  BOOST_TEST(((a.loss - b.loss).abs() / a.loss.abs()).max().item<double>() <= 1e-3);
  auto model = load_model((dir / "cuda.h5").string());
  LikelihoodOptions likelihood;
  likelihood.ode.rtol = likelihood.ode.atol = 1e-6;
  auto generator = at::detail::createCPUGenerator(0);
  const auto x = sample_toy_data("moons", 64, generator);
  model.place(at::kCPU, at::kDouble);
  const auto on_cpu = model_log_likelihood(model.process, model.score, x, likelihood, generator).log_prob;
  model.place(at::Device(at::kCUDA, 0), at::kDouble);
  const auto on_gpu = model_log_likelihood(model.process, model.score, x.to(at::kCUDA), likelihood, generator).log_prob;
  BOOST_TEST((on_cpu - on_gpu.cpu()).abs().max().item<double>() <= 1e-4);
}

// Images end to end: [N, 1, 8, 8] integers with value_range [0, 16] train a U-Net (levels 17 taken from the file,
// default map to [-1, 1)), and `sdeflow nll` evaluates bits/dim through the same map: finite and positive (the
// dequantised bound on log P(x) is <= 0 for any normalised density; a 3-step U-Net has no better bound).
BOOST_AUTO_TEST_CASE(images_train_a_unet_and_get_bits_per_dim) {
  const auto dir = test::scratch_dir("train_images");
  auto generator = at::detail::createCPUGenerator(5);
  const auto images = at::randint(0, 17, {64, 1, 8, 8}, generator, at::TensorOptions().dtype(at::kByte));
  DataAttributes attributes;
  attributes.name = "random-digits";
  attributes.value_range = {0, 16};
  const auto data = (dir / "images.h5").string(), model = (dir / "unet.h5").string();
  save_data(data, images, attributes);
  const auto trained = run_cli("train --data " + data + " --arch unet --channels 8 --groups 4 --iters 3 --batch 16 "
                               "--device cpu --quiet --out " + model);
  BOOST_TEST_REQUIRE(trained.exit_status == 0, trained.output);
  const auto loaded = load_network_model(model);
  BOOST_TEST(loaded.data.integer);
  BOOST_TEST(loaded.data.levels == 17);
  BOOST_TEST(loaded.data.scale == 2.0);
  BOOST_TEST(loaded.data.shift == -1.0);
  BOOST_TEST(loaded.config.data_shape == std::vector<int64_t>({1, 8, 8}));
  save_data((dir / "four.h5").string(), images.narrow(0, 0, 4), attributes);
  const auto nll = run_cli("nll --model " + model + " --data " + (dir / "four.h5").string() +
                           " --trace hutchinson-rademacher --rtol 1e-3 --atol 1e-3 --out " + (dir / "nll.h5").string());
  BOOST_TEST_REQUIRE(nll.exit_status == 0, nll.output);
  const auto result = read_nll_file((dir / "nll.h5").string());
  BOOST_TEST(result.attributes.at("levels") == "17");
  BOOST_TEST(at::isfinite(result.bpd).all().item<bool>());
  BOOST_TEST(result.bpd.min().item<double>() > 0.0);
}

BOOST_AUTO_TEST_CASE(bad_input_is_named_with_exit_status_2) {
  const auto dir = test::scratch_dir("train_bad");
  const auto out = dir / "model.h5";
  const std::string o = " --out " + out.string();
  test::expect_input_error("train --arch transformer --iters 5" + o, "unknown architecture 'transformer'", out);
  test::expect_input_error("train --data nosuchset --iters 5" + o, "'nosuchset' is neither a built-in data set", out);
  test::expect_input_error("train --data " + (dir / "missing.h5").string() + " --iters 5" + o, "missing.h5: no such file", out);
  auto x = gaussian_samples(100, 3);
  x.index_put_({17, 1}, NAN);
  save_data((dir / "nan.h5").string(), x);
  test::expect_input_error("train --data " + (dir / "nan.h5").string() + " --iters 5" + o, "row 17 is not finite", out);
  save_data((dir / "small.h5").string(), gaussian_samples(100, 3));
  test::expect_input_error("train --data " + (dir / "small.h5").string() + " --batch 256 --iters 5" + o,
                     "--batch 256 is larger than the data set", out);
  test::expect_input_error("train --weighting uniform --iters 5" + o, "unknown weighting 'uniform'", out);
  test::expect_input_error("train --lr -1 --iters 5" + o, "--lr must be a positive number", out);
  test::expect_input_error("train --iters 0" + o, "--iters must be positive", out);
  test::expect_input_error("train --arch unet --iters 5" + o, "unet", out);   // 2-D points are not images
  if (!cuda_available()) test::expect_input_error("train --device cuda --iters 5" + o, "cuda", out);
  // Resuming: a run's settings cannot change; a corrupt checkpoint is named.
  const auto good = dir / "good.h5";
  BOOST_TEST_REQUIRE(run_cli("train --iters 20 --batch 32 --width 16 --depth 1 --quiet --device cpu --out " +
                             good.string()).exit_status == 0);
  test::expect_input_error("train --resume " + good.string() + " --lr 0.1" + o, "--lr cannot be given with --resume", out);
  test::expect_input_error("train --resume " + good.string() + o, "training is already complete", out);
  fs::copy_file(good, dir / "cut.h5");
  fs::resize_file(dir / "cut.h5", fs::file_size(good) / 2);
  const auto cut = run_cli("train --resume " + (dir / "cut.h5").string() + o);
  BOOST_TEST(cut.exit_status == 2, cut.output);
  BOOST_TEST(cut.output.find("cut.h5") != std::string::npos, cut.output);
  BOOST_TEST(!fs::exists(out));
}

BOOST_AUTO_TEST_SUITE_END()
