#!/usr/bin/env python3
"""Summarise one run of bench/run_likelihood.sh as a markdown table (used by that script).

    python bench/summarize_likelihood.py --manifest WORK/manifest.tsv --exact WORK/exact.json [--header TEXT]

The manifest has one tab-separated line per run: kind (sdeflow|python), method, tol, repetition,
result path, exit status, process wall time in seconds. sdeflow results are the HDF5 files of
`sdeflow nll` (/nll [N], /nfe [N], /status [N], root attributes complete, rows, wall_time_s,
nfe_mean, nfe_max, failures, ...; docs/formats.md "NLL result files"); python results are the JSON
files of bench/likelihood_baselines.py.

Per (tolerance, method) it reports the best wall time over the repetitions (sdeflow: its own
wall_time_s attribute; the baselines: their solve time), the NFE, the mean and max |(-nll) - log p_0(x)|
against the exact mixture density, failures, and the ratio of each method's time to sdeflow dopri5's
at the same tolerance.
"""
import argparse
import csv
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np

REFERENCE = "dopri5"   # the sdeflow solver the ratios refer to
TARGETS = {"scipy-rk45": 5.0, "torchdiffeq-dopri5": 3.0}


def read_sdeflow(path):
    import h5py
    with h5py.File(path, "r") as f:
        a = f.attrs
        if "complete" in a and int(a["complete"]) != 1:
            raise ValueError(f"{path}: incomplete result file (complete = {int(a['complete'])}: the run "
                             "did not finish)")
        rows = int(a["rows"]) if "rows" in a else None   # use the first `rows` entries (docs/formats.md)
        sl = slice(None) if rows is None else slice(0, rows)
        nll = np.asarray(f["nll"][sl], dtype=np.float64)
        nfe = np.asarray(f["nfe"][sl]) if "nfe" in f else None
        status = np.asarray(f["status"][sl]) if "status" in f else None

        def attr(name):
            return float(a[name]) if name in a else None
        failures = attr("failures")
        if failures is None and status is not None:
            failures = float(np.count_nonzero(status))
        return {"nll": nll, "wall": attr("wall_time_s"),
                "nfe_mean": attr("nfe_mean") if attr("nfe_mean") is not None else
                (float(nfe.mean()) if nfe is not None else None),
                "nfe_max": attr("nfe_max") if attr("nfe_max") is not None else
                (float(nfe.max()) if nfe is not None else None),
                "failures": failures}


def read_python(path):
    with open(path) as fh:
        d = json.load(fh)
    return {"nll": np.asarray(d["nll"], dtype=np.float64), "wall": d["wall_time_s"],
            "nfe_mean": float(d["nfe"]), "nfe_max": float(d["nfe"]),
            "failures": 0.0 if d.get("success", True) else float("nan"), "cpu": d.get("cpu_time_s")}


def fmt_time(x):
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3f}" if x >= 0.1 else f"{x:.4f}"


def fmt_nfe(kind, mean, mx):
    if mean is None:
        return "n/a"
    if kind == "python":
        return f"{mean:.0f} (batch)"
    return f"{mean:.1f} / {mx:.0f}" if mx is not None else f"{mean:.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--exact", required=True, help="JSON of likelihood_baselines.py --method exact")
    ap.add_argument("--header", default=None, help="text printed above the table")
    args = ap.parse_args(argv)

    with open(args.exact) as fh:
        logp0 = np.asarray(json.load(fh)["exact_logp0"], dtype=np.float64)

    # (tol, label) -> aggregated result
    groups = OrderedDict()
    with open(args.manifest) as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if not row or row[0].startswith("#"):
                continue
            kind, method, tol, _rep, path, rc, proc_wall = row[:7]
            label = f"sdeflow {method}" if kind == "sdeflow" else method
            g = groups.setdefault((tol, label), {"kind": kind, "method": method, "runs": [],
                                                 "errors": [], "proc": []})
            g["proc"].append(float(proc_wall))
            if not os.path.exists(path):
                log = os.path.splitext(path)[0] + ".log"
                g["errors"].append(f"exit status {rc}, no result file (see {os.path.basename(log)})")
                continue
            try:
                r = read_sdeflow(path) if kind == "sdeflow" else read_python(path)
            except Exception as exc:  # missing or unreadable result: report, do not stop
                g["errors"].append(f"rc={rc}: {type(exc).__name__}: {exc}")
                continue
            if len(r["nll"]) != len(logp0):
                g["errors"].append(f"{path}: {len(r['nll'])} values, expected {len(logp0)}")
                continue
            r["rc"] = int(rc)
            g["runs"].append(r)

    tols = list(OrderedDict.fromkeys(t for t, _ in groups))
    out = []
    if args.header:
        out.append(args.header)
        out.append("")
    out.append("| rtol = atol | method | wall time (s) | process wall (s) | NFE | mean abs err | "
               "max abs err | failures | time / sdeflow dopri5 |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    notes = []
    for tol in tols:
        rows = [(label, g) for (t, label), g in groups.items() if t == tol]
        best, maxerr = {}, {}
        for label, g in rows:
            walls = [r["wall"] for r in g["runs"] if r["wall"] is not None]
            if walls:
                best[label] = (min(walls), "")
            elif g["runs"]:   # no wall_time_s attribute: fall back to the process time
                best[label] = (min(g["proc"]), "*")
                notes.append(f"{label} @ {tol}: no wall_time_s attribute, process wall time used (*)")
        ref = best.get(f"sdeflow {REFERENCE}", (None, ""))[0]
        for label, g in rows:
            if not g["runs"]:
                msg = "; ".join(g["errors"]) or "no result"
                out.append(f"| {tol} | {label} | failed | {fmt_time(min(g['proc']))} | | | | | |")
                notes.append(f"{label} @ {tol} failed: {msg}")
                continue
            if g["errors"]:
                notes.append(f"{label} @ {tol}: some repetitions failed: " + "; ".join(g["errors"]))
            r = g["runs"][-1]
            err = np.abs(-r["nll"] - logp0)
            maxerr[label] = float(err.max())
            wall, star = best[label]
            ratio = f"{wall / ref:.2f}" if ref else "n/a"
            fails = r["failures"]
            fails_s = "n/a" if fails is None else (f"{fails:.0f}" if math.isfinite(fails) else "yes")
            rc_note = "" if all(x["rc"] == 0 for x in g["runs"]) else " (rc!=0)"
            out.append(f"| {tol} | {label} | {fmt_time(wall)}{star} | {fmt_time(min(g['proc']))} | "
                       f"{fmt_nfe(g['kind'], r['nfe_mean'], r['nfe_max'])} | {err.mean():.2e} | "
                       f"{err.max():.2e} | {fails_s}{rc_note} | {ratio} |")
        sd = {k: v[0] for k, v in best.items() if k.startswith("sdeflow ")}
        fastest = min(sd, key=sd.get) if sd else None
        if ref:
            for m, target in TARGETS.items():
                if m in best:
                    sp = best[m][0] / ref
                    verdict = "met" if sp >= target else "NOT met"
                    acc = ""
                    ref_err = maxerr.get(f"sdeflow {REFERENCE}")
                    if ref_err is not None and m in maxerr:
                        acc = (f"; max abs err {maxerr[m]:.1e} vs sdeflow {REFERENCE} {ref_err:.1e}"
                               + (" (baseline less accurate: compare at a tighter baseline tolerance too)"
                                  if maxerr[m] > 3 * ref_err else ""))
                    notes.append(f"rtol=atol={tol}: {m} / sdeflow {REFERENCE} = {sp:.2f}x "
                                 f"(target >= {target:g}x: {verdict}{acc})")
        if fastest and fastest != f"sdeflow {REFERENCE}":
            for m in TARGETS:
                if m in best:
                    notes.append(f"rtol=atol={tol}: {m} / fastest sdeflow solver ({fastest}) = "
                                 f"{best[m][0] / sd[fastest]:.2f}x")
    out.append("")
    out.append("NFE: sdeflow gives mean / max right-hand-side evaluations per sample; the baselines solve "
               "the whole batch as one system, so theirs is the number of batch evaluations. "
               "Errors are |(-nll) - log p_0(x)| in nats against the exact mixture density (prior exact). "
               "Wall time: best of the repetitions (sdeflow: its wall_time_s attribute; baselines: solve "
               "time without file reading and setup); process wall: best end-to-end time of the command.")
    if notes:
        out.append("")
        out.extend(f"- {n}" for n in notes)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
