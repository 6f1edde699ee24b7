// Tests of solvers/brownian_tree: the virtual Brownian tree answers every query with the same path (any query
// order, any grid, per-row times, reverse order, with or without its cache), its increments telescope, its
// law is Brownian (moments, covariances, the bridge at a midpoint), and its space-time Levy area has the
// right variance, is independent of the increment and is the area of this very path. GridIncrements' Levy
// area is checked too. Statistical bounds are 4 standard errors (docs/sde_solvers.md).
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "solvers/brownian_tree.hpp"
#include "support.hpp"

using namespace sdeflow;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

at::Tensor at_time(int64_t batch, double t) { return at::full({batch}, t, f64); }

double sample_mean(const at::Tensor& x) { return x.mean().item<double>(); }
double variance(const at::Tensor& x) { return x.var().item<double>(); }
// Sample covariance of two equally shaped tensors (every element one sample).
double covariance(const at::Tensor& x, const at::Tensor& y) {
  return ((x - x.mean()) * (y - y.mean())).sum().item<double>() / static_cast<double>(x.numel() - 1);
}

// Checks a sample variance against its expectation s2 within 4 standard errors (Gaussian: SE = s2 sqrt(2/(n-1))).
void check_variance(const at::Tensor& x, double expected, const std::string& what) {
  const double n = static_cast<double>(x.numel());
  const double measured = variance(x);
  const double se = expected * std::sqrt(2.0 / (n - 1));
  BOOST_TEST_MESSAGE(what << ": variance " << measured << " expected " << expected << " (SE " << se << ")");
  BOOST_TEST(std::abs(measured - expected) <= 4 * se, what << ": variance " << measured << " vs " << expected);
}

// Checks a sample covariance against its expectation; SE from the product's sample variance.
void check_covariance(const at::Tensor& x, const at::Tensor& y, double expected, const std::string& what) {
  const double n = static_cast<double>(x.numel());
  const double measured = covariance(x, y);
  const double se = std::sqrt(variance((x - x.mean()) * (y - y.mean())) / n);
  BOOST_TEST_MESSAGE(what << ": covariance " << measured << " expected " << expected << " (SE " << se << ")");
  BOOST_TEST(std::abs(measured - expected) <= 4 * se, what << ": covariance " << measured << " vs " << expected);
}

std::vector<double> query_times() {
  std::vector<double> times = {0.0, 1.0, 0.5, 0.25, 0.375, 0.3, 0.7, 1.0 / 3.0, 0.123456789, 0.999999, 1e-7};
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int i = 0; i < 30; ++i) times.push_back(uniform(rng));
  return times;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(brownian_tree)

BOOST_AUTO_TEST_CASE(same_path_whatever_the_query_order_grid_or_cache) {
  const int64_t batch = 16, dim = 3;
  const auto times = query_times();
  BrownianTree forward(0.0, 1.0, batch, dim, 7);
  std::vector<at::Tensor> reference;
  for (double t : times) reference.push_back(forward.value(at_time(batch, t)));
  BOOST_TEST(forward.depth() == 20);   // 2^-20 < 1e-6 <= 2^-19
  BOOST_TEST(reference[0].abs().max().item<double>() == 0.0);
  BOOST_TEST(reference[0].size(0) == batch);
  BOOST_TEST(reference[0].size(1) == dim);

  // Reverse order, without a cache, after walking a fine grid of increments first, and by per-row times.
  BrownianTree backward(0.0, 1.0, batch, dim, 7);
  for (size_t i = times.size(); i-- > 0;) {
    BOOST_TEST(at::equal(backward.value(at_time(batch, times[i])), reference[i]), "reverse order, t = " << times[i]);
  }
  BrownianTreeOptions no_cache;
  no_cache.cache_bytes = 0;
  BrownianTree uncached(1.0, 0.0, batch, dim, 7, no_cache);   // endpoints given in reverse: the same tree
  BOOST_TEST(uncached.cache_capacity() == 0);
  std::vector<size_t> shuffled(times.size());
  for (size_t i = 0; i < shuffled.size(); ++i) shuffled[i] = i;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(3));
  for (size_t i : shuffled) {
    BOOST_TEST(at::equal(uncached.value(at_time(batch, times[i])), reference[i]), "no cache, t = " << times[i]);
  }
  BrownianTree gridded(0.0, 1.0, batch, dim, 7);
  for (int64_t k = 0; k < 300; ++k) {
    (void)gridded.increment(at_time(batch, k / 300.0), at_time(batch, (k + 1) / 300.0));
  }
  for (size_t i = 0; i < times.size(); ++i) {
    BOOST_TEST(at::equal(gridded.value(at_time(batch, times[i])), reference[i]), "after a grid, t = " << times[i]);
  }
  // Row r asks for time times[r % n]: each row equals that row of the whole-batch query.
  BrownianTree per_row(0.0, 1.0, batch, dim, 7);
  std::vector<double> row_times;
  for (int64_t r = 0; r < batch; ++r) row_times.push_back(times[static_cast<size_t>(r * 5) % times.size()]);
  const auto values = per_row.value(at::tensor(row_times, f64));
  for (int64_t r = 0; r < batch; ++r) {
    BOOST_TEST(test::equal_to_ulps(values[r], reference[static_cast<size_t>(r * 5) % times.size()][r]), "row " << r);
  }
  // Another seed is another path; the same seed with a larger batch keeps the first rows.
  BrownianTree other(0.0, 1.0, batch, dim, 8);
  BOOST_TEST(!at::equal(other.value(at_time(batch, 0.3)), reference[5]));
  BrownianTree larger(0.0, 1.0, batch + 5, dim, 7);
  BOOST_TEST(test::equal_to_ulps(larger.value(at_time(batch + 5, 0.3)).slice(0, 0, batch), reference[5]));
}

BOOST_AUTO_TEST_CASE(bound_rows_are_rows_of_the_batch) {
  const int64_t batch = 12;
  BrownianTree tree(0.0, 2.0, batch, 2, 99);
  const auto all = tree.increment(at_time(batch, 0.4), at_time(batch, 1.3));
  const auto index = at::tensor({5, 2, 9}, at::TensorOptions().dtype(at::kLong));
  tree.bind_samples(index);
  const auto part = tree.increment(at_time(3, 0.4), at_time(3, 1.3));
  BOOST_TEST(test::equal_to_ulps(part, all.index_select(0, index)));
  BOOST_CHECK_THROW(tree.value(at_time(batch, 0.4)), InputError);   // bound to 3 rows
  tree.bind_samples(at::Tensor());
  BOOST_TEST(at::equal(tree.increment(at_time(batch, 0.4), at_time(batch, 1.3)), all));
  BOOST_CHECK_THROW(tree.bind_samples(at::tensor({0, 12}, at::TensorOptions().dtype(at::kLong))), InputError);
}

BOOST_AUTO_TEST_CASE(increments_and_areas_of_a_partition_add_up) {
  const int64_t batch = 200, dim = 2;
  BrownianTree tree(0.0, 1.0, batch, dim, 21);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> uniform(0.1, 0.9);
  std::vector<double> points = {0.1, 0.9};
  for (int i = 0; i < 500; ++i) points.push_back(uniform(rng));
  points.push_back(0.5);
  points.push_back(0.25);
  std::sort(points.begin(), points.end());
  const auto t_a = at_time(batch, 0.1), t_b = at_time(batch, 0.9);
  const auto total = tree.increment(t_a, t_b);
  const auto total_area = tree.levy_area(t_a, t_b);
  at::Tensor sum = at::zeros_like(total), integral = at::zeros_like(total);
  const auto w_a = tree.value(t_a);
  for (size_t k = 0; k + 1 < points.size(); ++k) {
    const auto t0 = at_time(batch, points[k]), t1 = at_time(batch, points[k + 1]);
    const auto piece = tree.increment_with_levy_area(t0, t1);
    const double h = points[k + 1] - points[k];
    // int_{t_k}^{t_k+1} (W - W_a) ds = h (H_k + dW_k / 2 + W(t_k) - W_a)
    if (h > 0) integral = integral + h * (piece.levy_area + 0.5 * piece.dw + (tree.value(t0) - w_a));
    sum = sum + piece.dw;
  }
  BOOST_TEST((sum - total).abs().max().item<double>() <= 1e-12);
  const auto combined = integral / 0.8 - 0.5 * total;
  BOOST_TEST((combined - total_area).abs().max().item<double>() <= 1e-10);
  // The area of this very path: a trapezoid sum of W on a fine grid approaches it (error ~ 1e-4 here).
  const int64_t n = 4096;
  at::Tensor trapezoid = at::zeros_like(total);
  at::Tensor previous = tree.value(t_a) - w_a;
  for (int64_t k = 1; k <= n; ++k) {
    const auto current = tree.value(at_time(batch, 0.1 + 0.8 * k / n)) - w_a;
    trapezoid = trapezoid + 0.5 * (previous + current) * (0.8 / n);
    previous = current;
  }
  const auto riemann_area = trapezoid / 0.8 - 0.5 * total;
  const double worst = (riemann_area - total_area).abs().max().item<double>();
  BOOST_TEST_MESSAGE("Levy area vs trapezoid sum on 4096 points: max difference " << worst);
  BOOST_TEST(worst <= 2e-3);
}

BOOST_AUTO_TEST_CASE(brownian_moments_covariances_and_bridge) {
  const int64_t batch = 5000, dim = 4;   // 20000 independent samples per statistic
  BrownianTree tree(0.0, 1.0, batch, dim, 1234);
  const auto w = [&](double t) { return tree.value(at_time(batch, t)); };
  const auto w03 = w(0.3), w07 = w(0.7);
  const double n = static_cast<double>(batch * dim);
  BOOST_TEST(std::abs(sample_mean(w03)) <= 4 * std::sqrt(0.3 / n));
  check_variance(w03, 0.3, "W(0.3)");
  check_variance(w(1.0), 1.0, "W(1)");
  check_covariance(w03, w07, 0.3, "Cov(W(0.3), W(0.7))");
  check_variance(w07 - w03, 0.4, "W(0.7) - W(0.3)");
  check_variance(w(0.5) - w(0.25), 0.25, "W(0.5) - W(0.25)");
  check_variance(w(0.1239) - w(0.1234), 0.0005, "W(0.1239) - W(0.1234)");
  // 20 leaves long (below a leaf the path is smooth: docs/sde_solvers.md).
  check_variance(w(0.30002) - w(0.3), 2e-5, "W(0.30002) - W(0.3)");
  // The bridge at the midpoint of [0.25, 0.75]: Var(W(0.5) - (W(0.25) + W(0.75)) / 2) = 0.5 / 4, independent
  // of the endpoints; and at a non-dyadic midpoint.
  const auto bridge = w(0.5) - 0.5 * (w(0.25) + w(0.75));
  check_variance(bridge, 0.125, "bridge at 0.5");
  check_covariance(bridge, w(0.75) - w(0.25), 0.0, "bridge vs increment");
  check_covariance(bridge, w(0.25), 0.0, "bridge vs W(0.25)");
  const auto bridge2 = w(0.45) - 0.5 * (w(0.3) + w(0.6));
  check_variance(bridge2, 0.075, "bridge at 0.45");
}

BOOST_AUTO_TEST_CASE(levy_area_variance_independence_and_structure) {
  const int64_t batch = 5000, dim = 4;
  BrownianTree tree(0.0, 1.0, batch, dim, 77);
  const double n = static_cast<double>(batch * dim);
  for (const auto& [a, b] : std::vector<std::pair<double, double>>{{0.0, 1.0}, {0.25, 0.5}, {0.3, 0.71}, {0.71, 0.3}}) {
    const auto t0 = at_time(batch, a), t1 = at_time(batch, b);
    const auto [dw, area] = tree.increment_with_levy_area(t0, t1);
    const double h = std::abs(b - a);
    std::ostringstream label;
    label << "[" << a << ", " << b << "]";
    const std::string what = label.str();
    BOOST_TEST(std::abs(sample_mean(area)) <= 4 * std::sqrt(h / 12 / n), what);
    check_variance(area, h / 12, "H over " + what);
    check_variance(dw, h, "dW over " + what);
    const double correlation = covariance(area, dw) / std::sqrt(variance(area) * variance(dw));
    BOOST_TEST_MESSAGE("corr(H, dW) over " << what << ": " << correlation);
    BOOST_TEST(std::abs(correlation) <= 4 / std::sqrt(n), what);
    // Cov(W(a + h/2) - W(a), H) = h / 8 (in the direction of the interval).
    const auto half = tree.increment(t0, at_time(batch, 0.5 * (a + b)));
    check_covariance(half, area, h / 8, "Cov(half increment, H) over " + what);
    BOOST_TEST(at::equal(tree.levy_area(t1, t0), area));   // symmetric
    BOOST_TEST(at::equal(tree.increment(t1, t0), -dw));
  }
  // Parent and child areas: H_left = H / 4 - Z / 2 + N, so Cov(H_[0,1], H_[0,1/2]) = Var(H) / 4 = 1/48.
  const auto whole = tree.levy_area(at_time(batch, 0.0), at_time(batch, 1.0));
  const auto left = tree.levy_area(at_time(batch, 0.0), at_time(batch, 0.5));
  check_covariance(whole, left, 1.0 / 48, "Cov(H, H_left)");
  // An empty interval has no area.
  BOOST_TEST(tree.levy_area(at_time(batch, 0.4), at_time(batch, 0.4)).abs().max().item<double>() == 0.0);
}

BOOST_AUTO_TEST_CASE(grid_increments_draw_the_levy_area_too) {
  const int64_t batch = 20000;
  GridIncrements grid(at::detail::createCPUGenerator(3), 1);
  const auto t0 = at_time(batch, 1.0), t1 = at_time(batch, 0.8);   // reverse direction: variance |h|
  const auto [dw, area] = grid.increment_with_levy_area(t0, t1);
  check_variance(dw, 0.2, "grid dW");
  check_variance(area, 0.2 / 12, "grid H");
  BOOST_TEST(std::abs(covariance(dw, area) / std::sqrt(variance(dw) * variance(area))) <= 4 / std::sqrt(batch * 1.0));
  check_variance(grid.levy_area(t0, t1), 0.2 / 12, "grid H alone");
}

BOOST_AUTO_TEST_CASE(reverse_order_queries_and_sweeps) {
  const int64_t batch = 50;
  BrownianTree tree(1e-3, 1.0, batch, 2, 5);   // a sampler's [eps, T]
  const auto grid = [&](int64_t k, int64_t steps) { return at_time(batch, 1.0 + (1e-3 - 1.0) * k / steps); };
  at::Tensor sum = at::zeros({batch, 2}, f64);
  for (int64_t k = 0; k < 100; ++k) sum = sum + tree.increment(grid(k, 100), grid(k + 1, 100));
  const auto total = tree.value(at_time(batch, 1e-3)) - tree.value(at_time(batch, 1.0));
  BOOST_TEST((sum - total).abs().max().item<double>() <= 1e-12);
  BOOST_TEST(tree.value(at_time(batch, 1e-3)).abs().max().item<double>() == 0.0);   // W = 0 at the lower end
  // A rounding-size overshoot of an end is clamped; beyond it is refused.
  BOOST_TEST(at::equal(tree.value(at_time(batch, 1.0 + 1e-15)), tree.value(at_time(batch, 1.0))));
  BOOST_CHECK_THROW(tree.value(at_time(batch, 1.01)), InputError);
  BOOST_CHECK_THROW(tree.value(at_time(batch, 0.0)), InputError);
  BOOST_CHECK_THROW(tree.value(at_time(batch + 1, 0.5)), InputError);
  BOOST_CHECK_THROW(BrownianTree(0.0, 0.0, 1, 1, 0), InputError);
  BrownianTreeOptions bad;
  bad.tolerance = 0.0;
  BOOST_CHECK_THROW(BrownianTree(0.0, 1.0, 1, 1, 0, bad), InputError);
  // Results follow the time tensor's dtype.
  const auto single = tree.value(at::full({batch}, 0.5, at::TensorOptions().dtype(at::kFloat)));
  BOOST_TEST(single.scalar_type() == at::kFloat);
}

BOOST_AUTO_TEST_CASE(memory_stays_bounded_and_sweeps_draw_each_node_once) {
  const int64_t batch = 100;
  BrownianTree tree(0.0, 1.0, batch, 1, 17);
  const int64_t steps = 1024;
  for (int64_t k = 0; k < steps; ++k) (void)tree.increment_with_levy_area(at_time(batch, 1.0 * k / steps), at_time(batch, 1.0 * (k + 1) / steps));
  BOOST_TEST_MESSAGE("dyadic sweep of 1024 steps: " << tree.splits_drawn() << " node splits, cache " << tree.cached_nodes()
                                                   << " / " << tree.cache_capacity());
  BOOST_TEST(tree.splits_drawn() <= steps);   // the 1023 internal nodes above the grid, each once
  BOOST_TEST(tree.cached_nodes() <= tree.cache_capacity());
  BrownianTree fine(0.0, 1.0, batch, 1, 17);
  for (int64_t k = 0; k < 3000; ++k) (void)fine.increment(at_time(batch, k / 3000.0), at_time(batch, (k + 1) / 3000.0));
  BOOST_TEST_MESSAGE("non-dyadic sweep of 3000 steps: " << fine.splits_drawn() << " node splits");
  BOOST_TEST(fine.cached_nodes() <= fine.cache_capacity());
  BOOST_TEST(fine.splits_drawn() <= 3000 * 20);
}

BOOST_AUTO_TEST_SUITE_END()
