#pragma once
// Observers (ARCHITECTURE.md): what is done with the states on the way. The integrate loop calls
// on_save at every requested save point; saving and analysis never live inside a stepper.
#include <ATen/ATen.h>

namespace sdeflow {

class Observer {
 public:
  virtual ~Observer() = default;
  // t: [B] times of the saved states; x: [B, D].
  virtual void on_save(const at::Tensor& t, const at::Tensor& x) = 0;
};

}  // namespace sdeflow
