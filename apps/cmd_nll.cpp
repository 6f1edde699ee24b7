// `sdeflow nll`: negative log-likelihood (nats and bits/dim) of a data set under a model, by the augmented
// probability-flow ODE, batch by batch; per-row results and a summary go to HDF5 (flushed per batch).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "apps/common.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "io/data_file.hpp"
#include "io/model_file.hpp"
#include "io/nll_file.hpp"
#include "likelihood/likelihood.hpp"
#include "processes/mixture.hpp"
#include "sdeflow_version.hpp"
#include "io/output_path.hpp"

namespace sdeflow::app {

namespace {

struct NllOptions {
  std::string model = "builtin:gmm2d";
  std::string data;
  std::string solver = "dopri5";
  int64_t steps = 100;
  int64_t max_steps = 100000;
  double rtol = 1e-5, atol = 1e-5;
  std::string trace = "exact";
  int64_t probes = 1;
  double eps = 1e-5;
  std::string prior = "standard";
  uint64_t seed = 0;
  int64_t batch = 1000;
  std::string out = "sdeflow-nll.h5";
  std::string device = "cpu";
  std::string dtype = "float64";
  double scale = 1.0, shift = 0.0;
  int64_t levels = 256;
  int64_t dequant_samples = 1;
  int64_t velocity_samples = 1;
  bool quiet = false;
};

struct ScalingGiven {
  bool scale = false, shift = false, levels = false;
};

int run_nll(const NllOptions& options, const ScalingGiven& scaling_given) {
  // Everything that can be wrong with the input is checked before the output file is created.
  if (options.data.empty()) throw InputError("--data must name a data file");
  if (options.out.empty()) throw InputError("--out must name a file");
  check_output_path(options.out);   // a missing directory: exit 2 before any work
  if (options.batch <= 0) throw InputError("--batch must be positive, got " + std::to_string(options.batch));
  const auto device = parse_device(options.device);
  const auto dtype = parse_dtype(options.dtype);
  LikelihoodOptions likelihood;
  likelihood.ode.solver = options.solver;
  likelihood.ode.rtol = options.rtol;
  likelihood.ode.atol = options.atol;
  likelihood.ode.steps = options.steps;
  likelihood.ode.max_steps = options.max_steps;
  likelihood.trace = parse_trace_method(options.trace);
  likelihood.probes = options.probes;
  likelihood.eps = options.eps;
  likelihood.prior = parse_prior(options.prior);
  const auto model_file = load_model(options.model);
  model_file->place(device, dtype);
  auto model = model_file->score();
  validate(likelihood, *model_file->process(), *model);
  likelihood.velocity_samples = options.velocity_samples;
  const bool augmented = model_file->process()->augmented();
  if (!augmented && options.velocity_samples != 1) {
    throw InputError("--velocity-samples applies to processes in phase space (cld); process " +
                     model_file->process()->name() + " is on the data itself");
  }
  if (options.velocity_samples <= 0) {
    throw InputError("--velocity-samples must be positive, got " + std::to_string(options.velocity_samples));
  }
  const auto data = load_data(options.data, model_file->process()->data_dim(model->dim()));
  DataTransform transform;
  transform.scale = options.scale;
  transform.shift = options.shift;
  transform.integer = data.integer;
  transform.levels = options.levels;
  // A trained network knows the map its training data went through; explicit options still win.
  if (const auto scaling = model_file->data_scaling()) {
    if (!scaling_given.scale) transform.scale = scaling->scale;
    if (!scaling_given.shift) transform.shift = scaling->shift;
    if (!scaling_given.levels && scaling->integer) transform.levels = scaling->levels;
  }
  transform.dequant_samples = options.dequant_samples;
  validate(transform);
  if (!data.integer && options.dequant_samples != 1) {
    throw InputError("--dequant-samples applies to integer data only; " + options.data + " holds real values");
  }

  const int64_t n = data.data.size(0);
  const int64_t dim = data.data.size(1);
  std::map<std::string, std::string> attributes = {
      {"model", model_file->source()}, {"model_kind", model_file->kind()},   {"process", model_file->process()->name()},
      {"data", options.data},             {"solver", options.solver},        {"trace", options.trace},
      {"prior", options.prior},           {"rtol", std::to_string(options.rtol)},
      {"atol", std::to_string(options.atol)}, {"eps", std::to_string(options.eps)},
      {"seed", std::to_string(options.seed)}, {"batch", std::to_string(options.batch)},
      {"device", options.device},         {"dtype", dtype_name(dtype)},
      {"data_integer", data.integer ? "1" : "0"}, {"scale", std::to_string(transform.scale)},
      {"shift", std::to_string(transform.shift)},   {"sdeflow_version", SDEFLOW_VERSION},
      {"command_line", recorded_command_line()}};
  if (likelihood.trace == TraceMethod::hutchinson_gauss || likelihood.trace == TraceMethod::hutchinson_rademacher) {
    attributes["probes"] = std::to_string(options.probes);
  }
  // "density": -log p(x) up to the solver's error; "bound": an upper bound on it (the velocity bound of an augmented
  // process, or the dequantisation bound of integer data).
  attributes["nll_kind"] = augmented || data.integer ? "bound" : "density";
  if (augmented) attributes["velocity_samples"] = std::to_string(options.velocity_samples);
  if (!ode_solver_info(options.solver).adaptive) attributes["steps"] = std::to_string(options.steps);
  if (data.integer) {
    attributes["levels"] = std::to_string(transform.levels);
    attributes["dequant_samples"] = std::to_string(options.dequant_samples);
  }

  std::unique_ptr<NllFileWriter> writer;
  {
    // Not committed (an error below): the writer removes the file (ResultFile::OnFailure::discard).
    writer = std::make_unique<NllFileWriter>(options.out, attributes, ResultFile::OnFailure::discard);
    ProgressBar bar("nll");
    const auto result = dataset_negative_log_likelihood(
        model_file->process(), model, data.data, likelihood, transform, options.batch, device, dtype, options.seed,
        [&](const LikelihoodResult& rows, int64_t done, int64_t total) {
          writer->append(rows.nll, rows.bpd, rows.nfe, rows.status);
          bar.update(done, total);
        });
    bar.finish();
    writer->finish(result.summary());
    writer.reset();
    if (!options.quiet) {
      std::printf("sdeflow nll: %lld rows of %s (D = %lld) under %s (process %s)\n", static_cast<long long>(n),
                  options.data.c_str(), static_cast<long long>(dim), model_file->source().c_str(),
                  model_file->process()->name().c_str());
      std::printf("  solver %s, trace %s, prior %s, eps %g%s\n", options.solver.c_str(), options.trace.c_str(),
                  options.prior.c_str(), options.eps,
                  ode_solver_info(options.solver).adaptive
                      ? (", rtol " + std::to_string(options.rtol) + ", atol " + std::to_string(options.atol)).c_str()
                      : (", " + std::to_string(options.steps) + " steps").c_str());
      std::printf("  %-16s %14s %14s\n", "", "mean", "std. error");
      std::printf("  %-16s %14.6f %14.6f\n", "NLL (nats)", result.nll_mean, result.nll_stderr);
      std::printf("  %-16s %14.6f %14.6f\n", "bits/dim", result.bpd_mean, result.bpd_stderr);
      std::printf("  %-16s %14.1f %14.0f (max)\n", "NFE per row", result.nfe_mean, result.nfe_max);
      std::printf("  %-16s %14.3f\n", "wall time (s)", result.wall_time_s);
      std::printf("  %-16s %14lld\n", "failures", static_cast<long long>(result.failures));
      std::printf("  wrote %s\n", options.out.c_str());
    }
    if (result.failures > 0) {
      std::cerr << "sdeflow: error: " << result.failures << " of " << n << " rows failed (status != 0, NLL NaN) in "
                << options.out << "\n";
      return kExitFailure;
    }
  }
  return kExitOk;
}

}  // namespace

Runner add_nll_command(CLI::App& app) {
  auto options = std::make_shared<NllOptions>();
  auto* cmd = app.add_subcommand("nll", "negative log-likelihood (nats, bits/dim) of a data set under a model");
  std::string solvers;
  for (const auto& info : ode_solvers()) solvers += "\n    " + info.name + ": " + info.description;
  cmd->add_option("--model", options->model, "model file (HDF5), or builtin:gmm2d")->capture_default_str();
  cmd->add_option("--data", options->data, "data file (HDF5 with /data [N, D], float or integer)")->required();
  cmd->add_option("--solver", options->solver, "ODE solver:" + solvers)->capture_default_str();
  cmd->add_option("--steps", options->steps, "fixed-step solvers: number of uniform steps")->capture_default_str();
  cmd->add_option("--max-steps", options->max_steps, "adaptive solvers: step attempts per sample")->capture_default_str();
  cmd->add_option("--rtol", options->rtol, "relative tolerance")->capture_default_str();
  cmd->add_option("--atol", options->atol, "absolute tolerance")->capture_default_str();
  cmd->add_option("--trace", options->trace, "divergence: exact, hutchinson-gauss, hutchinson-rademacher, analytic")
      ->capture_default_str();
  cmd->add_option("--probes", options->probes, "Hutchinson probes per sample")->capture_default_str();
  cmd->add_option("--eps", options->eps, "integrate the ODE from eps to T")->capture_default_str();
  cmd->add_option("--prior", options->prior, "density at T: standard (the process's prior) or exact (the model's p_T)")
      ->capture_default_str();
  cmd->add_option("--seed", options->seed, "random seed (probes, dequantisation)")->capture_default_str();
  cmd->add_option("--batch", options->batch, "rows per batch")->capture_default_str();
  cmd->add_option("--out", options->out, "output HDF5 file")->capture_default_str();
  cmd->add_option("--device", options->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  cmd->add_option("--dtype", options->dtype, "float64 or float32")->capture_default_str();
  cmd->add_option("--scale", options->scale, "model space = scale * data + shift (integer data: scale * (x + u) / levels + shift); default: the "
                  "network model's own map, else 1 and 0")
      ->capture_default_str();
  cmd->add_option("--shift", options->shift, "see --scale")->capture_default_str();
  cmd->add_option("--levels", options->levels, "integer data: number of levels (256 for 8-bit images; default: the network model's, else 256)")->capture_default_str();
  cmd->add_option("--dequant-samples", options->dequant_samples,
                  "integer data: uniform dequantisation samples K (importance-weighted, log-mean-exp)")
      ->capture_default_str();
  cmd->add_option("--velocity-samples", options->velocity_samples,
                  "processes in phase space (cld): draws v ~ N(0, gamma M I) per row; the result is the bound "
                  "E_v[-log p(x, v)] - H (attribute nll_kind = bound)")
      ->capture_default_str();
  cmd->add_flag("--quiet", options->quiet, "print no summary");
  return [options, cmd] {
    ScalingGiven given;
    given.scale = cmd->count("--scale") > 0;
    given.shift = cmd->count("--shift") > 0;
    given.levels = cmd->count("--levels") > 0;
    return run_nll(*options, given);
  };
}

}  // namespace sdeflow::app
