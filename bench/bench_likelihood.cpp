// Likelihood micro-benchmark (docs/benchmarks.md): the cost of one batched right-hand-side evaluation of
// the augmented probability-flow ODE, and the solver overhead
//   overhead = solve time / (batched evaluations x time of one full-batch evaluation)
// for each ODE solver, on a model and data file (bench/make_problem.py writes them).
//   sdeflow_bench_likelihood MODEL DATA [rtol] [trace] [solvers...]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/device.hpp"
#include "io/data_file.hpp"
#include "io/model_file.hpp"
#include "likelihood/likelihood.hpp"
#include "processes/mixture.hpp"

using namespace sdeflow;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

template <class F>
double best_of(int repeat, F&& body) {
  double best = 1e300;
  for (int i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    body();
    best = std::min(best, seconds_since(start));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL DATA [rtol] [trace] [solvers...]\n", argv[0]);
    return 2;
  }
  keep_freed_memory_for_reuse();
  try {
    const auto model_file = load_model(argv[1]);
    const auto& mixture = model_file->require_mixture("bench_likelihood");
    const auto data = load_data(argv[2], mixture.dim()).data;
    const double tol = argc > 3 ? std::stod(argv[3]) : 1e-5;
    const auto trace = parse_trace_method(argc > 4 ? argv[4] : "analytic");
    std::vector<std::string> solvers;
    for (int i = 5; i < argc; ++i) solvers.emplace_back(argv[i]);
    if (solvers.empty()) solvers = {"dopri5", "dopri5-shared", "cvode-adams", "arkode-dp"};
    auto model = model_file->score();
    const int64_t b = data.size(0);
    std::printf("threads %d, batch %lld, dim %lld, components %lld, trace %s, rtol = atol = %g\n",
                at::get_num_threads(), static_cast<long long>(b), static_cast<long long>(data.size(1)),
                static_cast<long long>(mixture.components()), to_string(trace).c_str(), tol);

    auto flow = std::make_shared<ProbabilityFlow>(model_file->process(), model);
    auto generator = at::detail::createCPUGenerator(0);
    AugmentedFlow augmented(flow, trace, 1, b, data.options(), generator);
    const auto y = at::cat({data, at::zeros({b, 1}, data.options())}, 1);
    // One evaluation at one shared time, and at per-row times (what per-sample solvers hand the model).
    const auto t_shared = at::full({b}, 0.37, data.options());
    const auto t_rows = at::linspace(0.01, 0.99, b, data.options());
    for (int i = 0; i < 20; ++i) augmented(t_shared, y);
    const double rhs_shared = best_of(200, [&] { augmented(t_shared, y); });
    const double rhs_rows = best_of(200, [&] { augmented(t_rows, y); });
    const double gmm_only = best_of(200, [&] { model->score_and_divergence(data, t_rows); });
    std::printf("one batched evaluation: %.1f us (shared time), %.1f us (per-row times; mixture alone %.1f us)\n",
                rhs_shared * 1e6, rhs_rows * 1e6, gmm_only * 1e6);

    std::printf("%-14s %10s %10s %12s %12s %10s\n", "solver", "time (ms)", "calls", "rows x evals", "overhead", "failures");
    for (const auto& solver : solvers) {
      LikelihoodOptions options;
      options.ode.solver = solver;
      options.ode.rtol = options.ode.atol = tol;
      options.trace = trace;
      options.prior = PriorKind::exact;
      LikelihoodResult result;
      const double total = best_of(5, [&] {
        auto g = at::detail::createCPUGenerator(0);
        result = negative_log_likelihood(model_file->process(), model, data, options, DataTransform{}, g);
      });
      const double calls = static_cast<double>(result.stats.nfe);
      const double rows = static_cast<double>(result.nfe.sum().item<int64_t>());
      // Overhead against full-batch evaluations: calls x the cost of one evaluation at per-row times
      // (shared solvers: at one time).
      const bool shared = solver != "dopri5" && solver != "bosh3";
      const double model_time = calls * (shared ? rhs_shared : rhs_rows);
      std::printf("%-14s %10.2f %10.0f %12.0f %12.3f %10lld\n", solver.c_str(), total * 1e3, calls, rows,
                  total / model_time, static_cast<long long>((result.status != 0).sum().item<int64_t>()));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
