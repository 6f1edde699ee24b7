#pragma once
// What a solver steps (diffrax's "terms"): an ODE vector field dy/dt = v(t, y), or an SDE
// dy = b(t, y) dt + G(t, y) dW. Terms count their evaluations so that every result reports its NFE.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>

namespace sdeflow {

// G(x, t) in one of four shapes. The reverse SDE needs G G^T applied to a vector and G applied to dW. The
// Brownian motion W has the state's dimension D except for `partial`: m < D noise coordinates acting diagonally
// on the state coordinates [offset, offset + m) (critically-damped Langevin: d-dimensional noise on the velocity
// half of the 2d state), G = [0; diag(value); 0] of shape [D, m].
struct Diffusion {
  enum class Kind { scalar, diagonal, full, partial };
  Kind kind = Kind::scalar;
  at::Tensor value;   // scalar: [B, 1]; diagonal: [B, D]; full: [B, D, D]; partial: [B, m]
  int64_t offset = 0;      // partial: the first state coordinate the noise acts on
  int64_t state_dim = 0;   // partial: D

  static Diffusion scalar(at::Tensor g) { return {Kind::scalar, std::move(g)}; }
  static Diffusion diagonal(at::Tensor g) { return {Kind::diagonal, std::move(g)}; }
  static Diffusion full(at::Tensor g) { return {Kind::full, std::move(g)}; }
  static Diffusion partial(at::Tensor g, int64_t offset, int64_t state_dim) {
    return {Kind::partial, std::move(g), offset, state_dim};
  }

  at::Tensor apply(const at::Tensor& noise) const;          // G dW, noise [B, m] (m = D unless partial) -> [B, D]
  at::Tensor apply_squared(const at::Tensor& vector) const;  // G G^T v, v [B, D]
};

class Term {
 public:
  virtual ~Term() = default;
  virtual std::string describe() const = 0;
  // Number of model (network / score) evaluations so far; each counts one batched call.
  int64_t evaluations() const { return evaluations_; }
  void reset_evaluations() const { evaluations_ = 0; }
  // Solvers that evaluate a subset of the batch (per-sample adaptivity, dropped non-finite rows) say which
  // rows before evaluating: index [b] int64 into the full batch given to the solver; undefined = all rows.
  // Terms whose value depends on the sample's identity (fixed per-sample Hutchinson probes) use it.
  virtual void bind_samples(const at::Tensor& index) const { (void)index; }

 protected:
  void count_evaluation() const { ++evaluations_; }

 private:
  mutable int64_t evaluations_ = 0;
};

class VectorField : public Term {
 public:
  // t: [B], y: [B, D] -> dy/dt [B, D].
  virtual at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const = 0;
};

// torchsde's noise types: what a solver may assume about G.
enum class NoiseType { additive, diagonal, general };

class SdeTerm : public Term {
 public:
  virtual at::Tensor drift(const at::Tensor& t, const at::Tensor& y) const = 0;
  virtual Diffusion diffusion(const at::Tensor& t, const at::Tensor& y) const = 0;
  virtual NoiseType noise_type() const = 0;
  // The dimension of the Brownian motion for a state of dimension `state_dim` (what a Brownian path draws).
  virtual int64_t noise_dim(int64_t state_dim) const { return state_dim; }
};

}  // namespace sdeflow
