// Shared parts of the forward-SDE interface: the default Euler discretisation.
#include "processes/process.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

at::Tensor Process::diffusion_divergence(const at::Tensor& x, const at::Tensor& t) const {
  (void)t;
  return at::zeros_like(x);
}

namespace {
[[noreturn]] void no_kernel(const Process& process) {
  throw InputError("process " + process.name() + " has no Gaussian denoising kernel (training needs one)");
}
}  // namespace

at::Tensor Process::perturb(const at::Tensor&, const at::Tensor&, const at::Tensor&) const { no_kernel(*this); }
at::Tensor Process::noise_to_score(const at::Tensor&, const at::Tensor&) const { no_kernel(*this); }
at::Tensor Process::denoising_loss(const at::Tensor&, const at::Tensor&, const at::Tensor&, bool) const {
  no_kernel(*this);
}
at::Tensor Process::weight_scale(const at::Tensor&) const { no_kernel(*this); }
at::Tensor Process::prior_cross_entropy(const at::Tensor&) const {
  throw InputError("process " + name() + " has no closed-form likelihood bound");
}
at::Tensor Process::bound_offset(const at::Tensor&) const {
  throw InputError("process " + name() + " has no closed-form likelihood bound");
}

at::Tensor Process::embed_scored(const at::Tensor& part, int64_t state_dim) const {
  if (part.dim() != 2 || part.size(1) != scored_dim(state_dim)) {
    throw InputError("process " + name() + ": expected a prediction [B, " + std::to_string(scored_dim(state_dim)) +
                     "] on the scored coordinates of a state of dimension " + std::to_string(state_dim) + ", got " +
                     shape_text(part.sizes()));
  }
  if (part.size(1) == state_dim) return part;
  return at::constant_pad_nd(part, {state_dim - part.size(1), 0});   // the scored coordinates come last
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
