// Assembly of the reverse-time SDE and the probability-flow ODE from a process and a score model
// (docs/processes.md, "Reverse-time SDE and probability flow").
#include "processes/reverse.hpp"

namespace sdeflow {

ReverseSde::ReverseSde(std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model)
    : process_(std::move(process)), model_(std::move(model)) {}

std::string ReverseSde::describe() const { return "reverse-time SDE of process " + process_->name(); }

at::Tensor ReverseSde::score(const at::Tensor& t, const at::Tensor& y) const {
  count_evaluation();
  return model_->score(y, t);
}

at::Tensor ReverseSde::drift(const at::Tensor& t, const at::Tensor& y) const {
  const auto g = process_->diffusion(y, t);
  auto result = process_->drift(y, t) - g.apply_squared(score(t, y));
  if (process_->state_dependent_diffusion()) result = result - process_->diffusion_divergence(y, t);
  return result;
}

Diffusion ReverseSde::diffusion(const at::Tensor& t, const at::Tensor& y) const {
  return process_->diffusion(y, t);
}

NoiseType ReverseSde::noise_type() const {
  if (process_->state_dependent_diffusion()) return NoiseType::general;
  return NoiseType::additive;
}

ProbabilityFlow::ProbabilityFlow(std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model)
    : process_(std::move(process)), model_(std::move(model)) {}

std::string ProbabilityFlow::describe() const { return "probability-flow ODE of process " + process_->name(); }

at::Tensor ProbabilityFlow::operator()(const at::Tensor& t, const at::Tensor& y) const {
  count_evaluation();
  const auto g = process_->diffusion(y, t);
  auto result = process_->drift(y, t) - 0.5 * g.apply_squared(model_->score(y, t));
  if (process_->state_dependent_diffusion()) result = result - 0.5 * process_->diffusion_divergence(y, t);
  return result;
}

}  // namespace sdeflow
