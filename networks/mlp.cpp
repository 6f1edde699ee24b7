// The MLP score network for flat (or flattened) data: with e(t) the time embedding (networks/layers.hpp),
//   h_1 = act(input(x) + e(t)),  h_{k+1} = act(hidden[k-1](h_k)) for k = 1 .. depth - 1,  out = output(h_depth),
// x flattened to [B, D] on the way in and the output reshaped to x's shape (docs/networks.md, "MLP").
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "networks/layers.hpp"

namespace sdeflow::detail {

namespace {

class MlpNetwork : public ScoreNetwork {
 public:
  explicit MlpNetwork(const NetworkConfig& config) : ScoreNetwork(config), activation_(config.activation) {
    int64_t dim = 1;
    for (const int64_t extent : config.data_shape) dim *= extent;
    time_embed_ = register_module("time_embed", TimeEmbedding(config, config.width));
    input_ = register_module("input", torch::nn::Linear(dim, config.width));
    auto hidden = register_module("hidden", torch::nn::ModuleList());
    for (int64_t k = 1; k < config.depth; ++k) {
      hidden_.push_back(torch::nn::Linear(config.width, config.width));
      hidden->push_back(hidden_.back());
    }
    output_dim_ = config.output_dim > 0 ? config.output_dim : 0;
    output_ = register_module("output", torch::nn::Linear(config.width, output_dim_ > 0 ? output_dim_ : dim));
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& t) override {
    const int64_t batch = x.size(0);
    auto h = activation_(input_->forward(x.reshape({batch, -1})) + time_embed_->forward(t));
    for (auto& layer : hidden_) h = activation_(layer->forward(h));
    const auto out = output_->forward(h);
    return output_dim_ > 0 ? out : out.reshape(x.sizes());
  }

 private:
  Activation activation_;
  int64_t output_dim_ = 0;
  TimeEmbedding time_embed_{nullptr};
  torch::nn::Linear input_{nullptr}, output_{nullptr};
  std::vector<torch::nn::Linear> hidden_;
};

}  // namespace

std::shared_ptr<ScoreNetwork> make_mlp(const NetworkConfig& config) { return std::make_shared<MlpNetwork>(config); }

}  // namespace sdeflow::detail
