// The process registry (processes/registry.hpp): one line per process, one factory branch per line.
#include "processes/registry.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/registry.hpp"
#include "processes/linear.hpp"
#include "processes/matrix_linear.hpp"

namespace sdeflow {

const std::vector<ProcessInfo>& process_registry() {
  static const std::vector<ProcessInfo> registry = {
      {"vp", "variance-preserving: dx = -1/2 beta x dt + sqrt(beta) dW",
       {{"beta_min", 0.1}, {"beta_max", 20.0}, {"eps", 1e-3}, {"T", 1.0}}, {}, false},
      {"subvp", "sub-VP: VP's drift, g^2 = beta (1 - exp(-2 B))",
       {{"beta_min", 0.1}, {"beta_max", 20.0}, {"eps", 1e-3}, {"T", 1.0}}, {}, false},
      {"ve", "variance-exploding: dx = sqrt(d sigma^2/dt) dW",
       {{"sigma_min", 0.01}, {"sigma_max", 50.0}, {"eps", 1e-3}, {"T", 1.0}}, {}, false},
      {"fp", "FP-Diffusion, constant matrices: dx = -beta (1/2 rinv + omega) x dt + sqrt(beta rinv) dW",
       {{"beta_min", 0.1}, {"beta_max", 20.0}, {"eps", 1e-3}, {"T", 1.0}}, {"rinv", "omega"}, false},
      {"cld", "critically-damped Langevin in phase space (x, v), noise on v only",
       {{"M", 0.25}, {"Gamma", 1.0}, {"gamma", 0.04}, {"beta", 4.0}, {"eps", 1e-3}, {"T", 1.0}}, {}, true},
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
  const TimeRange range{values.at("eps"), values.at("T")};
  if (name == "vp" || name == "subvp" || name == "ve") return make_linear_process(name, parameters);
  if (name == "fp") {
    return make_fp_process(matrices.at("rinv"), matrices.at("omega"), values.at("beta_min"), values.at("beta_max"),
                           range);
  }
  if (name == "cld") {
    return make_cld_process(values.at("M"), values.at("Gamma"), values.at("gamma"), values.at("beta"), range);
  }
  throw Error("process registry: '" + name + "' is registered but has no factory");
}

}  // namespace sdeflow
