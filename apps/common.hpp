#pragma once
// Shared CLI plumbing: the command line as recorded in output files, a progress bar on stderr when it is a
// terminal, and the mapping of exceptions to one line on stderr and an exit status (0 ok, 1 runtime or
// numerical failure, 2 usage or input error).
#include <chrono>
#include <functional>
#include <string>

namespace CLI { class App; }

namespace sdeflow::app {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// argv joined with spaces (arguments with spaces quoted), for the `command_line` attribute.
std::string command_line(int argc, char** argv);
void set_command_line(std::string line);
const std::string& recorded_command_line();

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);   // enabled only when stderr is a terminal
  void update(int64_t done, int64_t total, const std::string& note = "");   // note: e.g. "loss 0.91  212 steps/s"
  void finish();
  ~ProgressBar() { finish(); }

 private:
  std::string label_;
  bool enabled_;
  bool open_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};


// Runs `body`, mapping sdeflow errors and exceptions to an exit status with one line on stderr.
int guarded(const std::function<int()>& body);

// Each subcommand registers its options on the top-level app and returns what runs it after parsing.
using Runner = std::function<int()>;
Runner add_sample_command(CLI::App& app);
Runner add_info_command(CLI::App& app);
Runner add_nll_command(CLI::App& app);
Runner add_robustness_command(CLI::App& app);
Runner add_convergence_command(CLI::App& app);
Runner add_work_precision_command(CLI::App& app);
Runner add_data_command(CLI::App& app);
Runner add_train_command(CLI::App& app);

}  // namespace sdeflow::app
