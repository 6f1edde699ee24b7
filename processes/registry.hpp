#pragma once
// The process registry: every forward process by name, with its parameters (attributes of a model file's
// /process group) and parameter matrices (its float64 datasets). One entry per process; `sdeflow info` and
// the CLI help list it. Unknown names, unknown or non-finite parameters and invalid matrices throw
// InputError naming them.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "processes/process.hpp"

namespace sdeflow {

struct ProcessInfo {
  std::string name;
  std::string description;
  std::map<std::string, double> defaults;   // every attribute and its default
  std::vector<std::string> matrices;        // required float64 datasets
  bool augmented = false;                   // the state is larger than the data (CLD's phase space)
  // Builds the process from every attribute (defaults filled in, checked finite) and its matrices (all present).
  std::function<std::shared_ptr<Process>(const std::map<std::string, double>& values,
                                         const std::map<std::string, at::Tensor>& matrices)>
      make;
};

const std::vector<ProcessInfo>& process_registry();
const ProcessInfo& process_info(const std::string& name);   // InputError naming the known processes

std::shared_ptr<Process> make_process(const std::string& name, const std::map<std::string, double>& parameters,
                                      const std::map<std::string, at::Tensor>& matrices = {});

}  // namespace sdeflow
