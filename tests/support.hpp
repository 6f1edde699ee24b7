#pragma once
// Helpers shared by the test files: a scratch directory, and running the sdeflow CLI as a child process.
#include <cmath>
#include <filesystem>
#include <vector>
#include <string>

namespace sdeflow::test {

// A fresh directory under $SDEFLOW_TEST_TMP (or the system temp dir) named after `name`.
std::filesystem::path scratch_dir(const std::string& name);

struct CommandResult {
  int exit_status = -1;      // the child's exit status; 128 + N if it was killed by signal N
  std::string output;        // stdout and stderr together
};
// Runs "$SDEFLOW_BIN <arguments>" through /bin/sh with stderr merged into stdout.
// Least-squares slope of log(y) against log(x): a measured convergence order.
inline double log_log_slope(const std::vector<double>& x, const std::vector<double>& y) {
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    mx += std::log(x[i]) / x.size();
    my += std::log(y[i]) / y.size();
  }
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (std::log(x[i]) - mx) * (std::log(y[i]) - my);
    sxx += std::pow(std::log(x[i]) - mx, 2);
  }
  return sxy / sxx;
}

CommandResult run_cli(const std::string& arguments, const std::string& environment = "");

// Runs the CLI with `arguments` and checks the handling of a bad input: exit status 2, `message` in the
// output, and no file at `out`.
void expect_input_error(const std::string& arguments, const std::string& message, const std::filesystem::path& out);

}  // namespace sdeflow::test
