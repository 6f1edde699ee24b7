#pragma once
// Vector fields with known solutions, shared by the solver test suites.
#include <ATen/ATen.h>

#include <string>

#include "solvers/term.hpp"

namespace sdeflow::test {

// dy/dt = -2 t y^2 with y(0) = c: y(t) = c / (1 + c t^2).
class Riccati : public VectorField {
 public:
  std::string describe() const override { return "dy/dt = -2 t y^2"; }
  at::Tensor operator()(const at::Tensor& t, const at::Tensor& y) const override {
    count_evaluation();
    return -2.0 * t.unsqueeze(1) * y * y;
  }
};

}  // namespace sdeflow::test
