#pragma once
// Models and model files (docs/formats.md, "Model files"). A model is a forward process, a score model and the
// map between data space and model space; one class per kind, each with its own read and write, behind the
// registry model_kinds(). Every model file has the root attributes format = "sdeflow.model", version = 1 and
// kind, and the group /process with the forward process; kind = "gmm" adds the exact Gaussian mixture
// /gmm/weights [K], /gmm/means [K, D], /gmm/covariances [K, D, D] (float64); kind = "network" a trained score
// network (io/network_file.hpp). Commands hold a `Model` and ask it for capabilities (its scaling, its exact
// density), never for its kind.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/network_file.hpp"
#include "processes/mixture.hpp"
#include "processes/linear.hpp"
#include "processes/registry.hpp"

namespace sdeflow {

namespace h5 { class Location; class File; }

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string kind() const = 0;
  // Where the model came from: a path, "builtin:<name>", or "" for a model built in memory.
  const std::string& source() const { return source_; }
  void set_source(std::string source) { source_ = std::move(source); }

  const std::shared_ptr<Process>& process() const { return process_; }
  const std::shared_ptr<ScoreModel>& score() const { return score_; }   // what solvers and the likelihood code see
  int64_t dim() const { return score_->dim(); }

  // The map from data space to model space the model was fitted with (a network's training data); nullopt for
  // a model defined on the data itself (a mixture).
  virtual std::optional<DataScaling> data_scaling() const { return std::nullopt; }
  // The exact data density when the model has one (a Gaussian mixture): oracles, held-out draws, comparisons.
  virtual std::shared_ptr<const GaussianMixture> exact_mixture() const { return nullptr; }
  // The exact mixture, or InputError naming `what` and this model when it has none.
  const GaussianMixture& require_mixture(const std::string& what) const;
  // Moves learned parts to the device and dtype a command computes in (a mixture evaluates wherever x is).
  virtual void place(const at::Device& device, at::ScalarType dtype) const { (void)device; (void)dtype; }
  // Lines for `sdeflow info` after the process line (components, architecture, training, ...).
  virtual std::vector<std::string> describe() const = 0;
  // Writes the whole model (root attributes, /process and the kind's groups) into an open, empty file.
  virtual void write(const h5::File& file) const = 0;

 protected:
  Model(std::shared_ptr<Process> process, std::shared_ptr<ScoreModel> score)
      : process_(std::move(process)), score_(std::move(score)) {}

 private:
  std::string source_;
  std::shared_ptr<Process> process_;
  std::shared_ptr<ScoreModel> score_;
};

// kind = "gmm": an exact Gaussian mixture at t = 0 under any process with a closed-form kernel.
class MixtureModel final : public Model {
 public:
  // InputError when the process cannot carry the mixture (make_mixture_score).
  MixtureModel(std::shared_ptr<Process> process, std::shared_ptr<GaussianMixture> mixture);
  std::string kind() const override { return "gmm"; }
  const std::shared_ptr<GaussianMixture>& mixture() const { return mixture_; }
  std::shared_ptr<const GaussianMixture> exact_mixture() const override { return mixture_; }
  std::vector<std::string> describe() const override;
  void write(const h5::File& file) const override;

 private:
  std::shared_ptr<GaussianMixture> mixture_;
};

// kind = "network": a trained score network (its evaluation weights drive score()) with its data scaling.
class NetworkScoreModel final : public Model {
 public:
  explicit NetworkScoreModel(std::shared_ptr<NetworkModel> network);
  std::string kind() const override { return "network"; }
  const NetworkModel& network() const { return *network_; }
  std::optional<DataScaling> data_scaling() const override { return network_->data; }
  void place(const at::Device& device, at::ScalarType dtype) const override;
  std::vector<std::string> describe() const override;
  void write(const h5::File& file) const override;

 private:
  std::shared_ptr<NetworkModel> network_;
};

// The registry of model kinds: name, a line of help, and the reader of a file's kind-specific part (the root
// attributes are already checked). Adding a kind is one class plus one entry here.
struct ModelKind {
  std::string name;
  std::string summary;
  std::function<std::shared_ptr<Model>(const h5::File& file)> read;
};
const std::vector<ModelKind>& model_kinds();
const ModelKind& model_kind(const std::string& name);   // InputError naming the known kinds

// Reads and validates a model file; every problem throws InputError naming the file and the object.
// A path of the form "builtin:NAME" returns a built-in model (see builtin_model_names()).
std::shared_ptr<Model> load_model(const std::string& path);
// Writes any model (its write()) to a temporary file in the same directory, then renames it into place.
void save_model(const std::string& path, const Model& model);
// Convenience: save_model of a MixtureModel.
void save_gmm_model(const std::string& path, std::shared_ptr<Process> process,
                    std::shared_ptr<GaussianMixture> mixture);

// Built-in models: "gmm2d" (a 2-D, 3-component mixture with full covariances under the default VP process).
std::shared_ptr<MixtureModel> builtin_model(const std::string& name);
std::vector<std::string> builtin_model_names();

// The root conventions every model file shares: writes format, version and kind; checks format and version
// (InputError naming the file) and returns the kind.
void write_model_root(const h5::File& file, const std::string& kind);
std::string read_model_root(const h5::File& file);

// Writes the forward process into `group` (attribute name, its parameters as attributes and its matrices as float64
// datasets) and reads it back through the process registry (InputError naming the group or dataset).
void write_process(const h5::Location& group, const Process& process);
std::shared_ptr<Process> read_process(const h5::Location& group);

}  // namespace sdeflow
