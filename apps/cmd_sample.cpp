// `sdeflow sample`: draw samples from a model with a reverse-SDE or probability-flow sampler, write
// /samples (and the trajectory when asked) to HDF5, print a summary against the model's own data law.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "apps/common.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "io/model_file.hpp"
#include "io/toy_data.hpp"
#include "studies/metrics.hpp"
#include "io/trajectory.hpp"
#include "processes/mixture.hpp"
#include "samplers/sampling.hpp"
#include "sdeflow_version.hpp"
#include "io/output_path.hpp"

namespace sdeflow::app {

namespace {

struct SampleOptions {
  std::string model = "builtin:gmm2d";
  std::string solver = "em";
  int64_t steps = 1000;
  int64_t n = 10000;
  uint64_t seed = 0;
  std::string out = "sdeflow-samples.h5";
  int64_t save_every = 0;
  std::string device = "cpu";
  std::string dtype = "float64";
  double snr = 0.16;
  int corrector_steps = 1;
  double eta = 1.0;
  double rtol = 0.05, atol = 0.0078;
  std::string grid = "uniform";
  bool keep_last_noise = false;
  bool quiet = false;
};

std::string format_vector(const at::Tensor& v) {
  std::string text = "[";
  const auto values = v.to(at::kCPU, at::kDouble).contiguous();
  for (int64_t i = 0; i < values.numel(); ++i) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%s%.4f", i ? ", " : "", values.data_ptr<double>()[i]);
    text += buffer;
  }
  return text + "]";
}

void print_summary(const SampleOptions& options, const Model& model, const at::Tensor& samples,
                   const Solution& solution, double seconds) {
  std::printf("sdeflow sample: %lld samples of %s (%s, process %s), solver %s, %lld steps, %lld model evaluations, %.2f s\n",
              static_cast<long long>(samples.size(0)), model.source().c_str(), model.kind().c_str(),
              model.process()->name().c_str(), options.solver.c_str(), static_cast<long long>(options.steps),
              static_cast<long long>(solution.stats.nfe), seconds);
  std::printf("  wrote %s\n", options.out.c_str());
  const auto scaling = model.data_scaling();
  if (scaling && is_toy_data(scaling->name) && samples.size(0) >= 2) {
    // Against fresh draws of the generator the network was trained on; the second line is the same distances
    // between two independent sets of data, the floor the sampler could reach at this sample size.
    const auto& s = *scaling;
    const int64_t m = std::min<int64_t>(samples.size(0), 2000);
    auto generator = at::detail::createCPUGenerator(options.seed + 1);
    const auto data = s.scale * sample_toy_data(s.name, m, generator) + s.shift;
    const auto data2 = s.scale * sample_toy_data(s.name, m, generator) + s.shift;
    const auto x = samples.narrow(0, 0, m).to(at::kCPU, at::kDouble);
    auto projections = at::detail::createCPUGenerator(options.seed + 2);
    std::printf("  against %lld fresh %s samples: energy distance %.5f, sliced W2 %.5f, mean %s (data %s)\n",
                static_cast<long long>(m), s.name.c_str(), energy_distance(x, data),
                sliced_wasserstein2(x, data, 64, projections), format_vector(x.mean(0)).c_str(),
                format_vector(data.mean(0)).c_str());
    std::printf("  data vs data (floor):         energy distance %.5f, sliced W2 %.5f\n", energy_distance(data2, data),
                sliced_wasserstein2(data2, data, 64, projections));
  }
  const auto mixture = model.exact_mixture();
  if (!mixture) return;
  const auto cmp = compare_to_mixture(samples, *mixture);
  const auto d = mixture->dim();
  std::printf("  %-22s %s\n", "", "samples  |  mixture");
  std::printf("  %-22s %s  |  %s\n", "mean", format_vector(cmp.sample_mean).c_str(),
              format_vector(mixture->mean()).c_str());
  if (d <= 4) {
    std::printf("  %-22s %s  |  %s\n", "covariance (row-major)", format_vector(cmp.sample_covariance.flatten()).c_str(),
                format_vector(mixture->covariance().flatten()).c_str());
  }
  std::printf("  %-22s %s  |  %s\n", "component fractions", format_vector(cmp.component_fraction).c_str(),
              format_vector(mixture->weights()).c_str());
  std::printf("  %-22s %.4f +- %.4f (exact log p_0 of the samples)\n", "mean log-likelihood",
              cmp.mean_log_likelihood, cmp.mean_log_likelihood_stderr);
  std::printf("  max |mean error| = %.4f, max |covariance error| = %.4f\n", cmp.max_abs_mean_error,
              cmp.max_abs_covariance_error);
}

int run_sample(const SampleOptions& options) {
  // Everything that can be wrong with the input is checked before the output file is created.
  if (options.n <= 0) throw InputError("--n must be positive, got " + std::to_string(options.n));
  if (options.steps <= 0) throw InputError("--steps must be positive, got " + std::to_string(options.steps));
  if (options.save_every < 0) throw InputError("--save-every must be >= 0, got " + std::to_string(options.save_every));
  if (options.out.empty()) throw InputError("--out must name a file");
  check_output_path(options.out);   // a missing directory: exit 2 before any work
  (void)solver_info(options.solver);
  const auto device = parse_device(options.device);
  const auto dtype = parse_dtype(options.dtype);
  const auto model = load_model(options.model);
  model->place(device, dtype);

  SamplingRequest request;
  request.process = model->process();
  request.model = model->score();
  request.solver = options.solver;
  request.solver_options.snr = options.snr;
  request.solver_options.corrector_steps = options.corrector_steps;
  request.solver_options.eta = options.eta;
  request.grid = options.grid;
  request.rtol = options.rtol;
  request.atol = options.atol;
  (void)make_stepper(options.solver, request.solver_options);   // validates --snr and --corrector-steps
  request.steps = options.steps;
  request.n = options.n;
  request.seed = options.seed;
  request.device = device;
  request.dtype = dtype;
  request.save_every = options.save_every;
  request.denoise_last = !options.keep_last_noise;

  std::map<std::string, std::string> attributes = {
      {"process", model->process()->name()}, {"model", model->source()}, {"model_kind", model->kind()},
      {"solver", options.solver},         {"steps", std::to_string(options.steps)}, {"grid", options.grid},
      {"seed", std::to_string(options.seed)}, {"n", std::to_string(options.n)},
      {"device", options.device},         {"dtype", dtype_name(dtype)},
      {"sdeflow_version", SDEFLOW_VERSION}, {"command_line", recorded_command_line()}};
  if (model->process()->augmented()) {
    // CLD: the sampler runs in phase space; /samples keeps the data half, the trajectory the whole state.
    attributes["state"] = "phase space (x, v): /trajectory/x holds the whole state [S, N, " +
                          std::to_string(model->dim()) + "], /samples the data half x [N, " +
                          std::to_string(model->process()->data_dim(model->dim())) + "]";
  }
  if (options.solver == "pc") {
    attributes["snr"] = std::to_string(options.snr);
    attributes["corrector_steps"] = std::to_string(options.corrector_steps);
  }

  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<SampleFileWriter> writer;
  {
    // Not committed (an error below): the writer removes the file (ResultFile::OnFailure::discard).
    writer = std::make_unique<SampleFileWriter>(options.out, attributes, options.save_every > 0, ResultFile::OnFailure::discard);
    ProgressBar bar("sampling");
    const auto solution = sample(request, writer.get(), [&](int64_t done, int64_t total) { bar.update(done, total); });
    bar.finish();
    const int64_t failed = (solution.status != 0).sum().item<int64_t>();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto samples = model->process()->data_part(solution.y);
    writer->finish(samples, {{"nfe", static_cast<double>(solution.stats.nfe)},
                                {"failed", static_cast<double>(failed)},
                                {"wall_seconds", seconds}});
    writer.reset();
    if (!options.quiet) print_summary(options, *model, samples, solution, seconds);
    if (failed > 0) {
      std::cerr << "sdeflow: error: " << failed << " of " << options.n
                << " samples failed (non-finite state); they are NaN in " << options.out << "\n";
      return kExitFailure;
    }
  }
  return kExitOk;
}

}  // namespace

Runner add_sample_command(CLI::App& app) {
  auto options = std::make_shared<SampleOptions>();
  auto* cmd = app.add_subcommand("sample", "sample a model with a reverse-SDE or probability-flow ODE solver");
  std::string solvers;
  for (const auto& info : sampling_solvers()) solvers += "\n    " + solver_help(info);
  cmd->add_option("--model", options->model, "model file (HDF5), or builtin:gmm2d")->capture_default_str();
  cmd->add_option("--solver", options->solver, "sampler:" + solvers)->capture_default_str();
  cmd->add_option("--steps", options->steps, "number of uniform steps from T to eps")->capture_default_str();
  cmd->add_option("--n", options->n, "number of samples")->capture_default_str();
  cmd->add_option("--seed", options->seed, "random seed")->capture_default_str();
  cmd->add_option("--out", options->out, "output HDF5 file")->capture_default_str();
  cmd->add_option("--save-every", options->save_every, "save the trajectory every K steps (0: no trajectory)")
      ->capture_default_str();
  cmd->add_option("--device", options->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  cmd->add_option("--dtype", options->dtype, "float64 or float32")->capture_default_str();
  cmd->add_option("--snr", options->snr, "pc: Langevin signal-to-noise ratio")->capture_default_str();
  cmd->add_option("--corrector-steps", options->corrector_steps, "pc: Langevin steps per step")->capture_default_str();
  cmd->add_option("--eta", options->eta, "ddim-stochastic: noise scale in (0, 1]")->capture_default_str();
  cmd->add_option("--rtol", options->rtol, "ggf: relative tolerance")->capture_default_str();
  cmd->add_option("--atol", options->atol, "ggf: absolute tolerance")->capture_default_str();
  cmd->add_option("--grid", options->grid, "time grid: uniform, quadratic, logsnr or karras")->capture_default_str();
  cmd->add_flag("--keep-last-noise", options->keep_last_noise,
                "SDE solvers: add noise on the last step too (default: return its noise-free mean)");
  cmd->add_flag("--quiet", options->quiet, "print no summary");
  return [options] { return run_sample(*options); };
}

}  // namespace sdeflow::app
