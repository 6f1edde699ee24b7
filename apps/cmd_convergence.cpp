// `sdeflow convergence`: strong and weak convergence orders of SDE solvers on one Brownian tree per run,
// written to HDF5 tables (docs/formats.md, "Convergence files") and printed.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "apps/common.hpp"
#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/result_file.hpp"
#include "samplers/registry.hpp"
#include "sdeflow_version.hpp"
#include "studies/convergence.hpp"
#include "io/output_path.hpp"

namespace sdeflow::app {

namespace {

struct Options {
  ConvergenceOptions study;
  std::string out = "sdeflow-convergence.h5";
  bool quiet = false;
};

int run(const Options& options) {
  if (options.out.empty()) throw InputError("--out must name a file");
  check_output_path(options.out);   // a missing directory: exit 2 before any work
  validate(options.study);
  const auto result = run_convergence(options.study);
  {
    // Not committed (an error below): removed when `out_file` goes (ResultFile::OnFailure::discard).
    ResultFile out_file(options.out, "sdeflow.convergence", 1,
                      {{"problem", options.study.problem},
                       {"description", result.description},
                       {"command_line", recorded_command_line()},
                       {"sdeflow_version", SDEFLOW_VERSION}},
                      ResultFile::OnFailure::discard);
    const auto& file = out_file.file();
    file.set_attribute("paths", options.study.paths);
    file.set_attribute("seed", static_cast<int64_t>(options.study.seed));
    auto orders = file.create_group("orders").create_group(options.study.problem);
    if (!options.quiet) {
      std::printf("%s\n%-10s %7s %12s %10s %12s %10s %8s\n", result.description.c_str(), "solver", "steps",
                  "strong err", "+-", "weak err", "+-", "nfe");
    }
    for (const auto& table : result.tables) {
      auto group = orders.create_group(table.solver);
      if (!table.applicable) {
        group.set_attribute("note", table.note);
        if (!options.quiet) std::printf("%-10s not applicable: %s\n", table.solver.c_str(), table.note.c_str());
        continue;
      }
      group.write_tensor("steps", at::tensor(table.steps, at::kLong));
      group.write_tensor("step_size", at::tensor(table.step_size, at::kDouble));
      group.write_tensor("strong_error", at::tensor(table.strong_error, at::kDouble));
      group.write_tensor("strong_error_se", at::tensor(table.strong_error_se, at::kDouble));
      group.write_tensor("weak_error", at::tensor(table.weak_error, at::kDouble));
      group.write_tensor("weak_error_se", at::tensor(table.weak_error_se, at::kDouble));
      group.write_tensor("nfe", at::tensor(table.nfe, at::kLong));
      group.write_tensor("failures", at::tensor(table.failures, at::kLong));
      group.write_tensor("wall_time_s", at::tensor(table.seconds, at::kDouble));
      group.set_attribute("strong", table.strong);
      group.set_attribute("strong_ci", std::vector<double>{table.strong_ci[0], table.strong_ci[1]});
      group.set_attribute("weak", table.weak);
      group.set_attribute("weak_ci", std::vector<double>{table.weak_ci[0], table.weak_ci[1]});
      group.set_attribute("weak_levels", table.weak_levels);
      if (!options.quiet) {
        for (size_t i = 0; i < table.steps.size(); ++i) {
          std::printf("%-10s %7lld %12.4e %10.2e %12.4e %10.2e %8lld\n", table.solver.c_str(),
                      static_cast<long long>(table.steps[i]), table.strong_error[i], table.strong_error_se[i],
                      table.weak_error[i], table.weak_error_se[i], static_cast<long long>(table.nfe[i]));
        }
      }
    }
    out_file.commit();
    if (!options.quiet) {
      std::printf("\n%-10s %8s %20s %8s %20s\n", "solver", "strong", "95% interval", "weak", "95% interval");
      for (const auto& t : result.tables) {
        if (!t.applicable) continue;
        if (std::isnan(t.weak)) {
          std::printf("%-10s %8.3f     [%6.3f, %6.3f]   unresolved (weak error within 2 SE of 0 at %lld of %zu steps)\n",
                      t.solver.c_str(), t.strong, t.strong_ci[0], t.strong_ci[1],
                      static_cast<long long>(t.steps.size()) - static_cast<long long>(t.weak_levels), t.steps.size());
        } else {
          std::printf("%-10s %8.3f     [%6.3f, %6.3f] %8.3f     [%6.3f, %6.3f]  (%lld levels)\n", t.solver.c_str(),
                      t.strong, t.strong_ci[0], t.strong_ci[1], t.weak, t.weak_ci[0], t.weak_ci[1],
                      static_cast<long long>(t.weak_levels));
        }
      }
      std::printf("wrote %s\n", options.out.c_str());
    }
  }
  return kExitOk;
}

}  // namespace

Runner add_convergence_command(CLI::App& app) {
  auto options = std::make_shared<Options>();
  auto& s = options->study;
  auto* cmd = app.add_subcommand("convergence", "strong and weak convergence orders of SDE solvers");
  cmd->add_option("--problem", s.problem, "gbm, ou, additive or model")->capture_default_str();
  std::string solvers;
  for (const auto& name : general_sde_solvers()) solvers += "\n    " + solver_help(solver_info(name));
  cmd->add_option("--solvers", s.solvers, "comma-separated general-purpose SDE solvers:" + solvers)
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--steps", s.steps, "comma-separated step counts (the ladder)")->delimiter(',')->capture_default_str();
  cmd->add_option("--paths", s.paths, "Brownian paths")->capture_default_str();
  cmd->add_option("--seed", s.seed, "random seed (the Brownian tree)")->capture_default_str();
  cmd->add_option("--reference-steps", s.reference_steps, "steps of the fine reference (no exact solution)")->capture_default_str();
  cmd->add_option("--reference-solver", s.reference_solver, "solver of the fine reference")->capture_default_str();
  cmd->add_option("--bootstrap", s.bootstrap, "bootstrap resamples for the confidence intervals")->capture_default_str();
  cmd->add_option("--model", s.model, "problem model: the model file whose reverse SDE is studied")->capture_default_str();
  cmd->add_option("--out", options->out, "output HDF5 file")->capture_default_str();
  cmd->add_flag("--quiet", options->quiet, "print nothing");
  return [options] { return run(*options); };
}

}  // namespace sdeflow::app
