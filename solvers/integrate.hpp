#pragma once
// The single time loop of sdeflow (ARCHITECTURE.md; Boost.Odeint's integrate functions, diffrax's
// diffeqsolve): a term, a stepper, a step controller, what to save and an observer, composed here and
// nowhere else. Per-sample times, steps and status: a sample that fails stops alone.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "solvers/observer.hpp"
#include "solvers/stepper.hpp"

namespace sdeflow {

enum class SampleStatus : int32_t { ok = 0, max_steps = 1, step_underflow = 2, non_finite = 3 };
const char* to_string(SampleStatus status);

class StepController {
 public:
  struct Start {
    at::Tensor dt;   // [B] signed first step
    at::Tensor f0;   // [B, D] v(t0, y0) if the controller evaluated it (seeds FSAL steppers); may be undefined
  };
  struct Decision {
    at::Tensor accept;    // [B] bool
    at::Tensor next_dt;   // [B] signed
    at::Tensor state;     // [B] the controller's per-sample memory after this step (e.g. the last error norm)
  };
  virtual ~StepController() = default;
  virtual Start start(const Term& term, const Stepper& stepper, const at::Tensor& t0, double t1,
                      const at::Tensor& y0) = 0;
  // `state` is this controller's per-sample memory for the rows being stepped ([B], initially 1).
  virtual Decision decide(const at::Tensor& t, const at::Tensor& dt, const at::Tensor& y, const StepResult& result,
                          const Stepper& stepper, const at::Tensor& state) = 0;
  // True when every sample walks the same grid in lockstep (fixed steps): saving every K steps needs it.
  virtual bool lockstep() const { return false; }
  // Fixed grids fail a sample whose step is not finite; adaptive controllers reject the step and shrink it.
  virtual bool retries_non_finite() const { return !lockstep(); }
  virtual int64_t expected_steps() const { return 0; }   // for progress bars; 0 when unknown
};

// Constant steps on a given grid t_0, t_1, ..., t_N (increasing or decreasing).
class FixedGrid : public StepController {
 public:
  explicit FixedGrid(std::vector<double> grid);
  Start start(const Term& term, const Stepper& stepper, const at::Tensor& t0, double t1,
              const at::Tensor& y0) override;
  Decision decide(const at::Tensor& t, const at::Tensor& dt, const at::Tensor& y, const StepResult& result,
                  const Stepper& stepper, const at::Tensor& state) override;
  bool lockstep() const override { return true; }
  int64_t expected_steps() const override { return steps(); }
  int64_t steps() const { return static_cast<int64_t>(grid_.size()) - 1; }
  const std::vector<double>& grid() const { return grid_; }

 private:
  std::vector<double> grid_;
  size_t index_ = 0;
};

// N uniform steps from t0 to t1 (N + 1 points, both ends exact).
std::vector<double> uniform_grid(double t0, double t1, int64_t steps);

struct SaveAt {
  bool t0 = false;            // save the initial state
  int64_t every_steps = 0;    // save after every K-th step (lockstep controllers only); 0: never
  bool t1 = false;            // save the final state (always, even if not a multiple of K)
  // Save at these times (strictly between t0 and t1, in integration order) by the stepper's dense output;
  // each is reported once every sample has passed it.
  std::vector<double> times;
};

struct IntegrateOptions {
  at::Generator generator;              // extra randomness for steppers that need it
  BrownianPath* brownian = nullptr;     // the driving noise of SDE steppers
  bool denoise_last = true;             // SDE samplers: the last step returns the noise-free mean
  int64_t max_steps = 1000000;          // per sample, accepted + rejected
  std::function<void(int64_t step, int64_t total)> progress;   // called after every step (may be empty)
};

struct SolverStats {
  int64_t nfe = 0;        // model evaluations (batched calls)
  int64_t steps = 0;      // loop iterations
  int64_t accepted = 0;   // accepted per-sample steps, summed over the batch
  int64_t rejected = 0;
};

struct Solution {
  at::Tensor t;        // [B] time reached
  at::Tensor y;        // [B, D]
  at::Tensor status;   // [B] int32 (SampleStatus)
  at::Tensor steps;    // [B] int64 accepted steps per sample
  at::Tensor nfe;      // [B] int64 model evaluations each sample took part in
  SolverStats stats;
  bool all_ok() const;
};

Solution integrate(const Term& term, Stepper& stepper, StepController& controller, const at::Tensor& y0,
                   double t0, double t1, const SaveAt& save, Observer* observer, const IntegrateOptions& options);

}  // namespace sdeflow
