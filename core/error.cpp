// Out-of-line anchor for the error hierarchy (keeps the vtables in one translation unit).
#include "core/error.hpp"

#include "core/tensor.hpp"

namespace sdeflow {

void require_state(const at::Tensor& x, int64_t dim, const std::string& what) {
  if (x.dim() != 2) {
    throw InputError(what + ": expected a [batch, dim] tensor, got " + std::to_string(x.dim()) +
                     " dimension(s)");
  }
  if (dim >= 0 && x.size(1) != dim) {
    throw InputError(what + ": expected dimension " + std::to_string(dim) + ", got " +
                     std::to_string(x.size(1)));
  }
}

void require_finite(const at::Tensor& x, const std::string& what) {
  if (x.numel() > 0 && !at::isfinite(x).all().item<bool>()) {
    throw InputError(what + ": contains NaN or Inf");
  }
}

}  // namespace sdeflow
