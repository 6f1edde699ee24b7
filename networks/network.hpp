#pragma once
// Learned score networks as LibTorch modules: an MLP and a small U-Net, both conditioned on time through a
// sinusoidal (DDPM) or Gaussian-Fourier (score-based SDE models) embedding. Plain modules: what a prediction
// means (score, noise or data) belongs to the processes layer (processes/score_model.hpp, NetworkScore).
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sdeflow {

// Architecture and hyper-parameters; stored as attributes of a model file's /network group
// (docs/formats.md, "Network model files"), so a network can be rebuilt from its file.
struct NetworkConfig {
  std::string architecture = "mlp";             // "mlp" | "unet"
  std::vector<int64_t> data_shape;              // one sample: [D] (mlp; any shape is flattened) or [C, H, W] (unet)
  std::string embedding = "sinusoidal";         // time embedding: "sinusoidal" | "fourier"
  int64_t embedding_dim = 64;                   // even, >= 2
  double fourier_scale = 16.0;                  // std of the Fourier frequencies ("fourier" only)
  std::string activation = "silu";              // "silu" | "relu" | "gelu" | "tanh" | "softplus"
  // mlp
  int64_t width = 128;                          // hidden units
  int64_t depth = 3;                            // hidden layers (>= 1)
  int64_t output_dim = 0;                       // outputs when they differ from the input's size (CLD: the
                                                // velocity half of the state); 0: the input's shape
  // unet
  int64_t channels = 32;                        // channels at the first resolution
  std::vector<int64_t> channel_mult = {1, 2};   // channels = channels * mult per resolution; H, W divisible by 2^(levels-1)
  int64_t groups = 8;                           // GroupNorm groups (divide every channel count)
};

// InputError naming the first bad field ("network: unknown architecture 'x' (known: mlp, unet)").
void validate(const NetworkConfig& config);
std::vector<std::string> architecture_names();   // {"mlp", "unet"}

// A network maps (x [B, data_shape...], t [B]) to a prediction of x's shape ([B, output_dim] when set). Parameter and buffer names
// (named_parameters / named_buffers) are those of the Python reference modules in scripts/sdeflow_nets.py,
// with PyTorch's layouts, so a state_dict carries over one to one.
class ScoreNetwork : public torch::nn::Module {
 public:
  explicit ScoreNetwork(NetworkConfig config) : config_(std::move(config)) {}
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& t) = 0;
  const NetworkConfig& config() const { return config_; }

 private:
  NetworkConfig config_;
};

// Builds the network of `config` (validated) in float32 on the CPU, its parameters initialised from `seed`
// (same seed => same parameters, whatever the global RNG).
std::shared_ptr<ScoreNetwork> make_network(const NetworkConfig& config, uint64_t seed);

}  // namespace sdeflow
