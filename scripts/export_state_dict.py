#!/usr/bin/env python3
"""Write an sdeflow network model file (docs/formats.md, "Network model files") from a PyTorch state_dict.

    python scripts/export_state_dict.py --state-dict sd.pt --config config.json --process vp --out model.h5 \
        [--parameterisation noise] [--dtype float64] [--ema-state-dict ema.pt]

--config is a JSON file or a JSON object with the keys of sdeflow::NetworkConfig (architecture, data_shape,
embedding, embedding_dim, fourier_scale, activation, width, depth, channels, channel_mult, groups); the
state_dict must be that of scripts/sdeflow_nets.py's build(config) (checked with load_state_dict(strict=True)).

A random-init mode writes the model of build(config) after torch.manual_seed(seed), plus a reference file with
inputs and the module's float64 predictions, for checking the C++ networks against PyTorch:

    python scripts/export_state_dict.py --random-init --seed 0 --config '{"data_shape": [2]}' --out model.h5 \
        --reference ref.h5

ref.h5 holds x [B, *data_shape], t [B] and prediction [B, *data_shape] (float64). write_model() is the same
writer for use from Python code.
"""
import argparse
import json
import math
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdeflow_nets  # noqa: E402

PROCESS_DEFAULTS = {
    "vp": {"beta_min": 0.1, "beta_max": 20.0, "eps": 1e-3, "T": 1.0},
    "subvp": {"beta_min": 0.1, "beta_max": 20.0, "eps": 1e-3, "T": 1.0},
    "ve": {"sigma_min": 0.01, "sigma_max": 50.0, "eps": 1e-3, "T": 1.0},
}
INT_KEYS = ("embedding_dim", "width", "depth", "channels", "groups")


def _write_tensors(group, state, dtype):
    for name, tensor in state.items():
        group.create_dataset(name, data=tensor.detach().cpu().to(dtype).numpy())


def write_model(path, state_dict, config, process="vp", process_parameters=None, parameterisation="noise",
                dtype="float32", ema_state_dict=None, data=None, training=None, loss_step=None, loss=None):
    """Writes a network model file. state_dict: that of sdeflow_nets.build(config) (checked strictly)."""
    config = sdeflow_nets.full_config(config)
    module = sdeflow_nets.build(config)
    module.load_state_dict(state_dict, strict=True)
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    if process not in PROCESS_DEFAULTS:
        raise ValueError(f"unknown process {process!r} (known: {', '.join(PROCESS_DEFAULTS)})")
    parameters = dict(PROCESS_DEFAULTS[process])
    parameters.update(process_parameters or {})
    data = dict(data or {})
    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["version"], f.attrs["kind"] = "sdeflow.model", np.int64(1), "network"
        p = f.create_group("process")
        p.attrs["name"] = process
        for key, value in parameters.items():
            p.attrs[key] = np.float64(value)
        n = f.create_group("network")
        for key in ("architecture", "embedding", "activation"):
            n.attrs[key] = str(config[key])
        for key in INT_KEYS:
            n.attrs[key] = np.int64(config[key])
        n.attrs["fourier_scale"] = np.float64(config["fourier_scale"])
        n.attrs["data_shape"] = np.array(config["data_shape"], dtype=np.int64)
        n.attrs["channel_mult"] = np.array(config["channel_mult"], dtype=np.int64)
        n.attrs["parameterisation"] = parameterisation
        n.attrs["dtype"] = dtype
        _write_tensors(n.create_group("parameters"), module.state_dict(), torch_dtype)
        if ema_state_dict is not None:
            ema = sdeflow_nets.build(config)
            ema.load_state_dict(ema_state_dict, strict=True)
            _write_tensors(n.create_group("ema"), ema.state_dict(), torch_dtype)
        d = f.create_group("data")
        d.attrs["name"] = str(data.get("name", "unknown"))
        d.attrs["shape"] = np.array(data.get("shape", config["data_shape"]), dtype=np.int64)
        d.attrs["scale"] = np.float64(data.get("scale", 1.0))
        d.attrs["shift"] = np.float64(data.get("shift", 0.0))
        d.attrs["integer"] = np.int64(1 if data.get("integer", False) else 0)
        d.attrs["levels"] = np.int64(data.get("levels", 256))
        t = f.create_group("training")
        for key, value in (training or {}).items():
            t.attrs[key] = value if isinstance(value, str) else np.float64(value)
        if loss_step is not None:
            t["loss_step"] = np.asarray(loss_step, dtype=np.int64)
            t["loss"] = np.asarray(loss, dtype=np.float64)


def reference(module, config, path, seed, batch=5):
    """Writes x, t and the float64 prediction of `module` at random inputs to `path`."""
    config = sdeflow_nets.full_config(config)
    generator = torch.Generator().manual_seed(seed + 1)
    module = module.double().eval()
    x = torch.randn(batch, *config["data_shape"], generator=generator, dtype=torch.float64)
    t = 1e-3 + (1.0 - 1e-3) * torch.rand(batch, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        prediction = module(x, t)
    with h5py.File(path, "w") as f:
        f["x"], f["t"], f["prediction"] = x.numpy(), t.numpy(), prediction.numpy()


def _load_config(text):
    if text.lstrip().startswith("{"):
        return json.loads(text)
    with open(text) as handle:
        return json.load(handle)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="JSON file or JSON object (NetworkConfig keys)")
    parser.add_argument("--out", required=True, help="model file to write")
    parser.add_argument("--state-dict", help="torch.save'd state_dict of sdeflow_nets.build(config)")
    parser.add_argument("--ema-state-dict", help="optional EMA weights, same keys")
    parser.add_argument("--random-init", action="store_true", help="use build(config) after torch.manual_seed(--seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", help="random-init: also write x, t, prediction (float64) here")
    parser.add_argument("--process", default="vp", choices=sorted(PROCESS_DEFAULTS))
    parser.add_argument("--process-parameters", default="{}", help="JSON object overriding the process defaults")
    parser.add_argument("--parameterisation", default="noise", choices=["score", "noise", "data"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--data", default="{}", help="JSON object: name, shape, scale, shift, integer, levels")
    args = parser.parse_args(argv)
    config = _load_config(args.config)
    if args.random_init == (args.state_dict is not None):
        parser.error("give exactly one of --state-dict and --random-init")
    if args.random_init:
        torch.manual_seed(args.seed)
        module = sdeflow_nets.build(config)
        state = module.state_dict()
    else:
        state = torch.load(args.state_dict, map_location="cpu")
    ema = torch.load(args.ema_state_dict, map_location="cpu") if args.ema_state_dict else None
    write_model(args.out, state, config, process=args.process, process_parameters=json.loads(args.process_parameters),
                parameterisation=args.parameterisation, dtype=args.dtype, ema_state_dict=ema,
                data=json.loads(args.data), training={"source": "scripts/export_state_dict.py"})
    if args.reference:
        if not args.random_init:
            module = sdeflow_nets.build(config)
            module.load_state_dict(state)
        reference(module, config, args.reference, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
