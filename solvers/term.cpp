// The three shapes of G (solvers/term.hpp).
#include "solvers/term.hpp"

#include "core/error.hpp"

namespace sdeflow {

at::Tensor Diffusion::apply(const at::Tensor& noise) const {
  switch (kind) {
    case Kind::scalar:
    case Kind::diagonal:
      return value * noise;
    case Kind::full:
      return at::matmul(value, noise.unsqueeze(-1)).squeeze(-1);
    case Kind::partial:
      return at::constant_pad_nd(value * noise, {offset, state_dim - offset - value.size(-1)});
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
    case Kind::partial: {
      const int64_t m = value.size(-1);
      return at::constant_pad_nd(value * value * vector.narrow(-1, offset, m), {offset, state_dim - offset - m});
    }
  }
  throw Error("Diffusion::apply_squared: unknown kind");
}

}  // namespace sdeflow
