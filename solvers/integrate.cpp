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

StepController::Start FixedGrid::start(const Term& term, const Stepper& stepper, const at::Tensor& t0, double t1,
                                      const at::Tensor& y0) {
  (void)term; (void)stepper; (void)y0;
  if (std::abs(t0[0].item<double>() - grid_.front()) > 1e-12 * std::max(1.0, std::abs(grid_.front())) ||
      std::abs(t1 - grid_.back()) > 1e-12 * std::max(1.0, std::abs(t1))) {
    throw InputError("fixed-step grid does not span the integration interval");
  }
  index_ = 0;
  return {at::full_like(t0, grid_[1] - grid_[0]), at::Tensor()};
}

StepController::Decision FixedGrid::decide(const at::Tensor& t, const at::Tensor& dt, const at::Tensor& y,
                                           const StepResult& result, const Stepper& stepper, const at::Tensor& state) {
  (void)y; (void)result; (void)stepper;
  ++index_;
  const double next = index_ + 1 < grid_.size() ? grid_[index_ + 1] - grid_[index_] : grid_[1] - grid_[0];
  return {at::ones(t.sizes(), t.options().dtype(at::kBool)), at::full_like(dt, next), state};
}

std::vector<double> uniform_grid(double t0, double t1, int64_t steps) {
  if (steps <= 0) throw InputError("number of steps must be positive, got " + std::to_string(steps));
  std::vector<double> grid(static_cast<size_t>(steps) + 1);
  for (int64_t i = 0; i <= steps; ++i) grid[i] = t0 + (t1 - t0) * static_cast<double>(i) / static_cast<double>(steps);
  grid.back() = t1;
  return grid;
}

namespace {

// Rows [index] of `full`, or `full` itself when every row takes part.
at::Tensor rows(const at::Tensor& full, const at::Tensor& index) {
  return index.defined() ? full.index_select(0, index) : full;
}

void put_rows(at::Tensor& full, const at::Tensor& index, const at::Tensor& part) {
  if (index.defined()) {
    full.index_copy_(0, index, part);
  } else {
    full = part;
  }
}

at::Tensor status_value(const at::Tensor& like, SampleStatus status) {
  return at::full_like(like, static_cast<int32_t>(status));
}

}  // namespace

Solution integrate(const Term& term, Stepper& stepper, StepController& controller, const at::Tensor& y0,
                   double t0, double t1, const SaveAt& save, Observer* observer, const IntegrateOptions& options) {
  require_state(y0, -1, "integrate: initial state");
  stepper.check_term(term);
  if (!std::isfinite(t0) || !std::isfinite(t1) || t0 == t1) {
    throw InputError("integrate: need finite t0 != t1, got t0 = " + std::to_string(t0) + ", t1 = " + std::to_string(t1));
  }
  if (stepper.stochastic() && options.brownian == nullptr) {
    throw InputError("solver '" + stepper.name() + "' is stochastic and needs a Brownian path");
  }
  if (save.every_steps > 0 && !controller.lockstep()) {
    throw InputError("saving every K steps needs a fixed-step solver");
  }
  if (options.max_steps <= 0) throw InputError("max-steps must be positive, got " + std::to_string(options.max_steps));
  const double direction = t1 > t0 ? 1.0 : -1.0;
  if (!save.times.empty()) {
    if (!stepper.dense_output()) {
      throw InputError("solver '" + stepper.name() + "' has no dense output: it cannot save at requested times");
    }
    double previous = t0;
    for (double ts : save.times) {
      if (!std::isfinite(ts) || (ts - previous) * direction <= 0.0 || (t1 - ts) * direction <= 0.0) {
        throw InputError("save times must lie strictly between t0 and t1, in integration order");
      }
      previous = ts;
    }
  }
  const int64_t batch = y0.size(0);
  const auto options_t = y0.options();
  const auto long_options = y0.options().dtype(at::kLong);
  const int64_t nfe_before = term.evaluations();

  Solution solution;
  solution.y = y0.clone();
  solution.t = at::full({batch}, t0, options_t);
  solution.status = at::zeros({batch}, y0.options().dtype(at::kInt));
  solution.steps = at::zeros({batch}, long_options);
  solution.nfe = at::zeros({batch}, long_options);
  if (batch == 0) return solution;

  // Rows that are not finite to begin with never enter the loop: the others run as if they were absent.
  auto active = at::isfinite(y0).all(1);
  solution.status = at::where(active, solution.status, status_value(solution.status, SampleStatus::non_finite));
  const double tolerance = 1e-12 * std::max({1.0, std::abs(t0), std::abs(t1)});
  auto dt = at::full({batch}, t1 - t0, options_t);
  auto controller_state = at::ones({batch}, options_t);
  auto attempts = at::zeros({batch}, long_options);
  at::Tensor fsal;   // [B, D] v at each sample's current point, for FSAL steppers
  {
    const int64_t n_start = active.sum().item<int64_t>();
    if (n_start > 0) {
      const auto index = n_start == batch ? at::Tensor() : active.nonzero().squeeze(1);
      term.bind_samples(index);
      const int64_t before = term.evaluations();
      auto start = controller.start(term, stepper, rows(solution.t, index), t1, rows(solution.y, index));
      put_rows(dt, index, start.dt);
      if (start.f0.defined() && stepper.fsal()) {
        fsal = at::zeros_like(y0);
        put_rows(fsal, index, start.f0);
      }
      put_rows(solution.nfe, index, rows(solution.nfe, index) + (term.evaluations() - before));
    }
  }
  StepContext context{options.generator, options.brownian, false, options.denoise_last, at::Tensor()};
  if (save.t0 && observer != nullptr) observer->on_save(solution.t, solution.y);

  // Dense-output saves: filled per sample as it passes each time, reported once every sample has passed.
  const int64_t n_times = static_cast<int64_t>(save.times.size());
  at::Tensor saved;
  if (n_times > 0) saved = at::full({n_times, batch, y0.size(1)}, std::nan(""), options_t);
  int64_t next_report = 0;
  auto report_passed_times = [&](bool all) {
    while (next_report < n_times) {
      const double ts = save.times[static_cast<size_t>(next_report)];
      const bool passed = all || (~active | ((solution.t - ts) * direction >= 0)).all().item<bool>();
      if (!passed) break;
      if (observer != nullptr) observer->on_save(at::full({batch}, ts, options_t), saved[next_report]);
      ++next_report;
    }
  };

  const bool retry = controller.retries_non_finite();
  int64_t iteration = 0;
  while (true) {
    const int64_t n_active = active.sum().item<int64_t>();
    if (n_active == 0) break;
    const bool everyone = n_active == batch;
    const auto index = everyone ? at::Tensor() : active.nonzero().squeeze(1);
    term.bind_samples(index);
    if (options.brownian != nullptr) options.brownian->bind_samples(index);

    const auto t = rows(solution.t, index);
    const auto y = rows(solution.y, index);
    const auto remaining = t1 - t;
    auto step_dt = rows(dt, index);
    // Never step past t1: the last step of each sample ends exactly on it.
    const auto finishing = step_dt.abs() >= remaining.abs() - tolerance;
    step_dt = at::where(finishing, remaining, step_dt);
    context.last_step = finishing.all().item<bool>();
    context.f0 = fsal.defined() ? rows(fsal, index) : at::Tensor();

    const int64_t before = term.evaluations();
    const auto result = stepper.step(term, t, y, step_dt, context);
    const int64_t evaluations = term.evaluations() - before;
    auto decision = controller.decide(t, step_dt, y, result, stepper, rows(controller_state, index));
    const auto finite = at::isfinite(result.y).all(1);
    const auto accept = decision.accept & finite;
    const auto t_new = at::where(accept, at::where(finishing, at::full_like(t, t1), t + step_dt), t);
    const auto y_new = at::where(accept.unsqueeze(1), result.y, y);
    auto status = rows(solution.status, index);
    if (!retry) status = at::where(~finite, status_value(status, SampleStatus::non_finite), status);
    const auto n_attempts = rows(attempts, index) + 1;
    const auto accepted_steps = rows(solution.steps, index) + accept.to(at::kLong);
    const auto done = (t_new - t1).abs() <= tolerance;
    const auto next_dt = decision.next_dt;
    const auto underflow = (~done) & (status == 0) & (next_dt.abs() < 1e-14 * at::clamp_min(t_new.abs(), 1.0));
    status = at::where(underflow & finite, status_value(status, SampleStatus::step_underflow), status);
    status = at::where(underflow & ~finite, status_value(status, SampleStatus::non_finite), status);
    const auto exhausted = (~done) & (status == 0) & (n_attempts >= options.max_steps);
    status = at::where(exhausted, status_value(status, SampleStatus::max_steps), status);
    const auto still_active = (~done) & (status == 0);

    if (n_times > 0) {
      // Dense output for every save time this step passed (t < ts <= t_new in integration order).
      for (int64_t s = next_report; s < n_times; ++s) {
        const double ts = save.times[static_cast<size_t>(s)];
        const auto crossed = accept & ((ts - t) * direction > 0) & ((t_new - ts) * direction >= 0);
        if (!crossed.any().item<bool>()) {
          if (((ts - t_new) * direction > 0).all().item<bool>()) break;
          continue;
        }
        const auto theta = at::where(crossed, (ts - t) / step_dt, at::zeros_like(t));
        const auto y_s = stepper.interpolate(y, result, step_dt, theta);
        const auto local = crossed.nonzero().squeeze(1);
        const auto global = index.defined() ? index.index_select(0, local) : local;
        saved[s].index_copy_(0, global, y_s.index_select(0, local));
      }
    }
    if (stepper.fsal() && result.f1.defined()) {
      const auto f_old = context.f0.defined() ? context.f0 : result.stages.front();
      const auto f_next = at::where(accept.unsqueeze(1), result.f1, f_old);
      if (!fsal.defined()) fsal = at::zeros_like(y0);
      put_rows(fsal, index, f_next);
    }
    put_rows(solution.t, index, t_new);
    put_rows(solution.y, index, y_new);
    put_rows(solution.status, index, status);
    put_rows(solution.steps, index, accepted_steps);
    put_rows(solution.nfe, index, rows(solution.nfe, index) + evaluations);
    put_rows(attempts, index, n_attempts);
    put_rows(dt, index, next_dt);
    put_rows(controller_state, index, decision.state);
    put_rows(active, index, still_active);
    const int64_t n_accepted = accept.sum().item<int64_t>();
    solution.stats.accepted += n_accepted;
    solution.stats.rejected += n_active - n_accepted;
    ++iteration;
    if (observer != nullptr && save.every_steps > 0 && iteration % save.every_steps == 0 && !context.last_step) {
      observer->on_save(solution.t, solution.y);
    }
    if (n_times > 0) report_passed_times(false);
    if (options.progress) options.progress(iteration, controller.expected_steps());
  }
  term.bind_samples(at::Tensor());
  if (options.brownian != nullptr) options.brownian->bind_samples(at::Tensor());
  // Failed samples carry NaN, never a half-integrated state that looks like a result.
  const auto failed = (solution.status != 0).unsqueeze(1);
  solution.y = at::where(failed, at::full_like(solution.y, std::nan("")), solution.y);
  if (n_times > 0) {
    saved.masked_fill_(failed.unsqueeze(0).expand_as(saved), std::nan(""));
    report_passed_times(true);
  }
  if (save.t1 && observer != nullptr) observer->on_save(solution.t, solution.y);
  solution.stats.steps = iteration;
  solution.stats.nfe = term.evaluations() - nfe_before;
  return solution;
}

}  // namespace sdeflow
