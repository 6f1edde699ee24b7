#pragma once
// Discretisation-robustness study (INDM Sec. 6.2, Fig. 5-6; NDM Tables 4 and 7): for a model and each
// sampler, sample quality against held-out data as the number of steps shrinks, and the NLL as the ODE
// solver's tolerance loosens. The study returns tables; writing them is the caller's (docs/studies.md).
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/model_file.hpp"
#include "processes/mixture.hpp"
#include "processes/score_model.hpp"
#include "processes/linear.hpp"

namespace sdeflow {

struct RobustnessOptions {
  std::vector<std::string> samplers = {"em", "pc", "euler", "heun", "rk4"};
  std::vector<int64_t> steps = {10, 20, 50, 100, 200};
  std::string grid = "uniform";            // time grid of every sampler: uniform | quadratic | logsnr | karras
  int64_t n = 2000;                        // samples per (sampler, steps)
  uint64_t seed = 0;
  double bandwidth = 0.0;                  // RBF kernel; <= 0: median heuristic on the held-out data, fixed once
  int64_t projections = 128;               // sliced Wasserstein directions
  std::vector<std::string> nll_solvers = {"dopri5"};
  std::vector<double> tolerances = {1e-2, 1e-3, 1e-4, 1e-5, 1e-6};
  int64_t nll_n = 500;                     // held-out rows used for the NLL part (0: skip it)
  std::string trace = "exact";
  std::string prior = "standard";          // "exact": the model's own p_T (mixtures), isolating the solver
  double eps = 1e-5;
};

struct SamplerRow {
  int64_t steps = 0, nfe = 0, failures = 0;
  double mmd2 = 0, sliced_w2 = 0, energy = 0, seconds = 0;
  double mean_log_likelihood = NAN, mean_log_likelihood_stderr = NAN;   // exact mixture models only
};

struct NllRow {
  double tolerance = 0, nll_mean = 0, nll_stderr = 0, nfe_mean = 0, seconds = 0;
  double mean_abs_error = NAN, max_abs_error = NAN;   // against the exact log-density (mixture models)
  int64_t failures = 0;
};

struct RobustnessFloor {   // the same metrics between two independent held-out sets of n points each
  double bandwidth = 0, mmd2 = 0, sliced_w2 = 0, energy = 0;
};

// Runs the study. `held_out` [M, D] is the data samples are compared with (M >= n + nll_n is not needed:
// samples are compared with the first min(M, n) rows, the NLL uses rows up to nll_n). `mixture` may be null.
// The callbacks receive each sampler's table and each NLL solver's table as soon as it is complete.
RobustnessFloor run_robustness(std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model,
                               std::shared_ptr<const GaussianMixture> mixture, const at::Tensor& held_out,
                               const at::Tensor& floor_sample, const RobustnessOptions& options,
                               const std::function<void(const std::string&, const std::vector<SamplerRow>&)>& on_sampler,
                               const std::function<void(const std::string&, const std::vector<NllRow>&)>& on_nll);

void validate(const RobustnessOptions& options);

// The held-out data of a robustness study, in model space (where samples live): the rows of `data_path` mapped by
// the model's data scaling (integer data at cell centres), with the second n rows as the noise floor's second set
// when there are 2 n; else, for a model fitted to a built-in toy set, fresh draws of its generator; else exact draws
// of the model's mixture (InputError when it has none). `source` says which, for the result file.
struct HeldOutSets {
  at::Tensor held_out;   // [M, D] float64
  at::Tensor floor;      // [n, D], or undefined when the data are too few for a second set
  std::string source;
};
HeldOutSets robustness_held_out(const Model& model, const std::string& data_path, const RobustnessOptions& options);

}  // namespace sdeflow
