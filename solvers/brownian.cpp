// Fixed-grid Brownian increments: sqrt(|dt|) z with z ~ N(0, I) from an explicit generator.
#include "solvers/brownian.hpp"

#include "core/tensor.hpp"

namespace sdeflow {

at::Tensor GridIncrements::increment(const at::Tensor& t0, const at::Tensor& t1) {
  const auto noise = at::randn({t0.size(0), dim_}, generator_, t0.options());
  return noise * per_sample(at::sqrt((t1 - t0).abs()));
}

}  // namespace sdeflow
