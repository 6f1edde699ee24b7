// Two-sample distances (docs/studies.md): computed in blocks so that memory stays O(block x max(N, M)).
#include "studies/metrics.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

namespace {

constexpr int64_t kBlock = 2048;

void check_pair(const at::Tensor& x, const at::Tensor& y, const char* what) {
  require_state(x, -1, std::string(what) + ": first sample");
  require_state(y, x.size(1), std::string(what) + ": second sample");
  if (x.size(0) < 2 || y.size(0) < 2) throw InputError(std::string(what) + ": each sample needs at least 2 points");
  require_finite(x, std::string(what) + ": first sample");
  require_finite(y, std::string(what) + ": second sample");
}

// sum over all pairs (i, j) of f(|a_i - b_j|^2), excluding i == j when `same`.
template <class F>
double pair_sum(const at::Tensor& a, const at::Tensor& b, bool same, F&& f) {
  double total = 0.0;
  const auto b_sq = b.pow(2).sum(1);
  for (int64_t start = 0; start < a.size(0); start += kBlock) {
    const int64_t size = std::min(kBlock, a.size(0) - start);
    const auto block = a.narrow(0, start, size);
    auto d2 = at::clamp_min(block.pow(2).sum(1, true) + b_sq.unsqueeze(0) - 2.0 * at::matmul(block, b.t()), 0.0);
    at::Tensor values = f(d2);
    if (same) values.narrow(1, start, size).diagonal().zero_();
    total += values.sum().item<double>();
  }
  return total;
}

at::Tensor as_double(const at::Tensor& x) { return x.to(at::kDouble).contiguous(); }

}  // namespace

double median_heuristic_bandwidth(const at::Tensor& x, const at::Tensor& y) {
  const auto pooled = at::cat({as_double(x).narrow(0, 0, std::min<int64_t>(x.size(0), 1000)),
                               as_double(y).narrow(0, 0, std::min<int64_t>(y.size(0), 1000))}, 0);
  const auto d = at::cdist(pooled, pooled);
  const auto n = pooled.size(0);
  const auto upper = d.masked_select(at::triu(at::ones({n, n}, at::kBool), 1));
  const double median = upper.median().item<double>();
  return median > 0.0 ? median : 1.0;
}

double mmd2_rbf(const at::Tensor& x_in, const at::Tensor& y_in, double bandwidth) {
  check_pair(x_in, y_in, "mmd2");
  const auto x = as_double(x_in), y = as_double(y_in);
  if (!std::isfinite(bandwidth)) throw InputError("mmd2: bandwidth must be finite");
  const double h = bandwidth > 0.0 ? bandwidth : median_heuristic_bandwidth(x, y);
  const double scale = -0.5 / (h * h);
  auto kernel = [scale](const at::Tensor& d2) { return at::exp(scale * d2); };
  const double n = static_cast<double>(x.size(0)), m = static_cast<double>(y.size(0));
  const double kxx = pair_sum(x, x, true, kernel) / (n * (n - 1));
  const double kyy = pair_sum(y, y, true, kernel) / (m * (m - 1));
  const double kxy = pair_sum(x, y, false, kernel) / (n * m);
  return kxx + kyy - 2.0 * kxy;
}

double sliced_wasserstein2(const at::Tensor& x_in, const at::Tensor& y_in, int64_t projections,
                           at::Generator& generator) {
  check_pair(x_in, y_in, "sliced_wasserstein2");
  if (projections <= 0) throw InputError("sliced_wasserstein2: projections must be positive");
  const auto x = as_double(x_in).cpu(), y = as_double(y_in).cpu();
  auto directions = at::randn({x.size(1), projections}, generator, at::TensorOptions().dtype(at::kDouble));
  directions = directions / directions.norm(2, 0, true);
  const auto px = std::get<0>(at::matmul(x, directions).sort(0));
  const auto py = std::get<0>(at::matmul(y, directions).sort(0));
  // Quantiles at the mid-points of a common grid (linear interpolation between order statistics).
  const int64_t q = std::min(x.size(0), y.size(0));
  const auto levels = (at::arange(q, at::kDouble) + 0.5) / static_cast<double>(q);
  auto quantile = [&](const at::Tensor& sorted) {
    const double n = static_cast<double>(sorted.size(0));
    const auto position = at::clamp(levels * n - 0.5, 0.0, n - 1);
    const auto lo = position.floor().to(at::kLong);
    const auto hi = at::clamp_max(lo + 1, sorted.size(0) - 1);
    const auto w = (position - lo.to(at::kDouble)).unsqueeze(1);
    return sorted.index_select(0, lo) * (1 - w) + sorted.index_select(0, hi) * w;
  };
  const auto diff = quantile(px) - quantile(py);
  return std::sqrt(diff.pow(2).mean().item<double>());
}

double energy_distance(const at::Tensor& x_in, const at::Tensor& y_in) {
  check_pair(x_in, y_in, "energy_distance");
  const auto x = as_double(x_in), y = as_double(y_in);
  auto norm = [](const at::Tensor& d2) { return at::sqrt(d2); };
  const double n = static_cast<double>(x.size(0)), m = static_cast<double>(y.size(0));
  const double exy = pair_sum(x, y, false, norm) / (n * m);
  const double exx = pair_sum(x, x, true, norm) / (n * (n - 1));
  const double eyy = pair_sum(y, y, true, norm) / (m * (m - 1));
  return 2.0 * exy - exx - eyy;
}

}  // namespace sdeflow
