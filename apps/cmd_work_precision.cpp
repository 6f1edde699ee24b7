// `sdeflow work-precision`: error vs evaluations vs time for ODE solvers on probability-flow sampling or on
// a mixture's NLL, written to HDF5 (docs/formats.md, "Work-precision files") and printed.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "apps/common.hpp"
#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/result_file.hpp"
#include "sdeflow_version.hpp"
#include "studies/work_precision.hpp"
#include "io/output_path.hpp"
#include "samplers/registry.hpp"
#include "solvers/ode.hpp"

namespace sdeflow::app {

namespace {

struct Options {
  WorkPrecisionOptions study;
  std::string out = "sdeflow-work-precision.h5";
  bool quiet = false;
};

int run(const Options& options) {
  if (options.out.empty()) throw InputError("--out must name a file");
  check_output_path(options.out);   // a missing directory: exit 2 before any work
  validate(options.study);
  std::string description;
  const auto tables = run_work_precision(options.study, description);
  {
    // Not committed (an error below): removed when `out_file` goes (ResultFile::OnFailure::discard).
    ResultFile out_file(options.out, "sdeflow.work_precision", 1,
                      {{"task", options.study.task},
                       {"model", options.study.model},
                       {"description", description},
                       {"command_line", recorded_command_line()},
                       {"sdeflow_version", SDEFLOW_VERSION}},
                      ResultFile::OnFailure::discard);
    const auto& file = out_file.file();
    auto root = file.create_group("work_precision").create_group(options.study.task);
    if (!options.quiet) {
      std::printf("%s\n%-14s %12s %12s %12s %10s %10s\n", description.c_str(), "solver", "steps/tol", "max error",
                  "mean error", "nfe", "time (s)");
    }
    for (const auto& t : tables) {
      auto group = root.create_group(t.solver);
      group.set_attribute("adaptive", int64_t{t.adaptive ? 1 : 0});
      if (!t.note.empty()) {
        group.set_attribute("note", t.note);
        if (!options.quiet) std::printf("%-14s not applicable: %s\n", t.solver.c_str(), t.note.c_str());
        continue;
      }
      group.write_tensor("parameter", at::tensor(t.parameter, at::kDouble));
      group.write_tensor("error_max", at::tensor(t.error_max, at::kDouble));
      group.write_tensor("error_mean", at::tensor(t.error_mean, at::kDouble));
      group.write_tensor("nfe_mean", at::tensor(t.nfe, at::kDouble));
      group.write_tensor("wall_time_s", at::tensor(t.seconds, at::kDouble));
      group.write_tensor("failures", at::tensor(t.failures, at::kLong));
      if (!options.quiet) {
        for (size_t i = 0; i < t.parameter.size(); ++i) {
          std::printf("%-14s %12g %12.3e %12.3e %10.1f %10.3f\n", t.solver.c_str(), t.parameter[i], t.error_max[i],
                      t.error_mean[i], t.nfe[i], t.seconds[i]);
        }
      }
    }
    out_file.commit();
    if (!options.quiet) std::printf("wrote %s\n", options.out.c_str());
  }
  return kExitOk;
}

}  // namespace

Runner add_work_precision_command(CLI::App& app) {
  auto options = std::make_shared<Options>();
  auto& s = options->study;
  auto* cmd = app.add_subcommand("work-precision", "error vs evaluations vs time of ODE solvers (sampling or NLL)");
  cmd->add_option("--task", s.task, "pf-ode (probability-flow sampling) or nll")->capture_default_str();
  cmd->add_option("--model", s.model, "mixture model file, or builtin:gmm2d")->capture_default_str();
  std::string solvers;
  for (const auto& info : ode_solvers()) solvers += (solvers.empty() ? "" : ", ") + info.name;
  for (const auto& info : sampling_solvers()) {
    if (!info.stochastic && info.scope == SolverScope::diffusion) solvers += ", " + info.name;
  }
  cmd->add_option("--solvers", s.solvers, "comma-separated ODE solvers (" + solvers + ")")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--steps", s.steps, "fixed-step solvers: comma-separated step counts")->delimiter(',')->capture_default_str();
  cmd->add_option("--tolerances", s.tolerances, "adaptive solvers: comma-separated rtol = atol")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--paths", s.n, "samples (pf-ode: x_T draws; nll: data points)")->capture_default_str();
  cmd->add_option("--seed", s.seed, "random seed")->capture_default_str();
  cmd->add_option("--eps", s.eps, "smallest time")->capture_default_str();
  cmd->add_option("--out", options->out, "output HDF5 file")->capture_default_str();
  cmd->add_flag("--quiet", options->quiet, "print nothing");
  return [options] { return run(*options); };
}

}  // namespace sdeflow::app
