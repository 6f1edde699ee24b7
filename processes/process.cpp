// Shared parts of the forward-SDE interface: the default Euler discretisation.
#include "processes/process.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

at::Tensor Process::diffusion_divergence(const at::Tensor& x, const at::Tensor& t) const {
  (void)t;
  return at::zeros_like(x);
}

std::pair<at::Tensor, Diffusion> Process::discretize(const at::Tensor& x, const at::Tensor& t,
                                                     const at::Tensor& dt) const {
  auto g = diffusion(x, t);
  g.value = g.value * at::sqrt(per_sample(dt).abs()).reshape(g.kind == Diffusion::Kind::full
                                                                   ? at::IntArrayRef{-1, 1, 1}
                                                                   : at::IntArrayRef{-1, 1});
  return {drift(x, t) * per_sample(dt), g};
}

}  // namespace sdeflow
