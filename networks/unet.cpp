// A small U-Net score network for images [B, C, H, W] (docs/networks.md, "U-Net"). With c_i = channels *
// channel_mult[i] at resolution level i (H / 2^i) and e(t) the time embedding (networks/layers.hpp):
//   h = conv_in(x); for each level i: h = down[i](h, e), keep h as skip i, then (but for the last level)
//   h = downsample[i](h) (3x3 conv, stride 2); h = mid(h, e); for each level i from the last: h =
//   up[j](cat(h, skip i), e), then (but for level 0) h = upsample[j](nearest x2 of h); out = conv_out(act(norm_out(h))).
// A residual block: h = conv1(act(norm1(x))) + time(act(e)); out = conv2(act(norm2(h))) + skip(x), where skip is
// a 1x1 conv when the channel count changes and the identity otherwise.
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "networks/layers.hpp"

namespace sdeflow::detail {

namespace {

torch::nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1));
}

class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in, int64_t out, int64_t time_width, int64_t groups, const std::string& activation)
      : activation_(activation) {
    norm1_ = register_module("norm1", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, in)));
    conv1_ = register_module("conv1", conv3x3(in, out));
    time_ = register_module("time", torch::nn::Linear(time_width, out));
    norm2_ = register_module("norm2", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, out)));
    conv2_ = register_module("conv2", conv3x3(out, out));
    if (in != out) skip_ = register_module("skip", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)));
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& embedding) {
    auto h = conv1_->forward(activation_(norm1_->forward(x)));
    h = h + time_->forward(activation_(embedding)).unsqueeze(-1).unsqueeze(-1);
    h = conv2_->forward(activation_(norm2_->forward(h)));
    return h + (skip_ ? skip_->forward(x) : x);
  }

 private:
  Activation activation_;
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, skip_{nullptr};
  torch::nn::Linear time_{nullptr};
};
TORCH_MODULE(ResBlock);

class UNetNetwork : public ScoreNetwork {
 public:
  explicit UNetNetwork(const NetworkConfig& config) : ScoreNetwork(config), activation_(config.activation) {
    const int64_t in_channels = config.data_shape[0];
    const int64_t time_width = 4 * config.channels;
    const auto& mult = config.channel_mult;
    const int64_t levels = static_cast<int64_t>(mult.size());
    const auto width = [&](int64_t level) { return config.channels * mult[level]; };
    const auto block = [&](int64_t in, int64_t out) {
      return ResBlock(in, out, time_width, config.groups, config.activation);
    };
    time_embed_ = register_module("time_embed", TimeEmbedding(config, time_width));
    conv_in_ = register_module("conv_in", conv3x3(in_channels, config.channels));
    auto down = register_module("down", torch::nn::ModuleList());
    auto downsample = register_module("downsample", torch::nn::ModuleList());
    int64_t previous = config.channels;
    for (int64_t i = 0; i < levels; ++i) {
      down_.push_back(block(previous, width(i)));
      down->push_back(down_.back());
      previous = width(i);
      if (i + 1 < levels) {
        downsample_.push_back(conv3x3(previous, previous, 2));
        downsample->push_back(downsample_.back());
      }
    }
    mid_ = register_module("mid", block(previous, previous));
    auto up = register_module("up", torch::nn::ModuleList());
    auto upsample = register_module("upsample", torch::nn::ModuleList());
    for (int64_t i = levels - 1; i >= 0; --i) {
      up_.push_back(block(previous + width(i), width(i)));
      up->push_back(up_.back());
      previous = width(i);
      if (i > 0) {
        upsample_.push_back(conv3x3(previous, width(i - 1)));
        upsample->push_back(upsample_.back());
        previous = width(i - 1);
      }
    }
    norm_out_ = register_module("norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(config.groups, previous)));
    conv_out_ = register_module("conv_out", conv3x3(previous, in_channels));
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& t) override {
    const auto embedding = time_embed_->forward(t);
    auto h = conv_in_->forward(x);
    std::vector<at::Tensor> skips;
    const size_t levels = down_.size();
    for (size_t i = 0; i < levels; ++i) {
      h = down_[i]->forward(h, embedding);
      skips.push_back(h);
      if (i + 1 < levels) h = downsample_[i]->forward(h);
    }
    h = mid_->forward(h, embedding);
    for (size_t j = 0; j < levels; ++j) {
      h = up_[j]->forward(at::cat({h, skips[levels - 1 - j]}, 1), embedding);
      if (j + 1 < levels) h = upsample_[j]->forward(at::upsample_nearest2d(h, {2 * h.size(2), 2 * h.size(3)}));
    }
    return conv_out_->forward(activation_(norm_out_->forward(h)));
  }

 private:
  Activation activation_;
  TimeEmbedding time_embed_{nullptr};
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  std::vector<ResBlock> down_, up_;
  std::vector<torch::nn::Conv2d> downsample_, upsample_;
  ResBlock mid_{nullptr};
  torch::nn::GroupNorm norm_out_{nullptr};
};

}  // namespace

std::shared_ptr<ScoreNetwork> make_unet(const NetworkConfig& config) { return std::make_shared<UNetNetwork>(config); }

}  // namespace sdeflow::detail
