#pragma once
// Small helpers shared by every layer: tensor options, broadcasting a [B] time against a [B, D] state,
// and checks on shapes and finiteness with messages that name the offending object.
#include <ATen/ATen.h>

#include <string>

namespace sdeflow {

// t: [B] -> [B, 1] so it broadcasts against a [B, D] state.
inline at::Tensor per_sample(const at::Tensor& t) { return t.reshape({-1, 1}); }

// A [B] time tensor filled with `value`, matching the dtype and device of `like`.
inline at::Tensor full_time(int64_t batch, double value, const at::Tensor& like) {
  return at::full({batch}, value, like.options());
}

// "[2, 3]": a shape as messages print it.
inline std::string shape_text(at::IntArrayRef shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// Throws InputError unless x is 2-D [B, D] with D == dim (dim < 0: any).
void require_state(const at::Tensor& x, int64_t dim, const std::string& what);
// Throws InputError if any element is NaN or infinite.
void require_finite(const at::Tensor& x, const std::string& what);

}  // namespace sdeflow
