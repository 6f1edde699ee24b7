#!/usr/bin/env python3
"""Plot an `sdeflow work-precision` file: max and mean error vs model evaluations per sample, one line per
solver, log-log (docs/studies.md).

    python scripts/plot_work_precision.py wp.h5 wp.png
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from plot_common import open_study, text  # noqa: E402


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open_study(argv[1], "sdeflow.work_precision", "plot_work_precision") as f:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for task in f["work_precision"]:
            for solver in f["work_precision"][task]:
                g = f["work_precision"][task][solver]
                if "nfe_mean" not in g:
                    continue
                style = "-" if g.attrs["adaptive"] else "--"
                for ax, key in zip(axes, ("error_max", "error_mean")):
                    ax.loglog(g["nfe_mean"][...], g[key][...], style, marker="o", ms=3, label=solver)
        for ax, key in zip(axes, ("max error over samples", "mean error over samples")):
            ax.set_xlabel("model evaluations per sample")
            ax.set_title(key)
        axes[1].legend(fontsize=7, ncol=2)
        fig.suptitle(text(f.attrs["description"]), fontsize=7)
        fig.tight_layout()
        fig.savefig(argv[2], dpi=90)
    print(f"wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
