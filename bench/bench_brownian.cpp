// Brownian path query cost (docs/benchmarks.md): increments over a uniform grid of N steps, sequentially,
// for a batch of B D-dimensional motions, from the virtual Brownian tree and from fixed-grid increments.
//   sdeflow_bench_brownian [B] [D] [N] [tolerance]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "core/device.hpp"
#include "solvers/brownian_tree.hpp"

using namespace sdeflow;

int main(int argc, char** argv) {
  keep_freed_memory_for_reuse();
  const int64_t b = argc > 1 ? std::stoll(argv[1]) : 1000;
  const int64_t d = argc > 2 ? std::stoll(argv[2]) : 2;
  const int64_t n = argc > 3 ? std::stoll(argv[3]) : 1000;
  const double tolerance = argc > 4 ? std::stod(argv[4]) : 1e-6;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto time_queries = [&](BrownianPath& path) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n; ++i) {
      const auto t0 = at::full({b}, static_cast<double>(i) / n, f64);
      const auto t1 = at::full({b}, static_cast<double>(i + 1) / n, f64);
      (void)path.increment(t0, t1);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto generator = at::detail::createCPUGenerator(0);
  GridIncrements grid(generator, d);
  const double grid_time = time_queries(grid);
  BrownianTreeOptions options;
  options.tolerance = tolerance;
  BrownianTree tree(0.0, 1.0, b, d, 0, options);
  const double tree_time = time_queries(tree);
  BrownianTree tree2(0.0, 1.0, b, d, 0, options);
  // Reverse order (what a reverse-time sampler asks) on a fresh tree.
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = n; i > 0; --i) {
    (void)tree2.increment(at::full({b}, static_cast<double>(i) / n, f64), at::full({b}, static_cast<double>(i - 1) / n, f64));
  }
  const double reverse_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("threads %d, B = %lld, D = %lld, N = %lld queries, tree tolerance %g (depth %d)\n", at::get_num_threads(),
              static_cast<long long>(b), static_cast<long long>(d), static_cast<long long>(n), tolerance, tree.depth());
  std::printf("fixed-grid increments: %8.2f us/query\n", grid_time / n * 1e6);
  std::printf("Brownian tree, forward: %8.2f us/query (%.1fx grid)\n", tree_time / n * 1e6, tree_time / grid_time);
  std::printf("Brownian tree, reverse: %8.2f us/query\n", reverse_time / n * 1e6);
  return 0;
}
