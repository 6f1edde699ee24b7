#pragma once
// Building blocks shared by the MLP and the U-Net (private to networks/): activations, the time embedding
// and the two architectures' factories. Every module here has a twin of the same name and structure in
// scripts/sdeflow_nets.py, so parameter names and layouts agree with PyTorch's state_dict (docs/networks.md).
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <memory>
#include <string>

#include "networks/network.hpp"

namespace sdeflow::detail {

// An activation chosen by name: silu, relu, gelu (exact erf form), tanh, softplus (beta 1, threshold 20).
class Activation {
 public:
  explicit Activation(const std::string& name);
  at::Tensor operator()(const at::Tensor& x) const;
  static std::vector<std::string> names();   // {"silu", "relu", "gelu", "tanh", "softplus"}

 private:
  enum class Kind { silu, relu, gelu, tanh, softplus } kind_;
};

// t [B] -> features [B, dim] -> linear1 -> act -> linear2 -> [B, width].
//   sinusoidal: half = dim / 2, f_k = exp(-ln(10000) k / half), k = 0 .. half - 1,
//               features = [sin(1000 t f), cos(1000 t f)]  (DDPM / transformer, on the 1000-step scale)
//   fourier:    features = [sin(2 pi t W), cos(2 pi t W)] with the fixed buffer W ~ N(0, fourier_scale^2)
//               of size half ("frequencies"; score-based SDE models' Gaussian Fourier projection).
class TimeEmbeddingImpl : public torch::nn::Module {
 public:
  TimeEmbeddingImpl(const NetworkConfig& config, int64_t width);
  at::Tensor forward(const at::Tensor& t);

 private:
  bool fourier_;
  int64_t dim_;
  Activation activation_;
  at::Tensor frequencies_;   // fourier only (a registered buffer)
  torch::nn::Linear linear1_{nullptr}, linear2_{nullptr};
};
TORCH_MODULE(TimeEmbedding);

// The features before linear1 (exposed for the tests and the docs' formulas).
at::Tensor sinusoidal_features(const at::Tensor& t, int64_t dim);

std::shared_ptr<ScoreNetwork> make_mlp(const NetworkConfig& config);
std::shared_ptr<ScoreNetwork> make_unet(const NetworkConfig& config);

}  // namespace sdeflow::detail
