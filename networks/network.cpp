// Score networks: configuration checks, the shared layers (activations, time embeddings), deterministic
// initialisation and the network-as-score adapter s(x, t) = prediction_to_score(net(x, t)) (docs/networks.md).
#include "networks/network.hpp"

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "networks/layers.hpp"

namespace sdeflow {

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

namespace detail {

Activation::Activation(const std::string& name) {
  if (name == "silu") kind_ = Kind::silu;
  else if (name == "relu") kind_ = Kind::relu;
  else if (name == "gelu") kind_ = Kind::gelu;
  else if (name == "tanh") kind_ = Kind::tanh;
  else if (name == "softplus") kind_ = Kind::softplus;
  else throw InputError("network: unknown activation '" + name + "' (known: " + join(names()) + ")");
}

std::vector<std::string> Activation::names() { return {"silu", "relu", "gelu", "tanh", "softplus"}; }

at::Tensor Activation::operator()(const at::Tensor& x) const {
  switch (kind_) {
    case Kind::silu: return at::silu(x);
    case Kind::relu: return at::relu(x);
    case Kind::gelu: return at::gelu(x);   // approximate = "none": x Phi(x)
    case Kind::tanh: return at::tanh(x);
    case Kind::softplus: return at::softplus(x, 1.0, 20.0);
  }
  return x;
}

at::Tensor sinusoidal_features(const at::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  const auto k = at::arange(half, t.options());
  const auto frequencies = at::exp(k * (-std::log(10000.0) / static_cast<double>(half)));
  const auto angle = (1000.0 * t).unsqueeze(1) * frequencies.unsqueeze(0);
  return at::cat({at::sin(angle), at::cos(angle)}, 1);
}

TimeEmbeddingImpl::TimeEmbeddingImpl(const NetworkConfig& config, int64_t width)
    : fourier_(config.embedding == "fourier"), dim_(config.embedding_dim), activation_(config.activation) {
  if (fourier_) {
    // Drawn by the initialisation (make_network) or read from a model file.
    frequencies_ = register_buffer("frequencies", at::zeros({dim_ / 2}));
  }
  linear1_ = register_module("linear1", torch::nn::Linear(dim_, width));
  linear2_ = register_module("linear2", torch::nn::Linear(width, width));
}

at::Tensor TimeEmbeddingImpl::forward(const at::Tensor& t) {
  at::Tensor features;
  if (fourier_) {
    const auto angle = (2.0 * M_PI * t).unsqueeze(1) * frequencies_.unsqueeze(0);
    features = at::cat({at::sin(angle), at::cos(angle)}, 1);
  } else {
    features = sinusoidal_features(t, dim_);
  }
  return linear2_->forward(activation_(linear1_->forward(features)));
}

}  // namespace detail

std::vector<std::string> architecture_names() { return {"mlp", "unet"}; }

void validate(const NetworkConfig& config) {
  const auto bad = [](const std::string& what) { throw InputError("network: " + what); };
  if (!contains(architecture_names(), config.architecture)) {
    bad("unknown architecture '" + config.architecture + "' (known: " + join(architecture_names()) + ")");
  }
  if (config.embedding != "sinusoidal" && config.embedding != "fourier") {
    bad("unknown embedding '" + config.embedding + "' (known: sinusoidal, fourier)");
  }
  if (config.embedding_dim < 2 || config.embedding_dim % 2 != 0) {
    bad("embedding_dim must be even and >= 2, got " + std::to_string(config.embedding_dim));
  }
  if (!std::isfinite(config.fourier_scale) || config.fourier_scale <= 0) {
    bad("fourier_scale must be positive and finite, got " + std::to_string(config.fourier_scale));
  }
  if (!contains(detail::Activation::names(), config.activation)) {
    bad("unknown activation '" + config.activation + "' (known: " + join(detail::Activation::names()) + ")");
  }
  if (config.data_shape.empty()) bad("data_shape is empty (one sample's shape, e.g. [2] or [1, 28, 28])");
  for (const int64_t extent : config.data_shape) {
    if (extent < 1) bad("data_shape " + shape_text(config.data_shape) + " has an extent < 1");
  }
  if (config.architecture == "mlp") {
    if (config.width < 1) bad("width must be >= 1, got " + std::to_string(config.width));
    if (config.depth < 1) bad("depth must be >= 1, got " + std::to_string(config.depth));
    if (config.output_dim < 0) bad("output_dim must be >= 0, got " + std::to_string(config.output_dim));
    return;
  }
  // unet
  if (config.output_dim != 0) bad("output_dim applies to the mlp only");
  if (config.data_shape.size() != 3) {
    bad("data_shape must be [C, H, W] for the unet, got " + shape_text(config.data_shape));
  }
  if (config.channels < 1) bad("channels must be >= 1, got " + std::to_string(config.channels));
  if (config.groups < 1) bad("groups must be >= 1, got " + std::to_string(config.groups));
  if (config.channel_mult.empty()) bad("channel_mult is empty (one multiplier per resolution)");
  for (const int64_t mult : config.channel_mult) {
    if (mult < 1) bad("channel_mult " + shape_text(config.channel_mult) + " has an entry < 1");
    if ((config.channels * mult) % config.groups != 0) {
      bad("groups = " + std::to_string(config.groups) + " does not divide the channel count " +
          std::to_string(config.channels * mult) + " (channels * channel_mult)");
    }
  }
  if (config.channels % config.groups != 0) {
    bad("groups = " + std::to_string(config.groups) + " does not divide channels = " + std::to_string(config.channels));
  }
  const int64_t factor = int64_t{1} << (config.channel_mult.size() - 1);
  for (size_t axis = 1; axis < 3; ++axis) {
    if (config.data_shape[axis] % factor != 0) {
      bad("data_shape " + shape_text(config.data_shape) + ": H and W must be divisible by 2^(levels - 1) = " +
          std::to_string(factor) + " for channel_mult " + shape_text(config.channel_mult));
    }
  }
}

namespace {

// PyTorch's default initialisation, drawn from `generator`: Linear and Conv2d weights and biases
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5) gives the same bound for the
// weight), GroupNorm weight 1 and bias 0, Fourier frequencies N(0, 1) * fourier_scale. Modules are visited
// in registration order, so the draw order is fixed by the architecture.
void initialise(torch::nn::Module& network, const NetworkConfig& config, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  const auto uniform = [&](at::Tensor& tensor, double bound) {
    tensor.copy_(at::rand(tensor.sizes(), generator, at::TensorOptions().dtype(at::kDouble)) * (2 * bound) - bound);
  };
  for (const auto& item : network.named_modules("", /*include_self=*/true)) {
    torch::nn::Module& module = *item.value();
    if (auto* linear = module.as<torch::nn::Linear>()) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(linear->weight.size(1)));
      uniform(linear->weight, bound);
      if (linear->bias.defined()) uniform(linear->bias, bound);
    } else if (auto* conv = module.as<torch::nn::Conv2d>()) {
      const auto& w = conv->weight;
      const double bound = 1.0 / std::sqrt(static_cast<double>(w.size(1) * w.size(2) * w.size(3)));
      uniform(conv->weight, bound);
      if (conv->bias.defined()) uniform(conv->bias, bound);
    } else if (auto* norm = module.as<torch::nn::GroupNorm>()) {
      norm->weight.fill_(1.0);
      norm->bias.fill_(0.0);
    } else if (module.as<detail::TimeEmbedding>() != nullptr) {
      for (auto& buffer : module.named_buffers(/*recurse=*/false)) {
        if (buffer.key() == "frequencies") {
          buffer.value().copy_(at::randn(buffer.value().sizes(), generator, at::TensorOptions().dtype(at::kDouble)) *
                               config.fourier_scale);
        }
      }
    }
  }
}

}  // namespace

std::shared_ptr<ScoreNetwork> make_network(const NetworkConfig& config, uint64_t seed) {
  validate(config);
  auto network = config.architecture == "mlp" ? detail::make_mlp(config) : detail::make_unet(config);
  initialise(*network, config, seed);
  return network;
}

}  // namespace sdeflow
