// The integrate loop: steps only the active samples (those not yet at t1 and not failed), asks the
// controller to accept or reject each, records per-sample status instead of aborting the batch.
#include "solvers/integrate.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

const char* to_string(SampleStatus status) {
  switch (status) {
    case SampleStatus::ok: return "ok";
    case SampleStatus::max_steps: return "max-steps";
    case SampleStatus::step_underflow: return "step-size underflow";
    case SampleStatus::non_finite: return "non-finite state";
  }
  return "?";
}

bool Solution::all_ok() const { return status.numel() == 0 || (status == 0).all().item<bool>(); }

FixedGrid::FixedGrid(std::vector<double> grid) : grid_(std::move(grid)) {
  if (grid_.size() < 2) throw InputError("fixed-step grid needs at least two points");
  const double direction = grid_.back() > grid_.front() ? 1.0 : -1.0;
  for (size_t i = 1; i < grid_.size(); ++i) {
    if (!std::isfinite(grid_[i]) || (grid_[i] - grid_[i - 1]) * direction <= 0.0) {
      throw InputError("fixed-step grid must be finite and strictly monotone");
    }
  }
}

at::Tensor FixedGrid::initial_dt(const at::Tensor& t0, double t1, const at::Tensor& y0) {
  (void)y0;
  if (std::abs(t0[0].item<double>() - grid_.front()) > 1e-12 * std::max(1.0, std::abs(grid_.front())) ||
      std::abs(t1 - grid_.back()) > 1e-12 * std::max(1.0, std::abs(t1))) {
    throw InputError("fixed-step grid does not span the integration interval");
  }
  index_ = 0;
  return at::full_like(t0, grid_[1] - grid_[0]);
}

StepController::Decision FixedGrid::decide(const at::Tensor& t, const at::Tensor& dt, const at::Tensor& y,
                                           const StepResult& result, const Stepper& stepper) {
  (void)y; (void)result; (void)stepper;
  ++index_;
  const double next = index_ + 1 < grid_.size() ? grid_[index_ + 1] - grid_[index_] : grid_[1] - grid_[0];
  return {at::ones(t.sizes(), t.options().dtype(at::kBool)), at::full_like(dt, next)};
}

std::vector<double> uniform_grid(double t0, double t1, int64_t steps) {
  if (steps <= 0) throw InputError("number of steps must be positive, got " + std::to_string(steps));
  std::vector<double> grid(static_cast<size_t>(steps) + 1);
  for (int64_t i = 0; i <= steps; ++i) grid[i] = t0 + (t1 - t0) * static_cast<double>(i) / static_cast<double>(steps);
  grid.back() = t1;
  return grid;
}

Solution integrate(const Term& term, Stepper& stepper, StepController& controller, const at::Tensor& y0,
                   double t0, double t1, const SaveAt& save, Observer* observer, const IntegrateOptions& options) {
  require_state(y0, -1, "integrate: initial state");
  stepper.check_term(term);
  if (stepper.stochastic() && options.brownian == nullptr) {
    throw InputError("solver '" + stepper.name() + "' is stochastic and needs a Brownian path");
  }
  if (save.every_steps > 0 && !controller.lockstep()) {
    throw InputError("saving every K steps needs a fixed-step solver");
  }
  const int64_t batch = y0.size(0);
  const auto options_t = y0.options();
  const int64_t nfe_before = term.evaluations();

  Solution solution;
  solution.y = y0.clone();
  solution.t = at::full({batch}, t0, options_t);
  solution.status = at::zeros({batch}, y0.options().dtype(at::kInt));
  solution.steps = at::zeros({batch}, y0.options().dtype(at::kLong));
  if (batch == 0) return solution;

  const double tolerance = 1e-12 * std::max({1.0, std::abs(t0), std::abs(t1)});
  auto dt = controller.initial_dt(solution.t, t1, solution.y);
  auto active = at::ones({batch}, y0.options().dtype(at::kBool));
  auto attempts = at::zeros({batch}, y0.options().dtype(at::kLong));
  StepContext context{options.generator, options.brownian, false, options.denoise_last};
  if (save.t0 && observer != nullptr) observer->on_save(solution.t, solution.y);

  const int64_t expected = controller.lockstep() ? static_cast<FixedGrid&>(controller).steps() : 0;
  int64_t iteration = 0;
  while (true) {
    const int64_t n_active = active.sum().item<int64_t>();
    if (n_active == 0) break;
    const bool everyone = n_active == batch;
    const auto index = everyone ? at::Tensor() : active.nonzero().squeeze(1);
    auto pick = [&](const at::Tensor& full) { return everyone ? full : full.index_select(0, index); };

    const auto t = pick(solution.t);
    const auto y = pick(solution.y);
    const auto remaining = t1 - t;
    auto step_dt = pick(dt);
    // Never step past t1: the last step of each sample ends exactly on it.
    const auto finishing = step_dt.abs() >= remaining.abs() - tolerance;
    step_dt = at::where(finishing, remaining, step_dt);
    context.last_step = finishing.all().item<bool>();

    const auto result = stepper.step(term, t, y, step_dt, context);
    auto decision = controller.decide(t, step_dt, y, result, stepper);
    const auto finite = at::isfinite(result.y).all(1);
    const auto accept = decision.accept & finite;
    const auto t_new = at::where(accept, at::where(finishing, at::full_like(t, t1), t + step_dt), t);
    const auto y_new = at::where(accept.unsqueeze(1), result.y, y);
    auto status = pick(solution.status);
    status = at::where(~finite, at::full_like(status, static_cast<int32_t>(SampleStatus::non_finite)), status);
    const auto n_attempts = pick(attempts) + 1;
    const auto accepted_steps = pick(solution.steps) + accept.to(at::kLong);
    const auto done = (t_new - t1).abs() <= tolerance;
    const auto next_dt = decision.next_dt;
    const auto underflow = (~done) & finite & (next_dt.abs() < 1e-14 * at::clamp_min(t_new.abs(), 1.0));
    status = at::where(underflow, at::full_like(status, static_cast<int32_t>(SampleStatus::step_underflow)), status);
    const auto exhausted = (~done) & (status == 0) & (n_attempts >= options.max_steps);
    status = at::where(exhausted, at::full_like(status, static_cast<int32_t>(SampleStatus::max_steps)), status);
    const auto still_active = (~done) & (status == 0);

    if (everyone) {
      solution.t = t_new;
      solution.y = y_new;
      solution.status = status;
      solution.steps = accepted_steps;
      attempts = n_attempts;
      dt = next_dt;
      active = still_active;
    } else {
      solution.t.index_copy_(0, index, t_new);
      solution.y.index_copy_(0, index, y_new);
      solution.status.index_copy_(0, index, status);
      solution.steps.index_copy_(0, index, accepted_steps);
      attempts.index_copy_(0, index, n_attempts);
      dt.index_copy_(0, index, next_dt);
      active.index_copy_(0, index, still_active);
    }
    solution.stats.accepted += accept.sum().item<int64_t>();
    solution.stats.rejected += n_active - accept.sum().item<int64_t>();
    ++iteration;
    if (observer != nullptr && save.every_steps > 0 && iteration % save.every_steps == 0 && !context.last_step) {
      observer->on_save(solution.t, solution.y);
    }
    if (options.progress) options.progress(iteration, expected);
  }
  // Failed samples carry NaN, never a half-integrated state that looks like a result.
  const auto failed = (solution.status != 0).unsqueeze(1);
  solution.y = at::where(failed, at::full_like(solution.y, std::nan("")), solution.y);
  if (save.t1 && observer != nullptr) observer->on_save(solution.t, solution.y);
  solution.stats.steps = iteration;
  solution.stats.nfe = term.evaluations() - nfe_before;
  return solution;
}

}  // namespace sdeflow
