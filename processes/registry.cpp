// The process registry (processes/registry.hpp): one entry per process, its factory included.
#include "processes/registry.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/registry.hpp"
#include "processes/linear.hpp"
#include "processes/fp_field.hpp"
#include "processes/fp_learned.hpp"
#include "processes/matrix_linear.hpp"

namespace sdeflow {

namespace {
using Values = std::map<std::string, double>;
using Matrices = std::map<std::string, at::Tensor>;
TimeRange range_of(const Values& v) { return {v.at("eps"), v.at("T")}; }
std::shared_ptr<Process> linear(const std::string& name, const Values& v) { return make_linear_process(name, v); }
// A learned FP process from its raw parameters; the stored rinv and omega must be the ones they give.
std::shared_ptr<Process> learned_fp(LearnedFpProcess::Variant variant, const Values& v, const Matrices& m) {
  auto process = std::make_shared<LearnedFpProcess>(variant, m, v.at("beta_min"), v.at("beta_max"), range_of(v));
  const auto derived = process->parameter_tensors();
  for (const char* key : {"rinv", "omega"}) {
    const auto& stored = m.at(key);
    const auto& expected = derived.at(key);
    if (stored.sizes() != expected.sizes() ||
        (stored - expected).abs().max().item<double>() > 1e-9 * (1.0 + expected.abs().max().item<double>())) {
      throw InputError(std::string(key) + ": does not match the learned parameters (rinv and omega are derived from "
                       "them)");
    }
  }
  return process;
}

}  // namespace

const std::vector<ProcessInfo>& process_registry() {
  static const std::vector<ProcessInfo> registry = {
      {"vp", "variance-preserving: dx = -1/2 beta x dt + sqrt(beta) dW",
       {{"beta_min", 0.1}, {"beta_max", 20.0}, {"eps", 1e-3}, {"T", 1.0}}, {}, false,
       [](const Values& v, const Matrices&) { return linear("vp", v); }},
      {"subvp", "sub-VP: VP's drift, g^2 = beta (1 - exp(-2 B))",
       {{"beta_min", 0.1}, {"beta_max", 20.0}, {"eps", 1e-3}, {"T", 1.0}}, {}, false,
       [](const Values& v, const Matrices&) { return linear("subvp", v); }},
      {"ve", "variance-exploding: dx = sqrt(d sigma^2/dt) dW",
       {{"sigma_min", 0.01}, {"sigma_max", 50.0}, {"eps", 1e-3}, {"T", 1.0}}, {}, false,
       [](const Values& v, const Matrices&) { return linear("ve", v); }},
      {"fp", "FP-Diffusion, constant matrices: dx = -beta (1/2 rinv + omega) x dt + sqrt(beta rinv) dW",
       {{"beta_min", 0.1}, {"beta_max", 20.0}, {"eps", 1e-3}, {"T", 1.0}}, {"rinv", "omega"}, false,
       [](const Values& v, const Matrices& m) -> std::shared_ptr<Process> {
         return make_fp_process(m.at("rinv"), m.at("omega"), v.at("beta_min"), v.at("beta_max"), range_of(v));
       }},
      {"fp-noise", "FP-Diffusion with a learned metric: D = U diag(exp theta) U^T, U = expm(K - K^T), omega = 0",
       {{"beta_min", 0.1}, {"beta_max", 20.0}, {"eps", 1e-3}, {"T", 1.0}}, {"theta", "K", "rinv", "omega"}, false,
       [](const Values& v, const Matrices& m) -> std::shared_ptr<Process> {
         return learned_fp(LearnedFpProcess::Variant::noise, v, m);
       }},
      {"fp-drift", "FP-Diffusion with a learned symplectic form: D = I, omega = U blockdiag(l_k J) U^T",
       {{"beta_min", 0.1}, {"beta_max", 20.0}, {"eps", 1e-3}, {"T", 1.0}}, {"K", "l", "rinv", "omega"}, false,
       [](const Values& v, const Matrices& m) -> std::shared_ptr<Process> {
         return learned_fp(LearnedFpProcess::Variant::drift, v, m);
       }},
      {"fp-field", "FP-Diffusion with a state-dependent metric: D(x) = M M^T + floor I from a network, +1/2 div D",
       {{"beta_min", 0.1}, {"beta_max", 20.0}, {"eps", 1e-3}, {"T", 1.0}, {"floor", 0.1}},
       {"metric_w1", "metric_b1", "metric_w2", "metric_b2", "metric_w3", "metric_b3", "omega"}, false,
       [](const Values& v, const Matrices& m) -> std::shared_ptr<Process> {
         auto metric = std::make_shared<NetworkMetric>(m, v.at("floor"));
         return std::make_shared<MetricFpProcess>(metric, m.at("omega"), v.at("beta_min"), v.at("beta_max"),
                                                  range_of(v), v.at("floor"));
       }},
      {"cld", "critically-damped Langevin in phase space (x, v), noise on v only",
       {{"M", 0.25}, {"Gamma", 1.0}, {"gamma", 0.04}, {"beta", 4.0}, {"eps", 1e-3}, {"T", 1.0}}, {}, true,
       [](const Values& v, const Matrices&) -> std::shared_ptr<Process> {
         return make_cld_process(v.at("M"), v.at("Gamma"), v.at("gamma"), v.at("beta"), range_of(v));
       }},
  };
  return registry;
}

const ProcessInfo& process_info(const std::string& name) { return find_by_name(process_registry(), name, "process"); }

std::shared_ptr<Process> make_process(const std::string& name, const std::map<std::string, double>& parameters,
                                      const std::map<std::string, at::Tensor>& matrices) {
  const auto& info = process_info(name);
  auto values = info.defaults;
  for (const auto& [key, value] : parameters) {
    if (!info.defaults.count(key)) throw InputError("process " + name + ": unknown parameter '" + key + "'");
    if (!std::isfinite(value)) throw InputError("process " + name + ": parameter " + key + " is not finite");
    values[key] = value;
  }
  for (const auto& [key, value] : matrices) {
    (void)value;
    bool known = false;
    for (const auto& m : info.matrices) known = known || m == key;
    if (!known) throw InputError("process " + name + ": unknown dataset '" + key + "'");
  }
  for (const auto& m : info.matrices) {
    if (!matrices.count(m)) throw InputError("process " + name + ": missing dataset '" + m + "'");
  }
  return info.make(values, matrices);
}

}  // namespace sdeflow
