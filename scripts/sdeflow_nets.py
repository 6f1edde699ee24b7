"""PyTorch reference twins of sdeflow's score networks (networks/mlp.cpp, networks/unet.cpp).

Same module structure and attribute names as the C++ modules, so a state_dict of these modules has exactly the
parameter and buffer names of the C++ network's named_parameters() / named_buffers() (docs/networks.md).
build(config) takes the keys of sdeflow::NetworkConfig (missing keys take the C++ defaults).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

DEFAULTS = {
    "architecture": "mlp",
    "data_shape": [],
    "embedding": "sinusoidal",
    "embedding_dim": 64,
    "fourier_scale": 16.0,
    "activation": "silu",
    "width": 128,
    "depth": 3,
    "channels": 32,
    "channel_mult": [1, 2],
    "groups": 8,
}

ACTIVATIONS = {
    "silu": F.silu,
    "relu": F.relu,
    "gelu": lambda x: F.gelu(x),  # exact erf form, as at::gelu
    "tanh": torch.tanh,
    "softplus": lambda x: F.softplus(x, beta=1.0, threshold=20.0),
}


def full_config(config):
    """The config with defaults filled in; unknown keys are an error."""
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown network config keys: {sorted(unknown)}")
    out = dict(DEFAULTS)
    out.update(config)
    out["data_shape"] = [int(v) for v in out["data_shape"]]
    out["channel_mult"] = [int(v) for v in out["channel_mult"]]
    return out


def sinusoidal_features(t, dim):
    half = dim // 2
    k = torch.arange(half, dtype=t.dtype, device=t.device)
    frequencies = torch.exp(k * (-math.log(10000.0) / half))
    angle = (1000.0 * t)[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], 1)


class TimeEmbedding(nn.Module):
    def __init__(self, config, width):
        super().__init__()
        self.fourier = config["embedding"] == "fourier"
        self.dim = config["embedding_dim"]
        self.act = ACTIVATIONS[config["activation"]]
        if self.fourier:
            self.register_buffer("frequencies", torch.randn(self.dim // 2) * config["fourier_scale"])
        self.linear1 = nn.Linear(self.dim, width)
        self.linear2 = nn.Linear(width, width)

    def forward(self, t):
        if self.fourier:
            angle = (2.0 * math.pi * t)[:, None] * self.frequencies[None, :]
            features = torch.cat([torch.sin(angle), torch.cos(angle)], 1)
        else:
            features = sinusoidal_features(t, self.dim)
        return self.linear2(self.act(self.linear1(features)))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.act = ACTIVATIONS[config["activation"]]
        dim = math.prod(config["data_shape"])
        width = config["width"]
        self.time_embed = TimeEmbedding(config, width)
        self.input = nn.Linear(dim, width)
        self.hidden = nn.ModuleList([nn.Linear(width, width) for _ in range(config["depth"] - 1)])
        self.output_dim = int(config.get("output_dim", 0))
        self.output = nn.Linear(width, self.output_dim if self.output_dim > 0 else dim)

    def forward(self, x, t):
        h = self.act(self.input(x.reshape(x.shape[0], -1)) + self.time_embed(t))
        for layer in self.hidden:
            h = self.act(layer(h))
        out = self.output(h)
        return out if self.output_dim > 0 else out.reshape(x.shape)


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, time_width, groups, activation):
        super().__init__()
        self.act = ACTIVATIONS[activation]
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = conv3x3(cin, cout)
        self.time = nn.Linear(time_width, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = conv3x3(cout, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, embedding):
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.time(self.act(embedding))[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class UNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.act = ACTIVATIONS[config["activation"]]
        in_channels = config["data_shape"][0]
        channels, mult, groups = config["channels"], config["channel_mult"], config["groups"]
        time_width = 4 * channels
        levels = len(mult)

        def block(cin, cout):
            return ResBlock(cin, cout, time_width, groups, config["activation"])

        self.time_embed = TimeEmbedding(config, time_width)
        self.conv_in = conv3x3(in_channels, channels)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = channels
        for i in range(levels):
            self.down.append(block(previous, channels * mult[i]))
            previous = channels * mult[i]
            if i + 1 < levels:
                self.downsample.append(conv3x3(previous, previous, stride=2))
        self.mid = block(previous, previous)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels)):
            self.up.append(block(previous + channels * mult[i], channels * mult[i]))
            previous = channels * mult[i]
            if i > 0:
                self.upsample.append(conv3x3(previous, channels * mult[i - 1]))
                previous = channels * mult[i - 1]
        self.norm_out = nn.GroupNorm(groups, previous)
        self.conv_out = conv3x3(previous, in_channels)

    def forward(self, x, t):
        embedding = self.time_embed(t)
        h = self.conv_in(x)
        skips = []
        levels = len(self.down)
        for i in range(levels):
            h = self.down[i](h, embedding)
            skips.append(h)
            if i + 1 < levels:
                h = self.downsample[i](h)
        h = self.mid(h, embedding)
        for j in range(levels):
            h = self.up[j](torch.cat([h, skips[levels - 1 - j]], 1), embedding)
            if j + 1 < levels:
                h = self.upsample[j](F.interpolate(h, size=(2 * h.shape[2], 2 * h.shape[3]), mode="nearest"))
        return self.conv_out(self.act(self.norm_out(h)))


def build(config):
    """The reference module of an sdeflow network config (a dict with NetworkConfig's keys)."""
    config = full_config(config)
    if config["architecture"] == "mlp":
        return MLP(config)
    if config["architecture"] == "unet":
        return UNet(config)
    raise ValueError(f"unknown architecture {config['architecture']!r} (known: mlp, unet)")
