// Shared parts of the forward-SDE interface: the three shapes of G and the default Euler discretisation.
#include "processes/process.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

at::Tensor Diffusion::apply(const at::Tensor& noise) const {
  switch (kind) {
    case Kind::scalar:
    case Kind::diagonal:
      return value * noise;
    case Kind::full:
      return at::matmul(value, noise.unsqueeze(-1)).squeeze(-1);
  }
  throw Error("Diffusion::apply: unknown kind");
}

at::Tensor Diffusion::apply_squared(const at::Tensor& vector) const {
  switch (kind) {
    case Kind::scalar:
    case Kind::diagonal:
      return value * value * vector;
    case Kind::full: {
      const auto gt_v = at::matmul(value.transpose(-1, -2), vector.unsqueeze(-1));
      return at::matmul(value, gt_v).squeeze(-1);
    }
  }
  throw Error("Diffusion::apply_squared: unknown kind");
}

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
