#!/usr/bin/env python3
"""Plot an `sdeflow convergence` file (docs/studies.md): strong and weak error vs step size per solver,
log-log, with the fitted orders and their 95 % bootstrap intervals in the legend.

    python scripts/plot_convergence.py conv.h5 convergence.png
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from plot_common import open_study, text  # noqa: E402


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open_study(argv[1], "sdeflow.convergence", "plot_convergence") as f:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
        for problem in f["orders"]:
            for solver in f["orders"][problem]:
                g = f["orders"][problem][solver]
                if "strong_error" not in g:
                    continue
                h = g["step_size"][...]
                for ax, kind in zip(axes, ("strong", "weak")):
                    err, se = g[f"{kind}_error"][...], g[f"{kind}_error_se"][...]
                    lo, hi = g.attrs[f"{kind}_ci"]
                    order = g.attrs[kind]
                    label = (f"{solver}: {order:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(order)
                             else f"{solver}: unresolved (within Monte-Carlo error)")
                    ax.errorbar(h, err, yerr=2 * se, marker="o", ms=3, capsize=2, label=label)
        for ax, kind in zip(axes, ("strong", "weak")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("step size h")
            ax.set_title(f"{kind} error (order, 95 % interval)")
            ax.legend(fontsize=7)
        fig.suptitle(text(f.attrs["description"]), fontsize=8)
        fig.tight_layout()
        fig.savefig(argv[2], dpi=100)
    print(f"wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
