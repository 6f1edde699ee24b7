// The augmented probability-flow ODE solve, priors, data transforms and dequantisation (docs/likelihood.md).
#include "likelihood/likelihood.hpp"

#include <chrono>
#include <cmath>
#include <tuple>

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "processes/reverse.hpp"

namespace sdeflow {

PriorKind parse_prior(const std::string& name) {
  if (name == "standard") return PriorKind::standard;
  if (name == "exact") return PriorKind::exact;
  throw InputError("unknown prior '" + name + "' (known: standard, exact)");
}

std::string to_string(PriorKind prior) { return prior == PriorKind::standard ? "standard" : "exact"; }

void validate(const LikelihoodOptions& options, const Process& process, const ScoreModel& model) {
  validate(options.ode);
  const double T = process.time_range().T;
  if (!std::isfinite(options.eps) || !(options.eps > 0.0) || !(options.eps < T)) {
    throw InputError("eps must lie in (0, T) = (0, " + std::to_string(T) + "), got " + std::to_string(options.eps));
  }
  const bool hutchinson = options.trace == TraceMethod::hutchinson_gauss || options.trace == TraceMethod::hutchinson_rademacher;
  if (hutchinson && options.probes <= 0) {
    throw InputError("number of probes must be positive, got " + std::to_string(options.probes));
  }
  if (options.prior == PriorKind::exact && !model.has_log_prob()) {
    throw InputError("--prior exact needs a model with a closed-form marginal density (the Gaussian mixture)");
  }
}

void validate(const DataTransform& transform) {
  if (!std::isfinite(transform.scale) || transform.scale == 0.0) throw InputError("data scale must be finite and non-zero");
  if (!std::isfinite(transform.shift)) throw InputError("data shift must be finite");
  if (transform.levels <= 0) throw InputError("levels must be positive, got " + std::to_string(transform.levels));
  if (transform.dequant_samples <= 0) {
    throw InputError("dequantisation samples must be positive, got " + std::to_string(transform.dequant_samples));
  }
}

LikelihoodResult model_log_likelihood(std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model,
                                      const at::Tensor& y, const LikelihoodOptions& options, at::Generator& generator) {
  require_state(y, model->dim(), "likelihood: input");
  validate(options, *process, *model);
  const int64_t batch = y.size(0);
  const int64_t dim = y.size(1);
  const double T = process->time_range().T;
  auto flow = std::make_shared<ProbabilityFlow>(process, model);
  AugmentedFlow augmented(flow, options.trace, options.probes, batch, y.options(), generator);
  const auto y0 = at::cat({y, at::zeros({batch, 1}, y.options())}, 1);
  const auto solution = solve_ode(augmented, y0, options.eps, T, options.ode);

  const auto xT = solution.y.narrow(1, 0, dim);
  const auto integral = solution.y.select(1, dim);
  // Failed rows are NaN in the solution; evaluate the prior on zeros there and put NaN back afterwards.
  const auto ok = solution.status == 0;
  const auto safe_xT = at::where(ok.unsqueeze(1), xT, at::zeros_like(xT));
  at::Tensor prior;
  if (options.prior == PriorKind::exact) {
    prior = model->marginal_log_prob(safe_xT, at::full({batch}, T, y.options()));
  } else {
    prior = process->prior_log_prob(safe_xT);
  }
  LikelihoodResult result;
  result.log_prob = at::where(ok, prior + integral, at::full_like(integral, std::nan("")));
  result.nll = -result.log_prob;
  result.bpd = result.nll / (static_cast<double>(dim) * std::log(2.0));
  result.nfe = solution.nfe;
  result.status = solution.status;
  result.stats = solution.stats;
  return result;
}

namespace {

// Sums one draw's evaluations into `nfe` and the solver statistics; keeps the first failure status per row.
void accumulate(LikelihoodResult& result, at::Tensor& nfe, at::Tensor& status, const LikelihoodResult& part) {
  nfe = nfe.defined() ? nfe + part.nfe : part.nfe;
  status = status.defined() ? at::where(status != 0, status, part.status) : part.status;
  result.stats.nfe += part.stats.nfe;
  result.stats.steps += part.stats.steps;
  result.stats.accepted += part.stats.accepted;
  result.stats.rejected += part.stats.rejected;
}

// log p of model-space data y: of y itself, or for an augmented process (CLD) of one draw of the state around y,
// plus the hidden part's entropy (one sample of the bound E_v[log p(y, v)] + H).
LikelihoodResult state_log_likelihood(const std::shared_ptr<const Process>& process,
                                      const std::shared_ptr<const ScoreModel>& model, const at::Tensor& y,
                                      const LikelihoodOptions& options, at::Generator& generator) {
  if (!process->augmented()) return model_log_likelihood(process, model, y, options, generator);
  auto result = model_log_likelihood(process, model, process->augment(y, generator), options, generator);
  result.log_prob = result.log_prob + process->augmented_entropy(y.size(1));
  return result;
}

LikelihoodResult data_log_likelihood(const std::shared_ptr<const Process>& process,
                                     const std::shared_ptr<const ScoreModel>& model, const at::Tensor& data,
                                     const LikelihoodOptions& options, const DataTransform& transform,
                                     at::Generator& generator) {
  const double dim = static_cast<double>(data.size(1));
  LikelihoodResult result;
  if (!transform.integer) {
    // y = a x + b: log p_x(x) = log p_y(y) + D log|a|.
    result = state_log_likelihood(process, model, transform.scale * data + transform.shift, options, generator);
    result.log_prob = result.log_prob + dim * std::log(std::abs(transform.scale));
  } else {
    const auto finite_rows = at::isfinite(data).all(1);
    const auto whole = (data == at::floor(data)) & (data >= 0) & (data < static_cast<double>(transform.levels));
    const auto bad = (finite_rows.unsqueeze(1) & ~whole).any(1);
    if (bad.any().item<bool>()) {
      const auto row = bad.nonzero()[0][0].item<int64_t>();
      throw InputError("integer data must lie in {0, ..., " + std::to_string(transform.levels - 1) + "}: row " +
                       std::to_string(row) + " does not");
    }
    // P(x) = int_[0,1)^D p_u(x + noise) d noise with p_u(x + noise) = p_y(y) (a / levels)^D; K uniform samples
    // give the bound log P(x) >= log mean_k p_u(x + noise_k) (exact as K grows).
    const double log_jacobian = dim * std::log(std::abs(transform.scale) / static_cast<double>(transform.levels));
    std::vector<at::Tensor> log_probs;
    at::Tensor nfe, status;
    for (int64_t k = 0; k < transform.dequant_samples; ++k) {
      const auto noise = at::rand(data.sizes(), generator, at::TensorOptions().dtype(at::kDouble)).to(data.options());
      const auto y = transform.scale * (data + noise) / static_cast<double>(transform.levels) + transform.shift;
      auto part = state_log_likelihood(process, model, y, options, generator);
      log_probs.push_back(part.log_prob + log_jacobian);
      accumulate(result, nfe, status, part);
    }
    const auto stacked = at::stack(log_probs, 0);
    result.log_prob = at::logsumexp(stacked, 0) - std::log(static_cast<double>(transform.dequant_samples));
    result.log_prob = at::where(status == 0, result.log_prob, at::full_like(result.log_prob, std::nan("")));
    result.nfe = nfe;
    result.status = status;
  }
  result.nll = -result.log_prob;
  result.bpd = result.nll / (dim * std::log(2.0));
  return result;
}

}  // namespace

LikelihoodResult negative_log_likelihood(std::shared_ptr<const Process> process,
                                         std::shared_ptr<const ScoreModel> model, const at::Tensor& data,
                                         const LikelihoodOptions& options, const DataTransform& transform,
                                         at::Generator& generator) {
  require_state(data, process->data_dim(model->dim()), "likelihood: data");
  validate(transform);
  if (!process->augmented()) return data_log_likelihood(process, model, data, options, transform, generator);
  if (options.velocity_samples <= 0) {
    throw InputError("velocity samples must be positive, got " + std::to_string(options.velocity_samples));
  }
  if (transform.integer && transform.dequant_samples != 1) {
    throw InputError("process " + process->name() + ": the bound averages over dequantisation noise and velocity "
                     "together; use --velocity-samples K with --dequant-samples 1");
  }
  // -log p(x) <= E_v[-log p(x, v)] - H(q): the mean over K draws of v (and of the dequantisation noise).
  LikelihoodResult result;
  at::Tensor sum, nfe, status;
  for (int64_t k = 0; k < options.velocity_samples; ++k) {
    auto part = data_log_likelihood(process, model, data, options, transform, generator);
    sum = sum.defined() ? sum + part.log_prob : part.log_prob;
    accumulate(result, nfe, status, part);
  }
  result.log_prob = sum / static_cast<double>(options.velocity_samples);
  result.nfe = nfe;
  result.status = status;
  result.nll = -result.log_prob;
  result.bpd = result.nll / (static_cast<double>(data.size(1)) * std::log(2.0));
  return result;
}

namespace {
std::pair<double, double> mean_and_stderr(const at::Tensor& values) {
  const auto ok = values.masked_select(at::isfinite(values));
  const auto n = ok.numel();
  if (n == 0) return {std::nan(""), std::nan("")};
  return {ok.mean().item<double>(), n > 1 ? ok.std().item<double>() / std::sqrt(static_cast<double>(n)) : 0.0};
}
}  // namespace

std::map<std::string, double> DatasetLikelihood::summary() const {
  return {{"nll_mean", nll_mean}, {"nll_stderr", nll_stderr}, {"bpd_mean", bpd_mean}, {"bpd_stderr", bpd_stderr},
          {"nfe_mean", nfe_mean}, {"nfe_max", nfe_max},       {"wall_time_s", wall_time_s},
          {"failures", static_cast<double>(failures)},     {"n", static_cast<double>(nll.size(0))}};
}

DatasetLikelihood dataset_negative_log_likelihood(
    std::shared_ptr<const Process> process, std::shared_ptr<const ScoreModel> model, const at::Tensor& rows,
    const LikelihoodOptions& options, const DataTransform& transform, int64_t batch, const at::Device& device,
    at::ScalarType dtype, uint64_t seed,
    const std::function<void(const LikelihoodResult& result, int64_t done, int64_t total)>& on_batch) {
  if (batch <= 0) throw InputError("--batch must be positive, got " + std::to_string(batch));
  if (rows.dim() != 2 || rows.size(0) == 0) throw InputError("likelihood: expected data rows [N, d], N >= 1, got " + shape_text(rows.sizes()));
  const auto start = std::chrono::steady_clock::now();
  auto generator = make_generator(at::kCPU, seed);
  const int64_t n = rows.size(0);
  const int64_t batches = (n + batch - 1) / batch;
  std::vector<at::Tensor> nll, bpd, nfe, status;
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t begin = b * batch;
    const auto x = rows.narrow(0, begin, std::min(batch, n - begin)).to(device, dtype);
    const auto result = negative_log_likelihood(process, model, x, options, transform, generator);
    nll.push_back(result.nll.to(at::kCPU, at::kDouble));
    bpd.push_back(result.bpd.to(at::kCPU, at::kDouble));
    nfe.push_back(result.nfe.to(at::kCPU, at::kLong));
    status.push_back(result.status.to(at::kCPU, at::kInt));
    if (on_batch) on_batch(result, b + 1, batches);
  }
  DatasetLikelihood out;
  out.nll = at::cat(nll);
  out.bpd = at::cat(bpd);
  out.nfe = at::cat(nfe);
  out.status = at::cat(status);
  std::tie(out.nll_mean, out.nll_stderr) = mean_and_stderr(out.nll);
  std::tie(out.bpd_mean, out.bpd_stderr) = mean_and_stderr(out.bpd);
  out.failures = (out.status != 0).sum().item<int64_t>();
  out.nfe_mean = out.nfe.to(at::kDouble).mean().item<double>();
  out.nfe_max = static_cast<double>(out.nfe.max().item<int64_t>());
  out.wall_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace sdeflow
