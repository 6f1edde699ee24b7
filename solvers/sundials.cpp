// SUNDIALS ODE backends (solvers/sundials.hpp): CVODE Adams / BDF and ARKODE's explicit Dormand-Prince,
// with the batch as one N_Vector system. SUNDIALS is C: every object it allocates lives in a unique_ptr
// with its own free function, and no C++ exception crosses its frames (the right-hand-side callback and
// the error handler catch everything; the solve's caller rethrows).
#include "solvers/sundials.hpp"

#include <arkode/arkode.h>
#include <arkode/arkode_erkstep.h>
#include <cvode/cvode.h>
#include <cvode/cvode_ls.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sundials/sundials_iterative.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <memory>
#include <type_traits>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

namespace {

constexpr const char* kAdams = "cvode-adams";
constexpr const char* kBdf = "cvode-bdf";
constexpr const char* kDormandPrince = "arkode-dp";

// Non-finite right-hand sides are reported to SUNDIALS as recoverable (it retries with a smaller step,
// which is right when a too-large step left the region where the field is defined) this many times in
// one solve; after that as unrecoverable, so that a persistent NaN ends the solve instead of creeping.
constexpr int64_t kNonFiniteRetries = 20;

// ---- RAII over SUNDIALS objects -------------------------------------------------------------------
struct ContextFree {
  void operator()(SUNContext context) const { SUNContext_Free(&context); }
};
struct VectorFree {
  void operator()(N_Vector vector) const { N_VDestroy(vector); }
};
struct LinearSolverFree {
  void operator()(SUNLinearSolver solver) const { SUNLinSolFree(solver); }
};
struct NonlinearSolverFree {
  void operator()(SUNNonlinearSolver solver) const { SUNNonlinSolFree(solver); }
};
struct CvodeFree {
  void operator()(void* memory) const { CVodeFree(&memory); }
};
struct ErkStepFree {
  void operator()(void* memory) const { ERKStepFree(&memory); }
};
using ContextPtr = std::unique_ptr<std::remove_pointer_t<SUNContext>, ContextFree>;
using VectorPtr = std::unique_ptr<std::remove_pointer_t<N_Vector>, VectorFree>;
using LinearSolverPtr = std::unique_ptr<std::remove_pointer_t<SUNLinearSolver>, LinearSolverFree>;
using NonlinearSolverPtr = std::unique_ptr<std::remove_pointer_t<SUNNonlinearSolver>, NonlinearSolverFree>;
using CvodePtr = std::unique_ptr<void, CvodeFree>;
using ErkStepPtr = std::unique_ptr<void, ErkStepFree>;

// ---- what the C callbacks see ----------------------------------------------------------------------
struct RhsData {
  const VectorField* field = nullptr;
  int64_t rows = 0, dim = 0;
  bool zero_copy = false;          // the field takes CPU float64: hand it the N_Vector memory itself
  at::TensorOptions field_options;  // otherwise y0's dtype/device
  std::exception_ptr exception;    // thrown by the field; rethrown after the solver returned
  bool last_non_finite = false;    // the most recent evaluation produced NaN/Inf
  int64_t non_finite = 0;          // non-finite evaluations so far
  std::string message;             // SUNDIALS' last error message (its printing is silenced)
};

int right_hand_side(sunrealtype t, N_Vector y, N_Vector ydot, void* user_data) noexcept {
  auto& data = *static_cast<RhsData*>(user_data);
  try {
    const auto cpu = at::TensorOptions().dtype(at::kDouble).device(at::kCPU);
    const auto y_view = at::from_blob(N_VGetArrayPointer(y), {data.rows, data.dim}, cpu);
    auto ydot_view = at::from_blob(N_VGetArrayPointer(ydot), {data.rows, data.dim}, cpu);
    const auto y_field = data.zero_copy ? y_view : y_view.to(data.field_options);
    const auto time = at::full({data.rows}, static_cast<double>(t), data.field_options);
    const auto value = (*data.field)(time, y_field);
    if (value.dim() != 2 || value.size(0) != data.rows || value.size(1) != data.dim) {
      throw InputError("SUNDIALS solve: the vector field returned shape " + std::string(c10::str(value.sizes())) +
                       " for a state of shape " + std::string(c10::str(y_field.sizes())));
    }
    ydot_view.copy_(value.detach());
    data.last_non_finite = !at::isfinite(ydot_view).all().item<bool>();
    if (data.last_non_finite) return ++data.non_finite > kNonFiniteRetries ? -1 : 1;
    return 0;
  } catch (...) {
    data.exception = std::current_exception();
    return -1;   // unrecoverable: the solver returns at once
  }
}

// Replaces SUNDIALS' printing to stderr: keep the message for our own exceptions.
void keep_message(int error_code, const char* module, const char* function, char* message, void* user_data) noexcept {
  (void)error_code;
  try {
    static_cast<RhsData*>(user_data)->message =
        std::string(module ? module : "") + "::" + (function ? function : "") + ": " + (message ? message : "");
  } catch (...) {
  }
}

void check(int flag, const char* call, const RhsData& data) {
  if (flag < 0) {
    throw Error(std::string("SUNDIALS: ") + call + " failed with flag " + std::to_string(flag) +
                (data.message.empty() ? "" : " (" + data.message + ")"));
  }
}

struct RunResult {
  int flag = 0;
  double t = 0.0;
  long steps = 0;
  long error_test_failures = 0;
};

double signed_first_step(double first_step, double t0, double t1) {
  return first_step > 0.0 ? (t1 > t0 ? first_step : -first_step) : 0.0;
}

// The smallest step size, as in integrate(): below 1e-14 of the time scale a step no longer moves t (SUNDIALS
// would otherwise go on with t + h == t until max_steps); at this bound the solver fails as step underflow.
double min_step(double t0, double t1) { return 1e-14 * std::max({1.0, std::abs(t0), std::abs(t1)}); }

RunResult run_cvode(SundialsMethod method, SUNContext context, N_Vector y, double t0, double t1,
                    const SundialsOptions& options, RhsData& data) {
  // Declared before the solver memory so that they outlive it.
  LinearSolverPtr linear;
  NonlinearSolverPtr nonlinear;
  CvodePtr memory(CVodeCreate(method == SundialsMethod::cvode_adams ? CV_ADAMS : CV_BDF, context));
  if (!memory) throw Error("SUNDIALS: CVodeCreate failed");
  void* mem = memory.get();
  check(CVodeSetErrHandlerFn(mem, keep_message, &data), "CVodeSetErrHandlerFn", data);
  check(CVodeInit(mem, right_hand_side, t0, y), "CVodeInit", data);
  check(CVodeSetUserData(mem, &data), "CVodeSetUserData", data);
  check(CVodeSStolerances(mem, options.rtol, options.atol), "CVodeSStolerances", data);
  check(CVodeSetMaxNumSteps(mem, static_cast<long>(options.max_steps)), "CVodeSetMaxNumSteps", data);
  if (options.first_step > 0.0) {
    check(CVodeSetInitStep(mem, signed_first_step(options.first_step, t0, t1)), "CVodeSetInitStep", data);
  }
  check(CVodeSetMinStep(mem, min_step(t0, t1)), "CVodeSetMinStep", data);
  check(CVodeSetStopTime(mem, t1), "CVodeSetStopTime", data);
  if (method == SundialsMethod::cvode_adams) {
    // Non-stiff Adams: functional (fixed-point) iteration, no Jacobian, no linear solver.
    nonlinear.reset(SUNNonlinSol_FixedPoint(y, 0, context));
    if (!nonlinear) throw Error("SUNDIALS: SUNNonlinSol_FixedPoint failed");
    check(CVodeSetNonlinearSolver(mem, nonlinear.get()), "CVodeSetNonlinearSolver", data);
  } else {
    // BDF: CVODE's default Newton iteration with matrix-free GMRES; J v by difference quotients.
    linear.reset(SUNLinSol_SPGMR(y, SUN_PREC_NONE, 0, context));
    if (!linear) throw Error("SUNDIALS: SUNLinSol_SPGMR failed");
    check(CVodeSetLinearSolver(mem, linear.get(), nullptr), "CVodeSetLinearSolver", data);
  }
  RunResult result;
  sunrealtype reached = t0;
  result.flag = CVode(mem, t1, y, &reached, CV_NORMAL);
  result.t = reached;
  CVodeGetNumSteps(mem, &result.steps);
  CVodeGetNumErrTestFails(mem, &result.error_test_failures);
  return result;
}

RunResult run_arkode(SUNContext context, N_Vector y, double t0, double t1, const SundialsOptions& options,
                     RhsData& data) {
  ErkStepPtr memory(ERKStepCreate(right_hand_side, t0, y, context));
  if (!memory) throw Error("SUNDIALS: ERKStepCreate failed");
  void* mem = memory.get();
  check(ERKStepSetErrHandlerFn(mem, keep_message, &data), "ERKStepSetErrHandlerFn", data);
  check(ERKStepSetUserData(mem, &data), "ERKStepSetUserData", data);
  check(ERKStepSetTableNum(mem, ARKODE_DORMAND_PRINCE_7_4_5), "ERKStepSetTableNum", data);
  check(ERKStepSStolerances(mem, options.rtol, options.atol), "ERKStepSStolerances", data);
  check(ERKStepSetMaxNumSteps(mem, static_cast<long>(options.max_steps)), "ERKStepSetMaxNumSteps", data);
  if (options.first_step > 0.0) {
    check(ERKStepSetInitStep(mem, signed_first_step(options.first_step, t0, t1)), "ERKStepSetInitStep", data);
  }
  check(ERKStepSetMinStep(mem, min_step(t0, t1)), "ERKStepSetMinStep", data);
  check(ERKStepSetStopTime(mem, t1), "ERKStepSetStopTime", data);
  // One step per call (the same steps as ARK_NORMAL with the stop time at t1): on failure ARKODE reports
  // the time of the failed attempt, and the solution's t is the last accepted step's.
  RunResult result;
  result.t = t0;
  for (int64_t taken = 1;; ++taken) {
    sunrealtype reached = t0;
    result.flag = ERKStepEvolve(mem, t1, y, &reached, ARK_ONE_STEP);
    if (result.flag < 0) break;
    result.t = reached;
    if (result.flag == ARK_TSTOP_RETURN || reached == t1) break;
    if (taken >= options.max_steps) {
      result.flag = ARK_TOO_MUCH_WORK;
      break;
    }
  }
  ERKStepGetNumSteps(mem, &result.steps);
  ERKStepGetNumErrTestFails(mem, &result.error_test_failures);
  return result;
}

// A failed solve's flag -> the status of every row in the system, spelled out per library (most codes
// coincide numerically).
SampleStatus failure_status(SundialsMethod method, int flag, const RhsData& data) {
  const bool cvode = method != SundialsMethod::arkode_dp;
  if (flag == (cvode ? CV_TOO_MUCH_WORK : ARK_TOO_MUCH_WORK)) return SampleStatus::max_steps;
  const bool rhs_failure = cvode ? (flag == CV_RHSFUNC_FAIL || flag == CV_FIRST_RHSFUNC_ERR ||
                                    flag == CV_REPTD_RHSFUNC_ERR || flag == CV_UNREC_RHSFUNC_ERR)
                                 : (flag == ARK_RHSFUNC_FAIL || flag == ARK_FIRST_RHSFUNC_ERR ||
                                    flag == ARK_REPTD_RHSFUNC_ERR || flag == ARK_UNREC_RHSFUNC_ERR);
  if (rhs_failure || data.last_non_finite) return SampleStatus::non_finite;
  // The error or convergence test kept failing until the step size could shrink no further.
  const bool underflow = cvode ? (flag == CV_TOO_CLOSE || flag == CV_ERR_FAILURE || flag == CV_CONV_FAILURE ||
                                  flag == CV_TOO_MUCH_ACC || flag == CV_LSETUP_FAIL || flag == CV_LSOLVE_FAIL ||
                                  flag == CV_NLS_FAIL || flag == CV_NLS_SETUP_FAIL)
                               : (flag == ARK_TOO_CLOSE || flag == ARK_ERR_FAILURE || flag == ARK_CONV_FAILURE ||
                                  flag == ARK_TOO_MUCH_ACC);
  if (underflow) return SampleStatus::step_underflow;
  throw Error("SUNDIALS " + to_string(method) + ": solve failed with flag " + std::to_string(flag) +
              (data.message.empty() ? "" : " (" + data.message + ")"));
}

// Binds the rows in the system for the whole solve and unbinds on every exit.
class BoundSamples {
 public:
  BoundSamples(const VectorField& field, const at::Tensor& index) : field_(field) { field_.bind_samples(index); }
  ~BoundSamples() {
    try {
      field_.bind_samples(at::Tensor());
    } catch (...) {
    }
  }
  BoundSamples(const BoundSamples&) = delete;
  BoundSamples& operator=(const BoundSamples&) = delete;

 private:
  const VectorField& field_;
};

void require_positive(double value, const std::string& what) {
  if (!std::isfinite(value) || value <= 0.0) {
    throw InputError("SUNDIALS solve: " + what + " must be positive and finite, got " + std::to_string(value));
  }
}

}  // namespace

SundialsMethod parse_sundials_method(const std::string& name) {
  if (name == kAdams) return SundialsMethod::cvode_adams;
  if (name == kBdf) return SundialsMethod::cvode_bdf;
  if (name == kDormandPrince) return SundialsMethod::arkode_dp;
  throw InputError("unknown SUNDIALS method '" + name + "' (expected cvode-adams, cvode-bdf or arkode-dp)");
}

std::string to_string(SundialsMethod method) {
  switch (method) {
    case SundialsMethod::cvode_adams: return kAdams;
    case SundialsMethod::cvode_bdf: return kBdf;
    case SundialsMethod::arkode_dp: return kDormandPrince;
  }
  return "unknown";
}

std::vector<std::string> sundials_method_names() { return {kAdams, kBdf, kDormandPrince}; }

Solution solve_sundials(const VectorField& field, SundialsMethod method, const at::Tensor& y0, double t0, double t1,
                        const SundialsOptions& options) {
  require_state(y0, -1, "SUNDIALS solve: initial state");
  if (!y0.is_floating_point()) {
    throw InputError("SUNDIALS solve: initial state must be a floating-point tensor, got " +
                     std::string(c10::toString(y0.scalar_type())));
  }
  if (method != SundialsMethod::cvode_adams && method != SundialsMethod::cvode_bdf &&
      method != SundialsMethod::arkode_dp) {
    throw InputError("SUNDIALS solve: unknown method");
  }
  require_positive(options.rtol, "rtol");
  require_positive(options.atol, "atol");
  if (options.max_steps <= 0) {
    throw InputError("SUNDIALS solve: max_steps must be positive, got " + std::to_string(options.max_steps));
  }
  if (!std::isfinite(options.first_step) || options.first_step < 0.0) {
    throw InputError("SUNDIALS solve: first_step must be >= 0 and finite (0: automatic), got " +
                     std::to_string(options.first_step));
  }
  if (!std::isfinite(t0) || !std::isfinite(t1)) throw InputError("SUNDIALS solve: t0 and t1 must be finite");
  if (t0 == t1) throw InputError("SUNDIALS solve: t0 and t1 must differ (both are " + std::to_string(t0) + ")");

  const int64_t batch = y0.size(0), dim = y0.size(1);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Solution solution;
  solution.t = at::full({batch}, t0, y0.options());
  solution.y = at::full_like(y0, nan);
  solution.status = at::zeros({batch}, y0.options().dtype(at::kInt));
  solution.steps = at::zeros({batch}, y0.options().dtype(at::kLong));
  solution.nfe = at::zeros({batch}, y0.options().dtype(at::kLong));
  if (batch == 0) return solution;
  if (dim == 0) {   // nothing to integrate: every row trivially reaches t1
    solution.t.fill_(t1);
    solution.y = y0.clone();
    return solution;
  }

  // Non-finite rows never enter the system.
  const auto finite = at::isfinite(y0).all(1);
  const int64_t rows = finite.sum().item<int64_t>();
  solution.status.masked_fill_(~finite, static_cast<int32_t>(SampleStatus::non_finite));
  if (rows == 0) return solution;
  const bool everyone = rows == batch;
  const auto index = everyone ? at::Tensor() : finite.nonzero().squeeze(1);

  // The system's state: a fresh contiguous CPU float64 tensor whose memory the N_Vector wraps.
  const auto cpu = at::TensorOptions().dtype(at::kDouble).device(at::kCPU);
  auto work = at::empty({rows, dim}, cpu);
  work.copy_(everyone ? y0 : y0.index_select(0, index));

  RhsData data;
  data.field = &field;
  data.rows = rows;
  data.dim = dim;
  data.zero_copy = y0.device().is_cpu() && y0.scalar_type() == at::kDouble;
  data.field_options = y0.options().requires_grad(false);

  const int64_t nfe_before = field.evaluations();
  RunResult result;
  {
    BoundSamples bound(field, index);
    SUNContext raw_context = nullptr;
    if (SUNContext_Create(nullptr, &raw_context) != 0 || raw_context == nullptr) {
      throw Error("SUNDIALS: SUNContext_Create failed");
    }
    ContextPtr context(raw_context);
    VectorPtr y(N_VMake_Serial(static_cast<sunindextype>(rows * dim), work.data_ptr<double>(), context.get()));
    if (!y) throw Error("SUNDIALS: N_VMake_Serial failed");
    result = method == SundialsMethod::arkode_dp ? run_arkode(context.get(), y.get(), t0, t1, options, data)
                                                 : run_cvode(method, context.get(), y.get(), t0, t1, options, data);
  }
  if (data.exception) std::rethrow_exception(data.exception);

  SampleStatus status = SampleStatus::ok;
  if (result.flag < 0) {
    status = failure_status(method, result.flag, data);
  } else if (!at::isfinite(work).all().item<bool>()) {
    status = SampleStatus::non_finite;
  }
  const int64_t nfe = field.evaluations() - nfe_before;
  solution.stats.nfe = nfe;
  solution.stats.steps = result.steps;
  solution.stats.accepted = result.steps;
  solution.stats.rejected = result.error_test_failures;

  const double reached = status == SampleStatus::ok ? t1 : result.t;
  if (everyone) {
    solution.t.fill_(reached);
    solution.status.fill_(static_cast<int32_t>(status));
    solution.steps.fill_(result.steps);
    solution.nfe.fill_(nfe);
    // float64 CPU: the solution is the very memory SUNDIALS integrated in.
    if (status == SampleStatus::ok) solution.y = data.zero_copy ? work : work.to(y0.options());
  } else {
    solution.t.index_fill_(0, index, reached);
    solution.status.index_fill_(0, index, static_cast<int32_t>(status));
    solution.steps.index_fill_(0, index, result.steps);
    solution.nfe.index_fill_(0, index, nfe);
    if (status == SampleStatus::ok) solution.y.index_copy_(0, index, work.to(y0.options()));
  }
  return solution;
}

}  // namespace sdeflow
