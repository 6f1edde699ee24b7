#!/usr/bin/env python3
"""The 3-D plane experiment of FP-Diffusion Sec. 4.1 (docs/fp_diffusion.md, "Experiments").

    fp_plane.py data --n N --seed S --out FILE
        writes an sdeflow data file (docs/formats.md, "Data files"): /data [N, 3] float64, rows (x, y, 2) with
        x, y ~ N(0, 1): a 2-D standard Gaussian on the plane z = 2 in R^3.

    fp_plane.py analyse --label L --samples FILE [--label L --samples FILE ...] [--figure PNG]
        reads probability-flow trajectories saved by `sdeflow sample --save-every 1` (/trajectory/x [S, N, 3] from
        t = T to eps) and prints one markdown row per run:
          - mean cosine between each generative step dx_k = x_{k+1} - x_k and the optimal-transport direction
            (0, 0, -sign(z_k - 2)) (the map from N(0, I_3) to the plane moves z only), averaged over the steps of
            every trajectory with weights |dx_k| (the cosine of the path, not of its slowest steps);
          - the mean path length sum_k |dx_k|, against the optimal-transport length E|z_T - 2| for z_T ~ N(0, 1);
          - the distance of the final points from the plane, mean |z - 2|;
          - the number of samples whose flow diverged (non-finite; left out of the averages).
        With --figure, draws the (x, z) projections of 40 trajectories per run.
"""
import argparse
import math
import os
import sys
import tempfile

import h5py
import numpy as np


def write_data(args):
    rng = np.random.default_rng(args.seed)
    rows = np.column_stack([rng.standard_normal(args.n), rng.standard_normal(args.n), np.full(args.n, 2.0)])
    directory = os.path.dirname(os.path.abspath(args.out))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".h5")
    os.close(fd)
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = "sdeflow.data"
        f.attrs["version"] = np.int64(1)
        f.attrs["name"] = "plane"
        f.create_dataset("data", data=rows.astype(np.float64))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {args.n} points on the plane z = 2")


def ot_length():
    # E|Z - 2| for Z ~ N(0, 1) = 2 (2 Phi(2) - 1) + 2 phi(2).
    phi = math.exp(-2.0) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(2 / math.sqrt(2)))
    return 2 * (2 * big_phi - 1) + 2 * phi


def analyse(args):
    if len(args.label) != len(args.samples):
        sys.exit("analyse: give one --label per --samples")
    print(f"| run | mean cosine to OT direction | mean path length (OT: {ot_length():.3f}) | final mean abs(z - 2) "
          f"| failed samples |")
    print("|---|---|---|---|---|")
    paths = {}
    for label, path in zip(args.label, args.samples):
        with h5py.File(path, "r") as f:
            x = f["trajectory/x"][...].astype(np.float64)   # [S, N, 3], from T to eps
        finite = np.isfinite(x).all(axis=(0, 2))            # samples whose flow stayed finite
        failed = int((~finite).sum())
        x = x[:, finite, :]
        step = np.diff(x, axis=0)                            # [S-1, N, 3]
        length = np.linalg.norm(step, axis=2)
        direction = -np.sign(x[:-1, :, 2] - 2.0)
        cosine = np.where(length > 0, step[:, :, 2] * direction / np.maximum(length, 1e-300), 0.0)
        weighted = (cosine * length).sum(axis=0) / np.maximum(length.sum(axis=0), 1e-300)   # per trajectory
        n = weighted.size
        total = length.sum(axis=0)
        final = np.abs(x[-1, :, 2] - 2.0)
        print(f"| {label} | {weighted.mean():.4f} +- {weighted.std(ddof=1) / math.sqrt(n):.4f} | "
              f"{total.mean():.3f} +- {total.std(ddof=1) / math.sqrt(n):.3f} | {final.mean():.4f} | {failed} |")
        paths[label] = x
    if args.figure:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(paths), figsize=(4 * len(paths), 4), sharey=True)
        axes = np.atleast_1d(axes)
        for ax, (label, x) in zip(axes, paths.items()):
            for j in range(min(40, x.shape[1])):
                ax.plot(x[:, j, 0], x[:, j, 2], lw=0.7, alpha=0.7)
            ax.axhline(2.0, color="k", lw=0.8, ls="--")
            ax.set_title(label)
            ax.set_xlabel("x")
        axes[0].set_ylabel("z")
        fig.tight_layout()
        fig.savefig(args.figure, dpi=110)
        print(f"wrote {args.figure}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data")
    d.add_argument("--n", type=int, default=20000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", required=True)
    a = sub.add_parser("analyse")
    a.add_argument("--label", action="append", default=[])
    a.add_argument("--samples", action="append", default=[])
    a.add_argument("--figure")
    args = parser.parse_args()
    if args.command == "data":
        write_data(args)
    else:
        analyse(args)


if __name__ == "__main__":
    main()
