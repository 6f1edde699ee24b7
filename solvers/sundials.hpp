#pragma once
// SUNDIALS ODE backends (docs/solvers.md, "SUNDIALS backends"): CVODE's variable-order Adams and BDF
// methods and ARKODE's explicit Dormand-Prince 5(4) pair, run on a probability-flow-like VectorField.
//
// The whole batch y0 [B, D] is ONE system of B*D equations with one shared step size (SUNDIALS knows no
// batch): a failure (max steps, step-size underflow, non-finite right-hand side) is a failure of every
// row in the system. Rows of y0 that are not finite never enter the system; they get status non_finite
// and NaN, and the others are integrated exactly as if those rows were absent.
//
// Memory: a contiguous CPU float64 state is integrated in SUNDIALS' serial N_Vectors and handed to the
// field without a copy (at::from_blob over the N_Vector data); the field's result is copied into the
// right-hand-side vector with one copy_. Any other dtype or device: the state is integrated as a CPU
// float64 copy, every evaluation converts y to y0's dtype/device for the field (so a float32 or CUDA model
// is evaluated in its own dtype/device) and the result back, and the solution is returned in y0's
// dtype/device.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "solvers/integrate.hpp"
#include "solvers/term.hpp"

namespace sdeflow {

enum class SundialsMethod {
  cvode_adams,   // "cvode-adams": CVODE, Adams-Moulton orders 1-12, fixed-point iteration
  cvode_bdf,     // "cvode-bdf":   CVODE, BDF orders 1-5, Newton + matrix-free SPGMR (difference-quotient Jv)
  arkode_dp,     // "arkode-dp":   ARKODE ERKStep, explicit Dormand-Prince 5(4)
};

// "cvode-adams" | "cvode-bdf" | "arkode-dp"; InputError otherwise.
SundialsMethod parse_sundials_method(const std::string& name);
std::string to_string(SundialsMethod method);
std::vector<std::string> sundials_method_names();

struct SundialsOptions {
  double rtol = 1e-6, atol = 1e-6;   // scalar relative / absolute tolerances (> 0, finite)
  int64_t max_steps = 100000;        // internal steps; exceeded -> status max_steps
  double first_step = 0.0;           // |h0|; 0: the library's own choice
};

// Integrates dy/dt = field(t, y) from t0 to t1 (t1 < t0 allowed) for the whole batch y0 [B, D] as one
// system. Returns a Solution like integrate(): t [B] (time reached), y [B, D] (NaN rows where status != ok),
// status [B] int32 (SampleStatus), steps [B] int64 (the solver's internal steps, the same for every row in
// the system; 0 for excluded rows), nfe [B] int64 (every row in the system: the number of batched field
// evaluations; 0 for excluded rows), stats {nfe, steps, accepted, rejected (error-test failures)}.
// Throws InputError for bad input/options; an exception thrown by the field reaches the caller unchanged;
// sdeflow::Error if SUNDIALS itself cannot be set up.
Solution solve_sundials(const VectorField& field, SundialsMethod method, const at::Tensor& y0, double t0, double t1,
                        const SundialsOptions& options);

}  // namespace sdeflow
