#pragma once
// Likelihood of a diffusion model by the instantaneous change of variables (docs/likelihood.md):
//   log p_eps(y) = log p_T(y_T) + int_eps^T div_y v(y_t, t) dt,   dy/dt = v = the probability-flow field,
// integrated as the augmented ODE [y, l] from eps to T with any ODE solver (solvers/ode.hpp). On top of it,
// data-space NLL in nats and bits/dim: an affine map from data to model space and, for integer data
// (images), uniform dequantisation with K importance samples (log-mean-exp, NDM appendix eq. 35).
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "likelihood/divergence.hpp"
#include "processes/score_model.hpp"
#include "processes/process.hpp"
#include "solvers/ode.hpp"

namespace sdeflow {

// The density at T: the process's prior (standard), or the model's own marginal p_T where it has one in
// closed form (exact): then the prior mismatch drops out and only the solver's and eps's errors remain.
enum class PriorKind { standard, exact };
PriorKind parse_prior(const std::string& name);   // "standard" | "exact"
std::string to_string(PriorKind prior);

struct LikelihoodOptions {
  OdeOptions ode;                          // solver name, tolerances or steps, max steps
  TraceMethod trace = TraceMethod::exact;
  int64_t probes = 1;                      // Hutchinson probes per sample
  double eps = 1e-5;                       // integrate from eps (0 < eps < T) to T
  PriorKind prior = PriorKind::standard;
  // Augmented processes (CLD): draws of the hidden part per row; the result is then the bound
  // -log p(x) <= E_v[-log p(x, v)] - H(N(0, gamma M I)) estimated by their mean (docs/likelihood.md).
  int64_t velocity_samples = 1;
};

// Data x -> model space y = scale * u + shift, where u = x for real-valued data and u = (x + noise) / levels
// with noise ~ U[0, 1)^D for integer data x in {0, ..., levels - 1}^D.
struct DataTransform {
  double scale = 1.0;
  double shift = 0.0;
  bool integer = false;
  int64_t levels = 256;
  int64_t dequant_samples = 1;   // K: log P(x) >= log mean_k p(x + noise_k) (importance-weighted bound)
};

struct LikelihoodResult {
  at::Tensor log_prob;   // [B] log-density (real data) or log-probability bound (integer data), nats; NaN if failed
  at::Tensor nll;        // [B] -log_prob
  at::Tensor bpd;        // [B] nll / (D ln 2)
  at::Tensor nfe;        // [B] int64 model evaluations (summed over dequantisation samples)
  at::Tensor status;     // [B] int32 SampleStatus (0 = ok)
  SolverStats stats;
};

void validate(const LikelihoodOptions& options, const Process& process, const ScoreModel& model);
void validate(const DataTransform& transform);

// log p_eps(y) of model-space points y [B, D] (nll/bpd of y itself).
LikelihoodResult model_log_likelihood(std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model,
                                      const at::Tensor& y, const LikelihoodOptions& options, at::Generator& generator);

// Data-space likelihood of data [B, d] (any device/dtype of the computation is the data tensor's); d is the
// process's data dimension for the model's state (half of it for CLD, whose result is then the velocity bound).
LikelihoodResult negative_log_likelihood(std::shared_ptr<const Process> process,
                                         std::shared_ptr<const ScoreModel> model, const at::Tensor& data,
                                         const LikelihoodOptions& options, const DataTransform& transform,
                                         at::Generator& generator);

// A whole data set, batch by batch: rows [N, d] (any device/dtype; each batch is moved to `device` and `dtype`),
// `batch` rows at a time, one generator seeded `seed` for all batches (probes, dequantisation, velocities).
// `on_batch(result, done, total)` is called after each batch (a result file appends it; a progress bar moves).
struct DatasetLikelihood {
  at::Tensor nll, bpd;             // [N] float64 CPU
  at::Tensor nfe;                  // [N] int64
  at::Tensor status;               // [N] int32
  double nll_mean = 0, nll_stderr = 0, bpd_mean = 0, bpd_stderr = 0;   // over the finite rows
  double nfe_mean = 0, nfe_max = 0, wall_time_s = 0;
  int64_t failures = 0;            // rows with status != 0
  // The summary as written to an NLL file: nll_mean, nll_stderr, bpd_mean, bpd_stderr, nfe_mean, nfe_max,
  // wall_time_s, failures, n.
  std::map<std::string, double> summary() const;
};
DatasetLikelihood dataset_negative_log_likelihood(
    std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model, const at::Tensor& rows,
    const LikelihoodOptions& options, const DataTransform& transform, int64_t batch, const at::Device& device,
    at::ScalarType dtype, uint64_t seed,
    const std::function<void(const LikelihoodResult& result, int64_t done, int64_t total)>& on_batch = nullptr);

}  // namespace sdeflow
