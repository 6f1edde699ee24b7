// The sdeflow command-line interface: parses arguments (CLI11, with TOML config files via --config),
// dispatches to a subcommand, maps errors to exit statuses. No numerics here.
#include <CLI/CLI.hpp>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "apps/common.hpp"
#include "core/device.hpp"
#include "io/h5.hpp"
#include "sdeflow_version.hpp"

int main(int argc, char** argv) {
  using namespace sdeflow::app;
  sdeflow::h5::silence_library_errors();
  sdeflow::keep_freed_memory_for_reuse();
  set_command_line(command_line(argc, argv));

  CLI::App app{"sdeflow " SDEFLOW_VERSION ": diffusion generative models as SDE/ODE systems"};
  app.set_version_flag("--version", SDEFLOW_VERSION);
  app.set_config("--config", "", "read options from a TOML file, one table per subcommand ([sample] ...); the command line wins");
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.require_subcommand(1);
  std::map<const CLI::App*, Runner> runners;
  {
    auto sample = add_sample_command(app);
    runners[app.get_subcommand("sample")] = sample;
    auto nll = add_nll_command(app);
    runners[app.get_subcommand("nll")] = nll;
    auto robustness = add_robustness_command(app);
    runners[app.get_subcommand("robustness")] = robustness;
    auto convergence = add_convergence_command(app);
    runners[app.get_subcommand("convergence")] = convergence;
    auto work_precision = add_work_precision_command(app);
    runners[app.get_subcommand("work-precision")] = work_precision;
    auto data = add_data_command(app);
    runners[app.get_subcommand("data")] = data;
    auto train = add_train_command(app);
    runners[app.get_subcommand("train")] = train;
    auto info = add_info_command(app);
    runners[app.get_subcommand("info")] = info;
  }
  // CLI11 reads --config on the top-level app only; users write it after the subcommand too
  // (`sdeflow sample --config run.toml`), so it is moved to the front before parsing.
  std::vector<std::string> arguments;
  for (int i = argc - 1; i >= 1; --i) arguments.emplace_back(argv[i]);   // CLI11 takes them reversed
  for (size_t i = 0; i < arguments.size(); ++i) {
    const auto& argument = arguments[i];
    if (argument.rfind("--config=", 0) == 0) {
      auto moved = argument;
      arguments.erase(arguments.begin() + static_cast<std::ptrdiff_t>(i));
      arguments.push_back(moved);
      break;
    }
    if (argument == "--config" && i > 0) {
      auto option = arguments[i], value = arguments[i - 1];
      arguments.erase(arguments.begin() + static_cast<std::ptrdiff_t>(i - 1), arguments.begin() + static_cast<std::ptrdiff_t>(i + 1));
      arguments.push_back(value);
      arguments.push_back(option);
      break;
    }
  }
  try {
    app.parse(arguments);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "sdeflow: error: " << e.what() << "\n";
    return kExitUsage;
  }
  const auto* chosen = app.get_subcommands().front();
  return guarded(runners.at(chosen));
}
