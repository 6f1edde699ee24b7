#pragma once
// Helpers shared by the test files: a scratch directory, and running the sdeflow CLI as a child process.
#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <vector>
#include <string>

namespace sdeflow::test {

// A fresh directory under $SDEFLOW_TEST_TMP (or the system temp dir) named after `name`.
std::filesystem::path scratch_dir(const std::string& name);

struct CommandResult {
  int exit_status = -1;      // the child's exit status; 128 + N if it was killed by signal N
  std::string output;        // stdout and stderr together
};
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

// Rows of a batch are independent problems, but their bits may depend on the batch composition: vectorised
// kernels choose code paths by size and by CPU (docs/testing.md, "Determinism"). Results for the same rows
// computed in different batch compositions are compared to a few ulps relative, never bit for bit:
// |a - b| <= relative * max(|a|, |b|) elementwise, with a floor of relative * 1e-3 * max|b| for entries near 0.
// NaN entries must be NaN in both.
inline bool equal_to_ulps(const at::Tensor& a, const at::Tensor& b, double relative = 1e-12) {
  if (!a.sizes().equals(b.sizes())) return false;
  const auto x = a.to(at::kDouble), y = b.to(at::kDouble);
  const auto nan_x = at::isnan(x), nan_y = at::isnan(y);
  if (!at::equal(nan_x, nan_y)) return false;
  const auto xs = at::where(nan_x, at::zeros_like(x), x), ys = at::where(nan_y, at::zeros_like(y), y);
  const double floor = relative * 1e-3 * (ys.numel() ? ys.abs().max().item<double>() : 0.0);
  const auto bound = relative * at::maximum(xs.abs(), ys.abs()) + floor;
  return ((xs - ys).abs() <= bound).all().item<bool>();
}

// The order between the two finest levels of a ladder, log(e[n-2] / e[n-1]) / log(h[n-2] / h[n-1]): for a
// deterministic method it tends to the method's order as h -> 0, which a fitted slope over the whole ladder
// (pre-asymptotic levels included) does only roughly.
inline double finest_pairwise_order(const std::vector<double>& h, const std::vector<double>& error) {
  const size_t n = h.size();
  return std::log(error[n - 2] / error[n - 1]) / std::log(h[n - 2] / h[n - 1]);
}

// Standard deviation of log_log_slope(x, y) when each y_k carries an independent standard error se_k
// (delta method: var(log y_k) = (se_k / y_k)^2).
inline double log_log_slope_sd(const std::vector<double>& x, const std::vector<double>& y, const std::vector<double>& se) {
  double mx = 0;
  for (double v : x) mx += std::log(v) / x.size();
  double sxx = 0;
  for (double v : x) sxx += std::pow(std::log(v) - mx, 2);
  double var = 0;
  for (size_t i = 0; i < x.size(); ++i) var += std::pow((std::log(x[i]) - mx) / sxx * se[i] / y[i], 2);
  return std::sqrt(var);
}

// Runs a shell command through /bin/sh with stderr merged into stdout.
CommandResult run_shell(const std::string& command);
// Runs "$SDEFLOW_BIN <arguments>" (after `environment`, e.g. "VAR=value") through run_shell.
CommandResult run_cli(const std::string& arguments, const std::string& environment = "");

// Runs the CLI with `arguments` and checks the handling of a bad input: exit status 2, `message` in the
// output, and no file at `out`.
void expect_input_error(const std::string& arguments, const std::string& message, const std::filesystem::path& out);

// Runs `action` and fails the test unless it throws sdeflow::InputError whose message contains `message`.
void expect_input_error_message(const std::function<void()>& action, const std::string& message);

}  // namespace sdeflow::test
