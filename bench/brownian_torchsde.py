#!/usr/bin/env python3
"""torchsde's BrownianInterval and BrownianTree for the same queries as build/bin/sdeflow_bench_brownian:
N sequential increments over a uniform grid on [0, 1] for a batch of B D-dimensional motions.

    python bench/brownian_torchsde.py [B] [D] [N] [tolerance]
"""
import sys
import time

import torch
import torchsde


def main(argv):
    b = int(argv[1]) if len(argv) > 1 else 1000
    d = int(argv[2]) if len(argv) > 2 else 2
    n = int(argv[3]) if len(argv) > 3 else 1000
    tol = float(argv[4]) if len(argv) > 4 else 1e-6
    torch.set_num_threads(1)
    for name, make in (("BrownianInterval", lambda: torchsde.BrownianInterval(
            t0=0.0, t1=1.0, size=(b, d), dtype=torch.float64, entropy=0, tol=tol)),
            ("BrownianTree", lambda: torchsde.BrownianTree(t0=0.0, w0=torch.zeros(b, d, dtype=torch.float64),
                                                           t1=1.0, entropy=0, tol=tol))):
        for direction in ("forward", "reverse"):
            path = make()
            grid = [i / n for i in range(n + 1)]
            pairs = list(zip(grid[:-1], grid[1:])) if direction == "forward" else list(zip(grid[1:], grid[:-1]))[::-1]
            start = time.perf_counter()
            for a, c in pairs:
                lo, hi = min(a, c), max(a, c)
                if name == "BrownianInterval":
                    path(lo, hi)
                else:
                    path(hi) - path(lo)
            elapsed = time.perf_counter() - start
            print(f"torchsde {name:16s} {direction:7s}: {elapsed / n * 1e6:9.2f} us/query")


if __name__ == "__main__":
    main(sys.argv)
