// Reading, validating and writing model files (docs/formats.md, "Model files").
#include "io/model_file.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.hpp"
#include "core/registry.hpp"
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
  // Every dataset as float64 whatever its shape: the process's factory checks shapes and values and names the
  // dataset (matrices [n, n], learned vectors [n]).
  for (const auto& child : group.children()) {
    const auto shape = group.dataset_shape(child);
    matrices[child] = group.read_tensor(child, at::kDouble, std::vector<int64_t>(shape.begin(), shape.end()));
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

std::shared_ptr<MixtureModel> builtin_model(const std::string& name) {
  if (name != "gmm2d") throw InputError("unknown built-in model 'builtin:" + name + "' (known: builtin:gmm2d)");
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const auto weights = at::tensor({0.5, 0.3, 0.2}, f64);
  const auto means = at::tensor({-1.5, 0.0, 1.5, 1.0, 0.5, -1.5}, f64).reshape({3, 2});
  const auto covariances =
      at::tensor({0.20, 0.05, 0.05, 0.10, 0.08, -0.03, -0.03, 0.15, 0.12, 0.0, 0.0, 0.05}, f64).reshape({3, 2, 2});
  auto model = std::make_shared<MixtureModel>(make_linear_process("vp", {}),
                                              std::make_shared<GaussianMixture>(weights, means, covariances));
  model->set_source("builtin:gmm2d");
  return model;
}

const GaussianMixture& Model::require_mixture(const std::string& what) const {
  const auto mixture = exact_mixture();
  if (!mixture) {
    throw InputError(what + " needs a Gaussian-mixture model (its exact density); " + source() + " is a " + kind() +
                     " model");
  }
  return *mixture;
}

// ---- kind "gmm" ----

MixtureModel::MixtureModel(std::shared_ptr<Process> process, std::shared_ptr<GaussianMixture> mixture)
    : Model(process, make_mixture_score(mixture, process)), mixture_(std::move(mixture)) {}

std::vector<std::string> MixtureModel::describe() const {
  return {"Gaussian mixture: K = " + std::to_string(mixture_->components()) +
          " components, D = " + std::to_string(mixture_->dim())};
}

void MixtureModel::write(const h5::File& file) const {
  write_model_root(file, kind());
  write_process(file.create_group("process"), *process());
  const auto group = file.create_group("gmm");
  group.write_tensor("weights", mixture_->weights());
  group.write_tensor("means", mixture_->means());
  group.write_tensor("covariances", mixture_->covariances());
}

namespace {
std::shared_ptr<Model> read_mixture_model(const h5::File& file) {
  auto process = read_process(file.group("process"));
  const auto group = file.group("gmm");
  const auto weights = group.read_tensor("weights", at::kDouble, {-1});
  const int64_t k = weights.size(0);
  const auto means = group.read_tensor("means", at::kDouble, {k, -1});
  const int64_t d = means.size(1);
  const auto covariances = group.read_tensor("covariances", at::kDouble, {k, d, d});
  try {
    return std::make_shared<MixtureModel>(process, std::make_shared<GaussianMixture>(weights, means, covariances));
  } catch (const InputError& error) {
    throw InputError(file.describe() + ": " + error.what());
  }
}
}  // namespace

// ---- kind "network" ----

NetworkScoreModel::NetworkScoreModel(std::shared_ptr<NetworkModel> network)
    : Model(network->process, std::make_shared<NetworkScore>(network->evaluation_network(), network->parameterisation,
                                                              network->process)),
      network_(std::move(network)) {}

void NetworkScoreModel::place(const at::Device& device, at::ScalarType dtype) const {
  network_->evaluation_network()->to(device, dtype);
}

std::vector<std::string> NetworkScoreModel::describe() const {
  const auto& n = *network_;
  int64_t parameters = 0;
  for (const auto& p : n.network->parameters()) parameters += p.numel();
  char line[512];
  std::vector<std::string> lines;
  std::snprintf(line, sizeof(line), "network %s (%s embedding, %s), %lld parameters, predicts %s, D = %lld%s",
                n.config.architecture.c_str(), n.config.embedding.c_str(), n.config.activation.c_str(),
                static_cast<long long>(parameters), to_string(n.parameterisation).c_str(),
                static_cast<long long>(dim()), n.ema ? ", with EMA weights" : "");
  lines.emplace_back(line);
  const auto u = n.data.integer ? "(x + u) / " + std::to_string(n.data.levels) : std::string("x");
  std::snprintf(line, sizeof(line), "data %s: model space = %g * %s + %g", n.data.name.c_str(), n.data.scale,
                u.c_str(), n.data.shift);
  lines.emplace_back(line);
  if (n.training_numbers.count("steps")) {
    std::snprintf(line, sizeof(line), "trained %g steps, final loss %g", n.training_numbers.at("steps"),
                  n.training_numbers.count("final_loss") ? n.training_numbers.at("final_loss") : NAN);
    lines.emplace_back(line);
  }
  return lines;
}

void NetworkScoreModel::write(const h5::File& file) const { write_network_model(file, *network_); }

// ---- the registry ----

const std::vector<ModelKind>& model_kinds() {
  static const std::vector<ModelKind> kinds = {
      {"gmm", "an exact Gaussian mixture at t = 0 (closed-form score and density under any process)",
       read_mixture_model},
      {"network", "a trained score network with its data scaling and training record",
       [](const h5::File& file) -> std::shared_ptr<Model> {
         return std::make_shared<NetworkScoreModel>(std::make_shared<NetworkModel>(read_network_model(file)));
       }},
  };
  return kinds;
}

const ModelKind& model_kind(const std::string& name) {
  return find_by_name(model_kinds(), name, "model kind");
}

std::shared_ptr<Model> load_model(const std::string& path) {
  if (path.rfind("builtin:", 0) == 0) return builtin_model(path.substr(8));
  try {
    h5::File file(path, h5::Mode::read);
    const auto kind = read_model_root(file);
    const ModelKind* entry = nullptr;
    try {
      entry = &model_kind(kind);
    } catch (const InputError& error) {
      throw InputError(file.describe() + ": " + error.what());
    }
    auto model = entry->read(file);
    model->set_source(path);
    return model;
  } catch (const IoError& error) {
    // HDF5 could not read what looked like a model file (truncated, corrupt): a bad input file.
    throw InputError(error.what());
  }
}

void save_model(const std::string& path, const Model& model) {
  h5::write_atomically(path, [&](const h5::File& file) { model.write(file); });
}

void save_gmm_model(const std::string& path, std::shared_ptr<Process> process,
                    std::shared_ptr<GaussianMixture> mixture) {
  save_model(path, MixtureModel(std::move(process), std::move(mixture)));
}

}  // namespace sdeflow
