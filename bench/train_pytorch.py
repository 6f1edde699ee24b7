#!/usr/bin/env python3
"""Plain PyTorch twin of one `sdeflow train` step, for the training-throughput benchmark (docs/benchmarks.md).

    train_pytorch.py --device cpu|cuda --batch B --steps N [--warmup-steps W] [--threads T] [--json FILE]

Runs W + N optimisation steps of denoising score matching on the built-in checkerboard with the same work per
step as sdeflow's Trainer::step (training/trainer.cpp) with `sdeflow train`'s defaults:

- a fresh checkerboard batch every step, drawn on the CPU in float64 from a generator seeded per step (as
  sdeflow's ToyData::batch; the same formula as io/toy_data.cpp), then model space = 1 * x + 0;
- VP process (beta_min 0.1, beta_max 20), t ~ U[eps, 1] with eps = 1e-5 (variance weighting: no importance
  sampling), noise z ~ N(0, I), x_t = alpha(t) x + sigma(t) z, all in float64 on the CPU, each from its own
  per-step generator;
- x_t, z and t cast to float32 and moved to the device; the MLP of scripts/sdeflow_nets.py (sdeflow's default
  network: mlp, width 128, depth 3, sinusoidal embedding of size 64, silu) predicts the noise;
  loss = mean over the batch of 0.5 * sum((eps_theta - z)^2, 1);
- zero_grad, backward, loss.item() (a host sync every step, as sdeflow), clip_grad_norm_(1.0), the learning rate of
  the step set on Adam (linear warm-up over 100 steps, cosine decay to 1 % of 1e-3 at the last step), Adam step
  (torch.optim.Adam with its defaults), EMA (rate 0.999) of a second copy of the network with mul_ / add_.

The learning-rate schedule spans the W + N steps, as `sdeflow train --iters W+N` does. Timing: the N steps after
W warm-up steps (time.perf_counter, the device synchronised by loss.item() every step), and the time of all
W + N steps (what sdeflow's wall_time_s measures). Peak memory: the process's max RSS (ru_maxrss, including the
torch import) and, on CUDA, torch.cuda.max_memory_allocated / max_memory_reserved.

Prints one JSON object (and writes it to --json FILE when given).
"""
import argparse
import json
import math
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=500, help="timed steps N")
    p.add_argument("--warmup-steps", type=int, default=50, help="untimed steps W before the timed ones")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (and OMP_NUM_THREADS if unset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="also write the result to this file")
    args = p.parse_args()
    if args.batch <= 0 or args.steps <= 0 or args.warmup_steps < 0 or args.threads <= 0:
        p.error("--batch, --steps, --threads must be positive and --warmup-steps >= 0")
    return args


ARGS = parse_args()
for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(name, str(ARGS.threads))

import resource  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import sdeflow_nets  # noqa: E402

# sdeflow train's defaults (apps/cmd_train.cpp, training/trainer.hpp, processes/linear.cpp).
BETA_MIN, BETA_MAX, T_END, EPS = 0.1, 20.0, 1.0, 1e-5
LR, WARMUP, LR_MIN_FRACTION, GRAD_CLIP, EMA_RATE = 1e-3, 100, 0.01, 1.0, 0.999
DATA_STREAM, TIME_STREAM, NOISE_STREAM = 0, 2, 3
MASK = (1 << 64) - 1


def step_seed(seed, step, stream):
    """sdeflow::step_seed (training/objective.cpp): splitmix64 finaliser over (seed, stream, step)."""
    def mix(x):
        x = (x + 0x9E3779B97F4A7C15) & MASK
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
        return x ^ (x >> 31)
    return mix(mix(mix(seed) ^ stream) ^ (step & MASK))


def checkerboard(n, g):
    """io/toy_data.cpp: column i ~ {-2..1}, row j with i + j even; x = 2 (i + U, j + U'), float64 [n, 2]."""
    f64 = torch.float64
    column = torch.randint(4, (n,), generator=g, dtype=f64) - 2.0
    row = 2.0 * torch.randint(2, (n,), generator=g, dtype=f64) - 2.0 + torch.remainder(column, 2.0)
    return 2.0 * (torch.stack([column, row], 1) + torch.rand((n, 2), generator=g, dtype=f64))


def integrated_beta(t):
    return BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t * t


def learning_rate(step, iterations):
    factor = min(1.0, (step + 1) / WARMUP) if WARMUP > 0 else 1.0
    progress = step / max(iterations, 1)
    factor *= LR_MIN_FRACTION + (1 - LR_MIN_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    return LR * factor


def main():
    torch.set_num_threads(ARGS.threads)
    device = torch.device(ARGS.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("train_pytorch.py: --device cuda but torch.cuda.is_available() is False")
    batch, iterations = ARGS.batch, ARGS.warmup_steps + ARGS.steps

    torch.manual_seed(ARGS.seed)
    config = {"data_shape": [2]}   # every other key: sdeflow's NetworkConfig defaults
    network = sdeflow_nets.build(config).to(device=device, dtype=torch.float32).train()
    ema = sdeflow_nets.build(config).to(device=device, dtype=torch.float32).eval()
    ema.load_state_dict(network.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    parameters = list(network.parameters())
    ema_parameters = list(ema.parameters())
    optimizer = torch.optim.Adam(parameters, lr=LR)
    generator = torch.Generator()   # CPU; reseeded per step and stream, as sdeflow's per-step generators

    def step(k):
        generator.manual_seed(step_seed(ARGS.seed, k, DATA_STREAM))
        x = checkerboard(batch, generator)
        x = 1.0 * x + 0.0                                           # model space (scale 1, shift 0)
        generator.manual_seed(step_seed(ARGS.seed, k, TIME_STREAM))
        t64 = EPS + (T_END - EPS) * torch.rand(batch, generator=generator, dtype=torch.float64)
        b = integrated_beta(t64)
        alpha = torch.exp(-0.5 * b).reshape(-1, 1)
        sigma = torch.sqrt(-torch.expm1(-b)).reshape(-1, 1)
        generator.manual_seed(step_seed(ARGS.seed, k, NOISE_STREAM))
        z64 = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        xt64 = alpha * x + sigma * z64

        xt = xt64.to(device=device, dtype=torch.float32)
        z = z64.to(device=device, dtype=torch.float32)
        t = t64.to(device=device, dtype=torch.float32)
        prediction = network(xt, t)
        loss = (0.5 * (prediction - z).pow(2).sum(1)).mean()

        optimizer.zero_grad()
        loss.backward()
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss is not finite at step {k + 1}")
        torch.nn.utils.clip_grad_norm_(parameters, GRAD_CLIP)
        lr = learning_rate(k, iterations)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        with torch.no_grad():
            for e, p in zip(ema_parameters, parameters):
                e.mul_(EMA_RATE).add_(p.detach(), alpha=1 - EMA_RATE)
        return value

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for k in range(ARGS.warmup_steps):
        step(k)
    middle = time.perf_counter()
    cpu_start = time.process_time()
    loss = float("nan")
    for k in range(ARGS.warmup_steps, iterations):
        loss = step(k)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter()
    cpu_timed = time.process_time() - cpu_start

    timed = end - middle
    result = {
        "method": "pytorch",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch": batch,
        "threads": ARGS.threads,
        "warmup_steps": ARGS.warmup_steps,
        "timed_steps": ARGS.steps,
        "timed_s": timed,
        "timed_cpu_s": cpu_timed,
        "steps_per_s": ARGS.steps / timed,
        "all_steps_s": end - start,
        "all_steps_per_s": iterations / (end - start),
        "final_loss": loss,
        "parameters": sum(p.numel() for p in parameters),
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,   # Linux: KiB
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["cuda_max_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    text = json.dumps(result)
    print(text)
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
