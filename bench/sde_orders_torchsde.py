#!/usr/bin/env python3
"""Strong orders on geometric Brownian motion with torchsde's euler, milstein and srk, for the side-by-side
with `sdeflow convergence --problem gbm` (docs/benchmarks.md): dX = 1.0 X dt + 0.8 X dW, X0 = 1, [0, 1],
paths sharing one BrownianInterval across the step ladder 8..128, error against the exact solution.

    python bench/sde_orders_torchsde.py [paths]
"""
import sys
import time

import numpy as np
import torch
import torchsde

MU, SIGMA = 1.0, 0.8


class GBM(torch.nn.Module):
    noise_type = "diagonal"
    sde_type = "ito"

    def f(self, t, y):
        return MU * y

    def g(self, t, y):
        return SIGMA * y


def main(argv):
    paths = int(argv[1]) if len(argv) > 1 else 2000
    torch.set_num_threads(1)
    steps = [8, 16, 32, 64, 128]
    sde = GBM()
    y0 = torch.ones(paths, 1, dtype=torch.float64)
    bm = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(paths, 1), dtype=torch.float64, entropy=0,
                                   levy_area_approximation="space-time", tol=1e-6)
    exact = y0 * torch.exp((MU - 0.5 * SIGMA ** 2) + SIGMA * bm(0.0, 1.0))
    ts = torch.tensor([0.0, 1.0], dtype=torch.float64)
    for method in ("euler", "milstein", "srk"):
        errors, seconds = [], 0.0
        for n in steps:
            start = time.perf_counter()
            y = torchsde.sdeint(sde, y0, ts, bm=bm, method=method, dt=1.0 / n)[-1]
            seconds += time.perf_counter() - start
            errors.append((y - exact).abs().mean().item())
        h = 1.0 / np.array(steps)
        order = np.polyfit(np.log(h), np.log(errors), 1)[0]
        print(f"torchsde {method:9s} strong order {order:6.3f}   errors {' '.join(f'{e:.3e}' for e in errors)}"
              f"   wall {seconds:.3f} s")


if __name__ == "__main__":
    main(sys.argv)
