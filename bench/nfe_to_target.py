#!/usr/bin/env python3
"""From an `sdeflow robustness` file: the fewest model evaluations with which each sampler reaches a target
MMD^2 (and a target |mean log-likelihood error|), as a markdown table (docs/benchmarks.md).

    python bench/nfe_to_target.py rob.h5 [mmd2_target] [loglik_target]
"""
import sys

import h5py
import numpy as np


def main(argv):
    path = argv[1]
    mmd_target = float(argv[2]) if len(argv) > 2 else 1e-3
    ll_target = float(argv[3]) if len(argv) > 3 else 0.05
    with h5py.File(path, "r") as f:
        s = f["sampling"]
        # The best sampler at the most steps stands in for the data's own mean log-likelihood.
        # (Network models have no exact density: the log-likelihood column is then left empty.)
        finals = [s[n]["mean_log_likelihood"][-1] for n in s]
        exact = bool(np.all(np.isfinite(finals)))
        reference = float(np.median(finals)) if exact else float("nan")
        grid = f.attrs.get("grid", "uniform")
        grid = grid.decode() if isinstance(grid, bytes) else grid
        print(f"grid {grid}; targets: MMD^2 <= {mmd_target:g} "
              f"(noise floor {s.attrs['mmd2_floor']:.2e}, bandwidth {s.attrs['bandwidth']:.3g})"
              + (f", |mean log p - {reference:.4f}| <= {ll_target:g}" if exact else "") + "\n")
        if exact:
            print("| sampler | NFE to MMD^2 target | NFE to log-likelihood target | MMD^2 at fewest steps |")
            print("|---|---|---|---|")
        else:
            print("| sampler | NFE to MMD^2 target | MMD^2 at fewest steps |")
            print("|---|---|---|")
        for name in s:
            g = s[name]
            nfe, mmd, ll = g["nfe"][...], g["mmd2"][...], g["mean_log_likelihood"][...]
            hit_mmd = [int(n) for n, m in zip(nfe, mmd) if m <= mmd_target]
            hit_ll = [int(n) for n, v in zip(nfe, ll) if abs(v - reference) <= ll_target]
            mmd_cell = min(hit_mmd) if hit_mmd else "> " + str(int(nfe.max()))
            if exact:
                ll_cell = min(hit_ll) if hit_ll else "> " + str(int(nfe.max()))
                print(f"| {name} | {mmd_cell} | {ll_cell} | {mmd[0]:.2e} |")
            else:
                print(f"| {name} | {mmd_cell} | {mmd[0]:.2e} |")


if __name__ == "__main__":
    main(sys.argv)
