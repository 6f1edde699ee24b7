// `sdeflow robustness`: sample quality vs number of steps for each sampler, and NLL vs solver tolerance,
// written to HDF5 tables (docs/formats.md, "Robustness files") and printed.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "apps/common.hpp"
#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/result_file.hpp"
#include "io/model_file.hpp"
#include "sdeflow_version.hpp"
#include "studies/robustness.hpp"
#include "io/output_path.hpp"
#include "samplers/registry.hpp"
#include "solvers/ode.hpp"

namespace sdeflow::app {

namespace {

struct Options {
  std::string model = "builtin:gmm2d";
  std::string data;            // held-out data; default: exact samples of the mixture
  std::string out = "sdeflow-robustness.h5";
  RobustnessOptions study;
  bool quiet = false;
};

at::Tensor column(const std::vector<double>& values) { return at::tensor(values, at::kDouble); }
at::Tensor column(const std::vector<int64_t>& values) { return at::tensor(values, at::kLong); }

int run(Options& options) {
  if (options.out.empty()) throw InputError("--out must name a file");
  check_output_path(options.out);   // a missing directory: exit 2 before any work
  validate(options.study);
  const auto model_file = load_model(options.model);
  auto model = model_file->score();
  const auto scaling = model_file->data_scaling();
  const auto sets = robustness_held_out(*model_file, options.data, options.study);
  const auto& held_out = sets.held_out;
  const auto& floor_sample = sets.floor;
  const auto& data_source = sets.source;

  {
    // Not committed (an error below): removed when `out_file` goes (ResultFile::OnFailure::discard).
    ResultFile out_file(options.out, "sdeflow.robustness", 1,
                      {{"model", model_file->source()},
                       {"process", model_file->process()->name()},
                       {"data", data_source},
                       {"trace", options.study.trace},
                       {"prior", options.study.prior},
                       {"grid", options.study.grid},
                       {"command_line", recorded_command_line()},
                       {"sdeflow_version", SDEFLOW_VERSION}},
                      ResultFile::OnFailure::discard);
    const auto& file = out_file.file();
    file.set_attribute("n", options.study.n);
    file.set_attribute("seed", static_cast<int64_t>(options.study.seed));
    file.create_group("sampling");
    file.create_group("nll");
    file.flush();
    if (!options.quiet) {
      std::printf("%-18s %6s %8s %12s %12s %12s %14s %9s\n", "sampler", "steps", "nfe", "mmd2", "sliced_w2", "energy",
                  "mean log p", "time (s)");
    }
    const auto floor = run_robustness(
        model_file->process(), model, model_file->exact_mixture(), held_out, floor_sample, options.study,
        [&](const std::string& sampler, const std::vector<SamplerRow>& rows) {
          std::vector<int64_t> steps, nfe, failures;
          std::vector<double> mmd2, sw2, energy, ll, ll_se, seconds;
          for (const auto& r : rows) {
            steps.push_back(r.steps); nfe.push_back(r.nfe); failures.push_back(r.failures);
            mmd2.push_back(r.mmd2); sw2.push_back(r.sliced_w2); energy.push_back(r.energy);
            ll.push_back(r.mean_log_likelihood); ll_se.push_back(r.mean_log_likelihood_stderr);
            seconds.push_back(r.seconds);
            if (!options.quiet) {
              std::printf("%-18s %6lld %8lld %12.4e %12.4e %12.4e %14.4f %9.2f\n", sampler.c_str(),
                          static_cast<long long>(r.steps), static_cast<long long>(r.nfe), r.mmd2, r.sliced_w2,
                          r.energy, r.mean_log_likelihood, r.seconds);
            }
          }
          auto group = file.group("sampling").create_group(sampler);
          group.write_tensor("steps", column(steps));
          group.write_tensor("nfe", column(nfe));
          group.write_tensor("failures", column(failures));
          group.write_tensor("mmd2", column(mmd2));
          group.write_tensor("sliced_w2", column(sw2));
          group.write_tensor("energy", column(energy));
          group.write_tensor("mean_log_likelihood", column(ll));
          group.write_tensor("mean_log_likelihood_stderr", column(ll_se));
          group.write_tensor("wall_time_s", column(seconds));
          file.flush();
        },
        [&](const std::string& solver, const std::vector<NllRow>& rows) {
          std::vector<double> tol, nll, nll_se, nfe, mean_err, max_err, seconds;
          std::vector<int64_t> failures;
          if (!options.quiet) {
            std::printf("\n%-18s %10s %12s %10s %10s %12s %12s %9s\n", "nll solver", "tolerance", "nll", "stderr",
                        "nfe", "mean |err|", "max |err|", "time (s)");
          }
          for (const auto& r : rows) {
            tol.push_back(r.tolerance); nll.push_back(r.nll_mean); nll_se.push_back(r.nll_stderr);
            nfe.push_back(r.nfe_mean); mean_err.push_back(r.mean_abs_error); max_err.push_back(r.max_abs_error);
            seconds.push_back(r.seconds); failures.push_back(r.failures);
            if (!options.quiet) {
              std::printf("%-18s %10.0e %12.6f %10.2e %10.1f %12.3e %12.3e %9.2f\n", solver.c_str(), r.tolerance,
                          r.nll_mean, r.nll_stderr, r.nfe_mean, r.mean_abs_error, r.max_abs_error, r.seconds);
            }
          }
          auto group = file.group("nll").create_group(solver);
          group.write_tensor("tolerance", column(tol));
          group.write_tensor("nll_mean", column(nll));
          group.write_tensor("nll_stderr", column(nll_se));
          group.write_tensor("nfe_mean", column(nfe));
          group.write_tensor("mean_abs_error", column(mean_err));
          group.write_tensor("max_abs_error", column(max_err));
          group.write_tensor("wall_time_s", column(seconds));
          group.write_tensor("failures", column(failures));
          file.flush();
        });
    const auto sampling = file.group("sampling");
    sampling.set_attribute("bandwidth", floor.bandwidth);
    sampling.set_attribute("mmd2_floor", floor.mmd2);
    sampling.set_attribute("sliced_w2_floor", floor.sliced_w2);
    sampling.set_attribute("energy_floor", floor.energy);
    out_file.commit();
    if (!options.quiet) {
      std::printf("\nnoise floor (two independent held-out sets of %lld): mmd2 %.3e, sliced_w2 %.3e, energy %.3e; "
                  "RBF bandwidth %.4f\nwrote %s\n",
                  static_cast<long long>(options.study.n), floor.mmd2, floor.sliced_w2, floor.energy, floor.bandwidth,
                  options.out.c_str());
    }
  }
  return kExitOk;
}

}  // namespace

Runner add_robustness_command(CLI::App& app) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("robustness", "sample quality vs steps per sampler, and NLL vs solver tolerance");
  auto& s = options->study;
  cmd->add_option("--model", options->model, "model file (HDF5), or builtin:gmm2d")->capture_default_str();
  cmd->add_option("--data", options->data, "held-out data (/data [N, D]); default: exact samples of the mixture");
  std::string samplers, adaptive;
  for (const auto& info : sampling_solvers()) samplers += (samplers.empty() ? "" : ", ") + info.name;
  for (const auto& info : ode_solvers()) {
    if (info.adaptive) adaptive += (adaptive.empty() ? "" : ", ") + info.name;
  }
  cmd->add_option("--samplers", s.samplers, "comma-separated samplers (" + samplers + "; `sample --help` says more)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--grid", s.grid, "time grid of the samplers: uniform, quadratic, logsnr, karras")->capture_default_str();
  cmd->add_option("--steps", s.steps, "comma-separated step counts")->delimiter(',')->capture_default_str();
  cmd->add_option("--n", s.n, "samples per (sampler, steps)")->capture_default_str();
  cmd->add_option("--seed", s.seed, "random seed")->capture_default_str();
  cmd->add_option("--bandwidth", s.bandwidth, "RBF kernel bandwidth for MMD^2 (0: median heuristic)")->capture_default_str();
  cmd->add_option("--projections", s.projections, "sliced Wasserstein directions")->capture_default_str();
  cmd->add_option("--nll-solvers", s.nll_solvers, "comma-separated adaptive ODE solvers for the NLL part (" + adaptive + ")")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--tolerances", s.tolerances, "comma-separated rtol = atol values")->delimiter(',')->capture_default_str();
  cmd->add_option("--nll-n", s.nll_n, "held-out rows for the NLL part (0: skip)")->capture_default_str();
  cmd->add_option("--trace", s.trace, "divergence for the NLL part")->capture_default_str();
  cmd->add_option("--prior", s.prior, "density at T for the NLL part: standard or exact")->capture_default_str();
  cmd->add_option("--eps", s.eps, "NLL integration start time")->capture_default_str();
  cmd->add_option("--out", options->out, "output HDF5 file")->capture_default_str();
  cmd->add_flag("--quiet", options->quiet, "print nothing");
  return [options] { return run(*options); };
}

}  // namespace sdeflow::app
