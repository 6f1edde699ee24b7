// Reading, validating and writing model files (docs/formats.md, "Model files").
#include "io/model_file.hpp"

#include <unistd.h>

#include <filesystem>

#include "core/error.hpp"
#include "io/h5.hpp"

namespace sdeflow {

namespace {
constexpr int64_t kModelVersion = 1;
const char* kModelFormat = "sdeflow.model";
}  // namespace

void write_process(const h5::Location& group, const Process& process) {
  group.set_attribute("name", process.name());
  for (const auto& [key, value] : process.parameters()) group.set_attribute(key, value);
  for (const auto& [key, value] : process.parameter_tensors()) group.write_tensor(key, value.to(at::kCPU, at::kDouble));
}

std::shared_ptr<Process> read_process(const h5::Location& group) {
  if (!group.has_attribute("name")) throw InputError(group.describe() + ": missing attribute 'name'");
  const auto name = group.attribute_string("name");
  std::map<std::string, double> parameters;
  for (const auto& attribute : group.attribute_names()) {
    if (attribute == "name") continue;
    parameters[attribute] = group.attribute_double(attribute);
  }
  std::map<std::string, at::Tensor> matrices;
  for (const auto& child : group.children()) {
    const auto shape = group.dataset_shape(child);
    if (shape.size() != 2 || shape[0] != shape[1]) {
      std::string text = "[";
      for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
      throw InputError(group.describe(child) + ": expected a square matrix [n, n], got shape " + text + "]");
    }
    matrices[child] = group.read_tensor(child, at::kDouble, {shape[0], shape[0]});
  }
  try {
    return make_process(name, parameters, matrices);
  } catch (const InputError& error) {
    // The process names the dataset or attribute ("rinv: not symmetric"); say which file and group.
    throw InputError(group.describe() + ": " + error.what());
  }
}

void write_model_root(const h5::File& file, const std::string& kind) {
  file.set_attribute("format", kModelFormat);
  file.set_attribute("version", kModelVersion);
  file.set_attribute("kind", kind);
}

std::string read_model_root(const h5::File& file) {
  for (const char* attribute : {"format", "version", "kind"}) {
    if (!file.has_attribute(attribute)) throw InputError(file.describe() + ": missing root attribute '" + attribute + "'");
  }
  const auto format = file.attribute_string("format");
  if (format != kModelFormat) {
    throw InputError(file.describe() + ": format is '" + format + "', expected '" + kModelFormat + "'");
  }
  const auto version = file.attribute_int("version");
  if (version != kModelVersion) {
    throw InputError(file.describe() + ": unsupported version " + std::to_string(version) + " (this build reads " +
                     std::to_string(kModelVersion) + ")");
  }
  return file.attribute_string("kind");
}

std::vector<std::string> builtin_model_names() { return {"gmm2d"}; }

ModelFile builtin_model(const std::string& name) {
  if (name != "gmm2d") throw InputError("unknown built-in model 'builtin:" + name + "' (known: builtin:gmm2d)");
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const auto weights = at::tensor({0.5, 0.3, 0.2}, f64);
  const auto means = at::tensor({-1.5, 0.0, 1.5, 1.0, 0.5, -1.5}, f64).reshape({3, 2});
  const auto covariances =
      at::tensor({0.20, 0.05, 0.05, 0.10, 0.08, -0.03, -0.03, 0.15, 0.12, 0.0, 0.0, 0.05}, f64).reshape({3, 2, 2});
  ModelFile model;
  model.kind = "gmm";
  model.source = "builtin:gmm2d";
  model.process = make_linear_process("vp", {});
  model.mixture = std::make_shared<GaussianMixture>(weights, means, covariances);
  model.score = make_mixture_score(model.mixture, model.process);
  return model;
}

namespace {
ModelFile read_model(const std::string& path);
}  // namespace

ModelFile load_model(const std::string& path) {
  if (path.rfind("builtin:", 0) == 0) return builtin_model(path.substr(8));
  try {
    return read_model(path);
  } catch (const IoError& error) {
    // HDF5 could not read what looked like a model file (truncated, corrupt): a bad input file.
    throw InputError(error.what());
  }
}

namespace {
ModelFile read_model(const std::string& path) {
  h5::File file(path, h5::Mode::read);
  ModelFile model;
  model.kind = read_model_root(file);
  model.source = path;
  if (model.kind == "network") {
    model.network = std::make_shared<NetworkModel>(read_network_model(file));
    model.process = model.network->process;
    model.score = std::make_shared<NetworkScore>(model.network->evaluation_network(), model.network->parameterisation,
                                                 model.network->process);
    return model;
  }
  if (model.kind != "gmm") {
    throw InputError(file.describe() + ": unsupported model kind '" + model.kind + "' (known: gmm, network)");
  }
  model.process = read_process(file.group("process"));
  const auto group = file.group("gmm");
  const auto weights = group.read_tensor("weights", at::kDouble, {-1});
  const int64_t k = weights.size(0);
  const auto means = group.read_tensor("means", at::kDouble, {k, -1});
  const int64_t d = means.size(1);
  const auto covariances = group.read_tensor("covariances", at::kDouble, {k, d, d});
  try {
    model.mixture = std::make_shared<GaussianMixture>(weights, means, covariances);
  } catch (const InputError& error) {
    throw InputError(file.describe() + ": " + error.what());
  }
  try {
    model.score = make_mixture_score(model.mixture, model.process);
  } catch (const InputError& error) {
    throw InputError(file.describe() + ": " + error.what());
  }
  return model;
}
}  // namespace

void ModelFile::place(const at::Device& device, at::ScalarType dtype) const {
  if (network) network->evaluation_network()->to(device, dtype);
}

const GaussianMixture& ModelFile::require_mixture(const std::string& what) const {
  if (!mixture) {
    throw InputError(what + " needs a Gaussian-mixture model (its exact density); " + source + " is a " + kind +
                     " model");
  }
  return *mixture;
}

void save_gmm_model(const std::string& path, const Process& process, const GaussianMixture& mixture) {
  h5::write_atomically(path, [&](const h5::File& file) {
    write_model_root(file, "gmm");
    write_process(file.create_group("process"), process);
    const auto group = file.create_group("gmm");
    group.write_tensor("weights", mixture.weights());
    group.write_tensor("means", mixture.means());
    group.write_tensor("covariances", mixture.covariances());
  });
}

}  // namespace sdeflow
