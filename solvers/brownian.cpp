// Fixed-grid Brownian increments: sqrt(|dt|) z with z ~ N(0, I) from an explicit generator, and the
// space-time Levy area sqrt(|dt| / 12) z' drawn alongside (docs/sde_solvers.md).
#include "solvers/brownian.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

at::Tensor BrownianPath::levy_area(const at::Tensor& t0, const at::Tensor& t1) {
  (void)t0; (void)t1;
  throw Error("this Brownian path does not provide the space-time Levy area");
}

BrownianIncrement BrownianPath::increment_with_levy_area(const at::Tensor& t0, const at::Tensor& t1) {
  auto dw = increment(t0, t1);
  return {std::move(dw), levy_area(t0, t1)};
}

at::Tensor GridIncrements::increment(const at::Tensor& t0, const at::Tensor& t1) {
  const auto noise = at::randn({t0.size(0), dim_}, generator_, t0.options());
  return noise * per_sample(at::sqrt((t1 - t0).abs()));
}

at::Tensor GridIncrements::levy_area(const at::Tensor& t0, const at::Tensor& t1) {
  const auto noise = at::randn({t0.size(0), dim_}, generator_, t0.options());
  return noise * per_sample(at::sqrt((t1 - t0).abs() / 12.0));
}

BrownianIncrement GridIncrements::increment_with_levy_area(const at::Tensor& t0, const at::Tensor& t1) {
  const auto noise = at::randn({t0.size(0), 2, dim_}, generator_, t0.options());
  const auto scale = per_sample(at::sqrt((t1 - t0).abs()));
  return {noise.select(1, 0) * scale, noise.select(1, 1) * (scale / std::sqrt(12.0))};
}

}  // namespace sdeflow
