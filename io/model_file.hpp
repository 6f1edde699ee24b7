#pragma once
// Model files (docs/formats.md, "Model files"): root attributes format = "sdeflow.model", version = 1,
// kind; group /process with the forward process; for kind = "gmm" the exact Gaussian mixture
// /gmm/weights [K], /gmm/means [K, D], /gmm/covariances [K, D, D] (float64); for kind = "network" a trained
// score network (io/network_file.hpp).
#include <memory>
#include <string>

#include "io/network_file.hpp"
#include "processes/mixture.hpp"
#include "processes/linear.hpp"
#include "processes/registry.hpp"

namespace sdeflow {

struct ModelFile {
  std::string kind;                                  // "gmm" | "network"
  std::string source;                                // the path, or "builtin:<name>"
  std::shared_ptr<Process> process;
  std::shared_ptr<ScoreModel> score;                 // every kind: what solvers and the likelihood code see
  std::shared_ptr<GaussianMixture> mixture;          // kind == "gmm"
  std::shared_ptr<NetworkModel> network;             // kind == "network" (its evaluation weights drive `score`)

  int64_t dim() const { return score->dim(); }
  // Moves a network to the device and dtype a command computes in (a mixture evaluates wherever x is).
  void place(const at::Device& device, at::ScalarType dtype) const;
  // InputError unless the model is a Gaussian mixture (commands that need its exact density).
  const GaussianMixture& require_mixture(const std::string& what) const;
};

// Reads and validates a model file; every problem throws InputError naming the file and the object.
// A path of the form "builtin:NAME" returns a built-in model (see builtin_model_names()).
ModelFile load_model(const std::string& path);
// Writes a Gaussian-mixture model to a temporary file in the same directory, then renames it into place.
void save_gmm_model(const std::string& path, const Process& process, const GaussianMixture& mixture);

// Built-in models: "gmm2d" (a 2-D, 3-component mixture with full covariances under the default VP process).
ModelFile builtin_model(const std::string& name);
std::vector<std::string> builtin_model_names();

namespace h5 { class Location; class File; }
// The root conventions every model file shares: writes format, version and kind; checks format and version
// (InputError naming the file) and returns the kind.
void write_model_root(const h5::File& file, const std::string& kind);
std::string read_model_root(const h5::File& file);

// Writes the forward process into `group` (attribute name, its parameters as attributes and its matrices as float64
// datasets) and reads it back through the process registry (InputError naming the group or dataset).
void write_process(const h5::Location& group, const Process& process);
std::shared_ptr<Process> read_process(const h5::Location& group);

}  // namespace sdeflow
