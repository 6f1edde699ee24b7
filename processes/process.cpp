// Shared parts of the forward-SDE interface: the default Euler discretisation.
#include "processes/process.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

at::Tensor Process::diffusion_divergence(const at::Tensor& x, const at::Tensor& t) const {
  (void)t;
  return at::zeros_like(x);
}

at::Tensor Process::flow_drift(const at::Tensor& x, const at::Tensor& t) const {
  if (!state_dependent_diffusion()) return drift(x, t);
  return drift(x, t) - 0.5 * diffusion_divergence(x, t);
}

at::Tensor Process::diffusion_squared(const at::Tensor& x, const at::Tensor& t, const at::Tensor& v) const {
  return diffusion(x, t).apply_squared(v);
}

at::Tensor Process::simulate(const at::Tensor& x, const at::Tensor& t_from, const at::Tensor& t_to, int64_t steps,
                             at::Generator& generator) const {
  if (steps < 1) throw InputError("simulate: steps must be at least 1");
  const auto from = t_from.to(x.device(), x.scalar_type()).reshape({-1});
  const auto h = (t_to.to(x.device(), x.scalar_type()).reshape({-1}) - from) / static_cast<double>(steps);
  auto y = x;
  const int64_t m = noise_dim(x.size(1));
  for (int64_t k = 0; k < steps; ++k) {
    const auto t = from + static_cast<double>(k) * h;
    const auto noise = at::randn({x.size(0), m}, generator, x.options().requires_grad(false));
    const auto g = diffusion(y, t);
    y = y + drift(y, t) * h.unsqueeze(1) + g.apply(noise * at::sqrt(h).unsqueeze(1));
  }
  return y;
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
