// Reading, validating and writing network model files (docs/formats.md, "Network model files").
#include "io/network_file.hpp"

#include <torch/utils.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "io/h5.hpp"
#include "io/model_file.hpp"

namespace sdeflow {

namespace {

const char* kKind = "network";

// Parameters then buffers, by module path (PyTorch's state_dict keys).
std::vector<std::pair<std::string, at::Tensor>> named_tensors(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  return out;
}

std::string dtype_name(at::ScalarType dtype) {
  if (dtype == at::kDouble) return "float64";
  if (dtype == at::kFloat) return "float32";
  throw InputError("network model: parameters of type " + std::string(c10::toString(dtype)) +
                   " cannot be stored (float32 or float64)");
}

at::ScalarType network_dtype(const ScoreNetwork& network) {
  const auto parameters = network.parameters();
  if (parameters.empty()) throw InputError("network model: the network has no parameters");
  return parameters.front().scalar_type();
}

void write_weights(const h5::Location& group, const ScoreNetwork& network, at::ScalarType dtype) {
  for (const auto& [name, tensor] : named_tensors(network)) group.write_tensor(name, tensor.detach().to(dtype));
}

void write_config(const h5::Location& group, const NetworkConfig& config) {
  group.set_attribute("architecture", config.architecture);
  group.set_attribute("data_shape", config.data_shape);
  group.set_attribute("embedding", config.embedding);
  group.set_attribute("embedding_dim", config.embedding_dim);
  group.set_attribute("fourier_scale", config.fourier_scale);
  group.set_attribute("activation", config.activation);
  group.set_attribute("width", config.width);
  group.set_attribute("depth", config.depth);
  group.set_attribute("channels", config.channels);
  group.set_attribute("channel_mult", config.channel_mult);
  group.set_attribute("groups", config.groups);
  // Only when set, so files of networks with the input's shape are unchanged.
  if (config.output_dim > 0) group.set_attribute("output_dim", config.output_dim);
}

void require_attributes(const h5::Location& group, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    if (!group.has_attribute(name)) throw InputError(group.describe() + ": missing attribute '" + name + "'");
  }
}

NetworkConfig read_config(const h5::Location& group) {
  require_attributes(group, {"architecture", "data_shape", "embedding", "embedding_dim", "fourier_scale", "activation",
                             "width", "depth", "channels", "channel_mult", "groups"});
  NetworkConfig config;
  config.architecture = group.attribute_string("architecture");
  config.data_shape = group.attribute_ints("data_shape");
  config.embedding = group.attribute_string("embedding");
  config.embedding_dim = group.attribute_int("embedding_dim");
  config.fourier_scale = group.attribute_double("fourier_scale");
  config.activation = group.attribute_string("activation");
  config.width = group.attribute_int("width");
  config.depth = group.attribute_int("depth");
  config.channels = group.attribute_int("channels");
  config.channel_mult = group.attribute_ints("channel_mult");
  config.groups = group.attribute_int("groups");
  if (group.has_attribute("output_dim")) config.output_dim = group.attribute_int("output_dim");
  try {
    validate(config);
  } catch (const InputError& error) {
    std::string message = error.what();   // "network: <field> ..."
    if (message.rfind("network: ", 0) == 0) message = message.substr(9);
    throw InputError(group.describe() + ": " + message);
  }
  return config;
}

// Copies every tensor of `group` into the network's parameter or buffer of the same name, after checking that
// the names are exactly the module's and every shape and element class matches.
void read_weights(const h5::Location& group, ScoreNetwork& network) {
  const auto expected = named_tensors(network);
  std::set<std::string> names;
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : expected) {
    names.insert(name);
    const auto what = group.describe(name);
    if (!group.has(name)) {
      throw InputError(what + ": missing (the '" + network.config().architecture + "' architecture needs a tensor of shape " +
                       shape_text(tensor.sizes()) + ")");
    }
    const auto type = group.dataset_type_name(name);   // InputError if it is a group
    if (type.rfind("float", 0) != 0) throw InputError(what + ": expected float32 or float64, got " + type);
    const auto shape = group.dataset_shape(name);
    if (at::IntArrayRef(shape) != tensor.sizes()) {
      throw InputError(what + ": shape " + shape_text(shape) + " but the architecture needs " + shape_text(tensor.sizes()));
    }
    const auto stored = group.read_tensor(name);
    if (!at::isfinite(stored).all().item<bool>()) throw InputError(what + ": not finite (NaN or Inf)");
    at::Tensor target = tensor;
    target.copy_(stored);
  }
  for (const auto& child : group.children()) {
    if (names.count(child) == 0) {
      throw InputError(group.describe(child) + ": not a parameter or buffer of the '" + network.config().architecture +
                       "' architecture with these hyper-parameters");
    }
  }
}

std::shared_ptr<ScoreNetwork> read_network(const h5::Location& group, const NetworkConfig& config, at::ScalarType dtype) {
  auto network = make_network(config, 0);
  network->to(dtype);
  read_weights(group, *network);
  network->eval();
  for (auto& parameter : network->parameters()) parameter.set_requires_grad(false);
  return network;
}

void write_data(const h5::Location& group, const DataScaling& data) {
  group.set_attribute("name", data.name);
  group.set_attribute("shape", data.shape);
  group.set_attribute("scale", data.scale);
  group.set_attribute("shift", data.shift);
  group.set_attribute("integer", static_cast<int64_t>(data.integer ? 1 : 0));
  group.set_attribute("levels", data.levels);
}

DataScaling read_data(const h5::Location& group, const NetworkConfig& config, const Process& process) {
  require_attributes(group, {"name", "shape", "scale", "shift", "integer", "levels"});
  DataScaling data;
  data.name = group.attribute_string("name");
  data.shape = group.attribute_ints("shape");
  data.scale = group.attribute_double("scale");
  data.shift = group.attribute_double("shift");
  const int64_t integer = group.attribute_int("integer");
  data.levels = group.attribute_int("levels");
  const auto bad = [&](const std::string& attribute, const std::string& why) {
    throw InputError(group.describe() + " attribute '" + attribute + "': " + why);
  };
  if (!std::isfinite(data.scale) || data.scale == 0) bad("scale", "must be finite and non-zero");
  if (!std::isfinite(data.shift)) bad("shift", "must be finite");
  if (integer != 0 && integer != 1) bad("integer", "must be 0 or 1, got " + std::to_string(integer));
  data.integer = integer == 1;
  if (data.levels < 2) bad("levels", "must be >= 2, got " + std::to_string(data.levels));
  int64_t size = 1, model_size = 1;
  for (const int64_t extent : data.shape) size *= extent;
  for (const int64_t extent : config.data_shape) model_size *= extent;
  // The network sees the process's state: the data itself, or CLD's phase space (twice the data).
  if (data.shape.empty() || process.state_dim(size) != model_size) {
    bad("shape", shape_text(data.shape) + " does not hold as many values as the network's data_shape " +
                     shape_text(config.data_shape) + (process.augmented() ? " (for process " + process.name() +
                     "'s state, " + std::to_string(process.state_dim(size)) + " values)" : std::string()));
  }
  return data;
}

void write_training(const h5::Location& group, const NetworkModel& model) {
  for (const auto& [key, value] : model.training_text) group.set_attribute(key, value);
  for (const auto& [key, value] : model.training_numbers) group.set_attribute(key, value);
  if (model.loss_step.defined() != model.loss.defined()) {
    throw InputError("network model: loss_step and loss must be given together");
  }
  if (model.loss_step.defined()) {
    if (model.loss_step.dim() != 1 || model.loss.dim() != 1 || model.loss_step.size(0) != model.loss.size(0)) {
      throw InputError("network model: loss_step and loss must be 1-D of the same length");
    }
    group.write_tensor("loss_step", model.loss_step.to(at::kLong));
    group.write_tensor("loss", model.loss.to(at::kDouble));
  }
}

void read_training(const h5::Location& group, NetworkModel& model) {
  for (const auto& name : group.attribute_names()) {
    // The attribute's class decides where it goes: text, else a number (attribute_double names a bad type).
    bool text = true;
    std::string value;
    try {
      value = group.attribute_string(name);
    } catch (const InputError&) {
      text = false;
    }
    if (text) model.training_text[name] = value;
    else model.training_numbers[name] = group.attribute_double(name);
  }
  const bool has_step = group.has("loss_step"), has_loss = group.has("loss");
  if (has_step != has_loss) {
    throw InputError(group.describe(has_step ? "loss" : "loss_step") + ": missing (loss_step and loss come together)");
  }
  if (!has_step) return;
  const auto step_type = group.dataset_type_name("loss_step");
  if (step_type.rfind("int", 0) != 0 && step_type.rfind("uint", 0) != 0) {
    throw InputError(group.describe("loss_step") + ": expected an integer dataset, got " + step_type);
  }
  const auto step = group.read_tensor("loss_step");
  if (step.dim() != 1) throw InputError(group.describe("loss_step") + ": expected shape [S], got " + shape_text(step.sizes()));
  model.loss_step = step.to(at::kLong);
  model.loss = group.read_tensor("loss", at::kDouble, {step.size(0)});
}

NetworkModel read_model(const h5::File& file) {
  const auto kind = read_model_root(file);
  if (kind != kKind) throw InputError(file.describe() + ": model kind is '" + kind + "', expected 'network'");

  NetworkModel model;
  model.process = read_process(file.group("process"));
  const auto group = file.group("network");
  require_attributes(group, {"parameterisation", "dtype"});
  model.config = read_config(group);
  try {
    model.parameterisation = parse_parameterisation(group.attribute_string("parameterisation"));
  } catch (const InputError& error) {
    throw InputError(group.describe() + " attribute 'parameterisation': " + error.what());
  }
  const auto dtype_text = group.attribute_string("dtype");
  if (dtype_text != "float32" && dtype_text != "float64") {
    throw InputError(group.describe() + " attribute 'dtype': '" + dtype_text + "' (expected float32 or float64)");
  }
  const auto dtype = dtype_text == "float64" ? at::kDouble : at::kFloat;
  model.network = read_network(group.group("parameters"), model.config, dtype);
  if (group.has("ema")) model.ema = read_network(group.group("ema"), model.config, dtype);
  model.data = read_data(file.group("data"), model.config, *model.process);
  if (file.has("training")) read_training(file.group("training"), model);
  return model;
}

}  // namespace

void write_network_model(const h5::File& file, const NetworkModel& model) {
  if (!model.network) throw InputError("network model: no network to write");
  if (!model.process) throw InputError("network model: no process to write");
  const auto dtype = network_dtype(*model.network);
  write_model_root(file, kKind);
  write_process(file.create_group("process"), *model.process);
  const auto group = file.create_group("network");
  write_config(group, model.network->config());
  group.set_attribute("parameterisation", to_string(model.parameterisation));
  group.set_attribute("dtype", dtype_name(dtype));
  write_weights(group.create_group("parameters"), *model.network, dtype);
  if (model.ema) write_weights(group.create_group("ema"), *model.ema, dtype);
  write_data(file.create_group("data"), model.data);
  write_training(file.create_group("training"), model);
}

NetworkModel read_network_model(const h5::File& file) {
  try {
    return read_model(file);
  } catch (const IoError& error) {
    // A file the library cannot read (truncated, corrupt) is a bad input file like any other.
    throw InputError(error.what());
  }
}

void save_network_model(const std::string& path, const NetworkModel& model) {
  h5::write_atomically(path, [&](const h5::File& file) { write_network_model(file, model); });
}

NetworkModel load_network_model(const std::string& path) {
  try {
    const h5::File file(path, h5::Mode::read);
    return read_model(file);
  } catch (const IoError& error) {
    throw InputError(error.what());
  }
}

void copy_weights(const ScoreNetwork& from, ScoreNetwork& to) {
  std::map<std::string, at::Tensor> source;
  for (auto& [name, tensor] : named_tensors(from)) source.emplace(name, tensor);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : named_tensors(to)) {
    const auto found = source.find(name);
    if (found == source.end()) throw InputError("copy_weights: the source network has no tensor '" + name + "'");
    if (found->second.sizes() != tensor.sizes()) {
      throw InputError("copy_weights: '" + name + "' has shape " + shape_text(found->second.sizes()) +
                       " in the source but " + shape_text(tensor.sizes()) + " in the target");
    }
    at::Tensor target = tensor;
    target.copy_(found->second);
  }
}

}  // namespace sdeflow
