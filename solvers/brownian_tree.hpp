#pragma once
// A virtual Brownian tree (Gaines & Lyons' "virtual Brownian tree"; torchsde's BrownianTree): the batch's
// Brownian motions W on [t0, t1] are defined by a seed alone. [t0, t1] is bisected dyadically; every node
// carries its increment dW and space-time Levy area H, and a node's halves are drawn from the exact
// Gaussian law conditional on (dW, H) with normals that are a hash of (seed, node index, row, component).
// So W(t) is the same whatever the order of queries and whatever step sizes ask, and nothing but a small
// LRU cache of recent nodes is stored. Below `tolerance` the path is the conditional mean given the leaf's
// (dW, H), a quadratic: W and its time integral are exact there for the leaf as a whole.
// Construction, derivation and costs: docs/sde_solvers.md.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>

#include "solvers/brownian.hpp"

namespace sdeflow {

struct BrownianTreeOptions {
  // Bisection stops at the first level whose intervals are shorter than this (absolute time; > 0).
  double tolerance = 1e-6;
  // Bound on the LRU cache of split nodes (each holds 4 B D doubles); it holds at most 2 depth + 16 nodes.
  // 0 disables the cache (every query then draws its whole root-to-leaf path).
  int64_t cache_bytes = int64_t{256} << 20;
};

class BrownianTree : public BrownianPath {
 public:
  // `batch` independent D-dimensional motions on [min(t0, t1), max(t0, t1)], W = 0 at the lower end.
  // Throws InputError for an empty interval, batch or dim < 1, or tolerance <= 0.
  BrownianTree(double t0, double t1, int64_t batch, int64_t dim, uint64_t seed, BrownianTreeOptions options = {});
  ~BrownianTree() override;
  BrownianTree(const BrownianTree&) = delete;
  BrownianTree& operator=(const BrownianTree&) = delete;

  // Queries take per-row times [n] (n = batch, or the number of bound rows), any order, either direction,
  // inside [t0, t1] (a rounding-size overshoot is clamped; more is an InputError). Results are [n, D],
  // computed in float64 and returned in the dtype and on the device of the time tensor.
  at::Tensor increment(const at::Tensor& t0, const at::Tensor& t1) override;    // W(t1) - W(t0)
  at::Tensor levy_area(const at::Tensor& t0, const at::Tensor& t1) override;    // H, see BrownianPath
  BrownianIncrement increment_with_levy_area(const at::Tensor& t0, const at::Tensor& t1) override;
  // Row i of a query is motion index[i] of the batch (index [n] int64 in [0, batch)); undefined: all rows.
  void bind_samples(const at::Tensor& index) override;

  at::Tensor value(const at::Tensor& t);            // W(t), [n, D]
  at::Tensor time_integral(const at::Tensor& t);    // int_{lower end}^{t} W_s ds, [n, D]

  int64_t batch() const;
  int64_t dim() const;
  int depth() const;              // the leaves' level: (t1 - t0) / 2^depth < tolerance
  double leaf_length() const;
  int64_t splits_drawn() const;   // node splits computed so far (one per node and query group, cache misses)
  int64_t cached_nodes() const;
  int64_t cache_capacity() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdeflow
