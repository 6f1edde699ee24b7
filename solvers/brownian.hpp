#pragma once
// Brownian paths (ARCHITECTURE.md): a solver asks for W(t1) - W(t0) over an interval. The generator-backed
// path below draws independent increments and is valid only for a non-overlapping, forward-in-order
// sequence of intervals (a fixed grid); a virtual Brownian tree that answers any query consistently is
// the next implementation of the same interface.
#include <ATen/ATen.h>

namespace sdeflow {

class BrownianPath {
 public:
  virtual ~BrownianPath() = default;
  // Increment over [t0, t1] per sample (t0, t1: [B]); variance |t1 - t0|, shape [B, D].
  virtual at::Tensor increment(const at::Tensor& t0, const at::Tensor& t1) = 0;
};

class GridIncrements : public BrownianPath {
 public:
  GridIncrements(at::Generator generator, int64_t dim) : generator_(std::move(generator)), dim_(dim) {}
  at::Tensor increment(const at::Tensor& t0, const at::Tensor& t1) override;

 private:
  at::Generator generator_;
  int64_t dim_;
};

}  // namespace sdeflow
