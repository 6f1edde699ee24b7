// Assembly of the reverse-time SDE and the probability-flow ODE from a process and a score model
// (docs/processes.md, "Reverse-time SDE and probability flow").
#include "processes/reverse.hpp"

#include "core/error.hpp"

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
  return process_->flow_field(y, t, model_->score(y, t));
}

bool ProbabilityFlow::has_analytic_divergence() const {
  return model_->has_score_divergence() && !process_->state_dependent_diffusion();
}

std::pair<at::Tensor, at::Tensor> ProbabilityFlow::value_and_divergence(const at::Tensor& t, const at::Tensor& y) const {
  if (!has_analytic_divergence()) {
    throw InputError("the analytic trace needs a model with a closed-form score divergence and a state-independent "
                     "diffusion; use --trace exact or hutchinson-*");
  }
  const auto g = process_->diffusion(y, t);
  const auto drift_divergence = process_->drift_divergence(y, t);
  if (!drift_divergence) throw InputError("the analytic trace needs a drift with a known divergence");
  count_evaluation();
  const auto [score, weighted] = model_->score_and_weighted_divergence(y, t, g);
  auto value = process_->drift(y, t) - 0.5 * g.apply_squared(score);
  auto divergence = *drift_divergence - 0.5 * weighted;
  return {value, divergence};
}

}  // namespace sdeflow
