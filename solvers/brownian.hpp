#pragma once
// Brownian paths (ARCHITECTURE.md): a solver asks for W(t1) - W(t0) over an interval, and schemes of strong
// order 1.5 also for the interval's space-time Levy area. The generator-backed path below draws independent
// increments and is valid only for a non-overlapping, in-order sequence of intervals (a fixed grid); the
// virtual Brownian tree (solvers/brownian_tree.hpp) answers any query consistently. docs/sde_solvers.md.
#include <ATen/ATen.h>

namespace sdeflow {

// An increment and the space-time Levy area of the same interval, drawn together.
struct BrownianIncrement {
  at::Tensor dw;           // [B, D] W(t1) - W(t0)
  at::Tensor levy_area;    // [B, D] H over [t0, t1] (BrownianPath::levy_area)
};

class BrownianPath {
 public:
  virtual ~BrownianPath() = default;
  // Increment over [t0, t1] per sample (t0, t1: [B]); variance |t1 - t0|, shape [B, D].
  virtual at::Tensor increment(const at::Tensor& t0, const at::Tensor& t1) = 0;
  // Space-time Levy area per sample, h = t1 - t0 (either sign):
  //   H = (1/h) int_{t0}^{t1} (W_s - W_t0) ds - (W_t1 - W_t0) / 2,
  // N(0, |h|/12) and independent of the increment. Symmetric in (t0, t1): for t1 < t0 it is the area of the
  // time-reversed motion s -> W(t0 - s) - W(t0), which is what a reverse-time scheme needs. The integral
  // int (W_s - W_t0) ds / h that Runge-Kutta schemes use (Rossler's I_(1,0) / h) is dw / 2 + H.
  // The default throws Error: a path that cannot produce it says so.
  virtual at::Tensor levy_area(const at::Tensor& t0, const at::Tensor& t1);
  // Increment and Levy area of one interval together. Paths that draw afresh per call (GridIncrements)
  // must be asked through this; the default calls increment() then levy_area().
  virtual BrownianIncrement increment_with_levy_area(const at::Tensor& t0, const at::Tensor& t1);
  // The loop's rows of the full batch (Term::bind_samples): index [b] int64, undefined = every row. Paths
  // whose rows have an identity (the Brownian tree: row r is the r-th independent motion) use it;
  // the default ignores it.
  virtual void bind_samples(const at::Tensor& index) { (void)index; }
};

class GridIncrements : public BrownianPath {
 public:
  GridIncrements(at::Generator generator, int64_t dim) : generator_(std::move(generator)), dim_(dim) {}
  at::Tensor increment(const at::Tensor& t0, const at::Tensor& t1) override;
  // A fresh N(0, |h|/12) draw: H is independent of the increment, so this is a valid joint draw with any
  // increment() of the same interval.
  at::Tensor levy_area(const at::Tensor& t0, const at::Tensor& t1) override;
  // One draw of [B, 2, D] standard normals: sqrt|h| z0 and sqrt(|h|/12) z1.
  BrownianIncrement increment_with_levy_area(const at::Tensor& t0, const at::Tensor& t1) override;

 private:
  at::Generator generator_;
  int64_t dim_;
};

}  // namespace sdeflow
