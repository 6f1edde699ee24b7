#!/usr/bin/env python3
"""Tables of the FP-Diffusion experiments from the run files that `KEEP=1 bench/run_fp_experiments.sh toy|digits`
keeps (docs/fp_diffusion.md, "Experiments"):

    fp_tables.py toy|digits DIR

For each run: the held-out NLL (toy: nats; digits: bits/dim) as median and as mean +- SE over the rows below a
divergence threshold (digits: 10 bits/dim; an MLP's flow maps a few held-out images far away, see the docs), the
number of rows above it, the training bound (the objective's last 20 % of the loss log, data space, +- the SE of
those log blocks; '-' for denoising-score-matching runs), and the paired difference to `vp (bound)` over the rows
finite in both (mean +- SE of the per-row differences: the same test rows, so the comparison's noise is the pairs').
"""
import math
import os
import sys

import h5py
import numpy as np

RUNS = [("vp__dsm_", "vp (dsm)"), ("vp__bound_", "vp (bound)"), ("cld__dsm_", "cld (dsm)"),
        ("fp_noise_joint", "fp-noise joint"), ("fp_noise_mix", "fp-noise mix"), ("fp_drift_joint", "fp-drift joint"),
        ("fp_drift_mix", "fp-drift mix"), ("fp_field_joint", "fp-field joint")]


def main():
    part, work = sys.argv[1], sys.argv[2]
    digits = part == "digits"
    key, unit, limit = ("bpd", "bits/dim", 10.0) if digits else ("nll", "nats", math.inf)
    logdet = -64 * math.log(2 / 17) if digits else 0.0
    per = 1 / (64 * math.log(2)) if digits else 1.0
    values = {}
    for name, _ in RUNS:
        path = os.path.join(work, name + "-nll.h5")
        if os.path.exists(path):
            with h5py.File(path, "r") as f:
                values[name] = f[key][...]
    base = values.get("vp__bound_")
    rows = "finite rows" if math.isinf(limit) else f"rows below {limit:g}"
    print(f"| run | held-out {unit}: median | mean +- SE ({rows}) | rows excluded | "
          f"bound (training, {unit}) | paired difference to vp (bound) |")
    print("|---|---|---|---|---|---|")
    for name, label in RUNS:
        if name not in values:
            continue
        v = values[name]
        ok = np.isfinite(v) & (v < limit)
        with h5py.File(os.path.join(work, name + ".h5"), "r") as f:
            objective = f["training"].attrs.get("objective", "dsm")
            objective = objective.decode() if isinstance(objective, bytes) else objective
            loss = f["training/loss"][...]
        bound = "-"
        if objective == "bound":
            tail = loss[-max(5, len(loss) // 5):]
            bound = f"{(tail.mean() + logdet) * per:.4f} +- {tail.std(ddof=1) / math.sqrt(len(tail)) * per:.4f}"
        paired = "-"
        if base is not None and name != "vp__bound_":
            both = ok & np.isfinite(base) & (base < limit)
            d = v[both] - base[both]
            paired = f"{d.mean():+.4f} +- {d.std(ddof=1) / math.sqrt(both.sum()):.4f}"
        print(f"| {label} | {np.median(v):.4f} | {v[ok].mean():.4f} +- {v[ok].std(ddof=1) / math.sqrt(ok.sum()):.4f} | "
              f"{int((~ok).sum())} of {len(v)} | {bound} | {paired} |")


if __name__ == "__main__":
    main()
