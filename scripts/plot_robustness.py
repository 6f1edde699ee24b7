#!/usr/bin/env python3
"""Plot an `sdeflow robustness` file (docs/studies.md): sample-quality metrics vs number of steps per
sampler (log-log, with the held-out noise floor), and NLL error / NFE vs solver tolerance.

    python scripts/plot_robustness.py rob.h5 robustness.png
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from plot_common import open_study  # noqa: E402


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open_study(argv[1], "sdeflow.robustness", "plot_robustness") as f:
        sampling = f["sampling"]
        metrics = [("mmd2", "MMD$^2$ (RBF)", "mmd2_floor"), ("sliced_w2", "sliced W$_2$", "sliced_w2_floor"),
                   ("energy", "energy distance", "energy_floor"), ("mean_log_likelihood", "mean log $p_0$(samples)", None)]
        has_nll = len(f["nll"]) > 0
        fig, axes = plt.subplots(1, len(metrics) + (1 if has_nll else 0), figsize=(4.2 * (len(metrics) + has_nll), 3.6))
        for ax, (key, label, floor) in zip(axes, metrics):
            for name in sampling:
                g = sampling[name]
                steps = g["steps"][...]
                values = g[key][...]
                if key == "mean_log_likelihood":
                    ax.errorbar(steps, values, yerr=2 * g["mean_log_likelihood_stderr"][...], marker="o", ms=3,
                                label=name, capsize=2)
                else:
                    ax.plot(steps, values, marker="o", ms=3, label=name)
            if floor is not None and floor in sampling.attrs and np.isfinite(sampling.attrs[floor]):
                ax.axhline(float(sampling.attrs[floor]), color="gray", ls="--", lw=1, label="noise floor")
            ax.set_xscale("log")
            # MMD^2 and energy (unbiased estimates) can be negative near zero: symmetric-log axes.
            if key in ("mmd2", "energy"):
                ax.set_yscale("symlog", linthresh=max(abs(float(sampling.attrs.get(floor, 1e-4))), 1e-8))
            elif key == "sliced_w2":
                ax.set_yscale("log")
            ax.set_xlabel("steps")
            ax.set_title(label)
        axes[0].legend(fontsize=7)
        if has_nll:
            ax = axes[-1]
            for name in f["nll"]:
                g = f["nll"][name]
                err = g["max_abs_error"][...]
                if np.all(np.isnan(err)):
                    continue
                ax.loglog(g["tolerance"][...], err, marker="o", ms=3, label=f"{name}: max |error|")
                ax.loglog(g["tolerance"][...], g["mean_abs_error"][...], marker="s", ms=3, ls=":", label=f"{name}: mean")
            ax.set_xlabel("rtol = atol")
            ax.set_title("NLL error vs tolerance (nats)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(argv[2], dpi=110)
    print(f"wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
