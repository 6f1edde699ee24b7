#!/usr/bin/env bash
# FP-Diffusion's small experiments (docs/fp_diffusion.md, "Experiments"):
#
#   bench/run_fp_experiments.sh plane|toy|digits [iterations] [build_dir] [figure_dir]
#
#   plane   the 3-D plane of Sec. 4.1: VP, FP-Noise (joint) without and with the probability-flow regulariser
#           (weights 1e-3, 1e-2, 1e-1), and FP-Field (state-dependent D(x)); probability-flow trajectories (heun, 200 steps)
#           of 2000 samples analysed by scripts/fp_plane.py (cosine to the OT direction, path length) + a figure.
#   toy     checkerboard: VP (dsm), VP (the bound: fp-noise --strategy fixed), CLD, FP-Noise / FP-Drift joint and
#           mix, FP-Field joint; held-out NLL of 2000 points (dopri5, rtol = atol = 1e-5, exact trace).
#   digits  8x8 digits (dequantised, bits/dim of the 360 test images; Hutchinson-Rademacher trace, 1 probe,
#           dopri5 rtol = atol = 1e-5): VP, VP (bound), CLD, FP-Noise / FP-Drift joint and mix.
#
# Every run of a table uses the same score network (MLP, same width, depth and embedding), optimiser, step budget,
# batch and seed; mix trains jointly for the first half. The bound column is the training objective (the whole
# likelihood bound, nats per sample, data space) averaged over the last 20 % of the loss log, +- the standard error
# of those log blocks; "-" where the run trains by denoising score matching (no bound). One thread per command.
set -euo pipefail
part="${1:?plane|toy|digits}"
iterations="${2:-}"
build="${3:-build}"
figures="${4:-docs/img}"
sdeflow="$build/bin/sdeflow"
python="${SDEFLOW_VENV:-$HOME/.local/share/sdeflow/venv}/bin/python"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "keeping the run files in $work" >&2; fi
export OMP_NUM_THREADS=1

# row LABEL MODEL NLLFILE TRAIN_S NLL_S: one markdown row.
row() {
  "$python" - "$@" <<'PY'
import sys, h5py, numpy as np
label, model, nll, train_s, nll_s = sys.argv[1:]
with h5py.File(model, "r") as f:
    objective = f["training"].attrs.get("objective", b"dsm")
    objective = objective.decode() if isinstance(objective, bytes) else objective
    loss = f["training/loss"][...] if "loss" in f["training"] else None
with h5py.File(nll, "r") as f:
    a = {key: float(f.attrs[key]) for key in ("nll_mean", "nll_stderr", "bpd_mean", "bpd_stderr")}
bpd_per_nat = a["bpd_mean"] / a["nll_mean"] if a["nll_mean"] != 0 else float("nan")
bound = "-"
if objective == "bound" and loss is not None and len(loss) >= 5:
    tail = loss[-max(5, len(loss) // 5):]
    # model-space nats -> data space: the same affine shift as the NLL (nll_data - nll_model is constant per file),
    # applied by the caller's LOGDET environment variable (0 for real data at scale 1).
    import os
    shift = float(os.environ.get("LOGDET", "0"))
    m, se = tail.mean() + shift, tail.std(ddof=1) / np.sqrt(len(tail))
    bound = f"{m:.4f} +- {se:.4f}" if "BPD" not in os.environ else f"{m * bpd_per_nat:.4f} +- {se * bpd_per_nat:.4f}"
value = f"{a['bpd_mean']:.4f} +- {a['bpd_stderr']:.4f}" if "BPD" in __import__("os").environ else \
        f"{a['nll_mean']:.4f} +- {a['nll_stderr']:.4f}"
print(f"| {label} | {value} | {bound} | {float(train_s):.0f} | {float(nll_s):.0f} |")
PY
}

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

case "$part" in
plane)
  iterations="${iterations:-3000}"
  "$python" "$here/../scripts/fp_plane.py" data --n 20000 --seed 0 --out "$work/plane.h5" > /dev/null
  common=(--data "$work/plane.h5" --arch mlp --width 128 --depth 3 --embedding-dim 32 --iters "$iterations"
          --batch 256 --lr 2e-3 --ema 0.999 --eps 1e-3 --seed 0 --device cpu --log-every 50
          --checkpoint-every "$iterations" --quiet)
  labels=() files=()
  for spec in "vp|--process vp --weighting likelihood" \
              "fp-noise|--process fp-noise" \
              "fp-noise + reg 1e-3|--process fp-noise --reg-kinetic 1e-3 --reg-jacobian 1e-3" \
              "fp-noise + reg 1e-2|--process fp-noise --reg-kinetic 1e-2 --reg-jacobian 1e-2" \
              "fp-noise + reg 1e-1|--process fp-noise --reg-kinetic 1e-1 --reg-jacobian 1e-1" \
              "fp-field|--process fp-field --metric-width 16 --simulation-steps 8"; do
    label="${spec%%|*}" args="${spec#*|}"
    name="$(echo "$label" | tr -c 'a-z0-9\n' '_')"
    # shellcheck disable=SC2086
    "$sdeflow" train $args "${common[@]}" --out "$work/$name.h5"
    # A run whose flow diverges for some samples still writes them (NaN; exit 2): the analysis counts them.
    "$sdeflow" sample --model "$work/$name.h5" --solver heun --steps 200 --save-every 1 --n 2000 --seed 1 --quiet \
      --out "$work/$name-samples.h5" || echo "$label: sampling reported failures (counted below)" >&2
    labels+=(--label "$label") files+=(--samples "$work/$name-samples.h5")
    "$python" - "$work/$name.h5" "$label" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    p = f["process"]
    if "rinv" in p:
        print(f"{sys.argv[2]}: eigenvalues of D {np.round(np.linalg.eigvalsh(p['rinv'][...]), 3)}", file=sys.stderr)
PY
  done
  "$python" "$here/../scripts/fp_plane.py" analyse "${labels[@]}" "${files[@]}" --figure "$figures/fp_plane.png"
  ;;
toy|digits)
  if [ "$part" = toy ]; then
    iterations="${iterations:-3000}"
    "$sdeflow" data --name checkerboard --n 2000 --seed 7 --out "$work/test.h5" > /dev/null
    train_data=checkerboard test_data="$work/test.h5"
    net=(--arch mlp --width 128 --depth 3 --embedding-dim 32)
    train_extra=()
    nll=(--solver dopri5 --rtol 1e-5 --atol 1e-5 --trace exact --eps 1e-5 --batch 2000)
    export LOGDET=0
    echo "| run | held-out NLL (nats) | bound (training, nats) | train (s) | NLL (s) |"
  else
    iterations="${iterations:-4000}"
    "$python" "$here/../scripts/digits_to_hdf5.py" --out-dir "$work" > /dev/null
    train_data="$work/digits-train.h5" test_data="$work/digits-test.h5"
    net=(--arch mlp --width 256 --depth 3 --embedding-dim 32)
    nll=(--solver dopri5 --rtol 1e-5 --atol 1e-5 --trace hutchinson-rademacher --probes 1 --eps 1e-3 --batch 360)
    # eps = 1e-3 in training and the NLL: sigma(eps) = 0.01 is far below the dequantisation bins (2/17 wide), and a
    # 64-D MLP's score below it is unreliable (eps = 1e-5 gave single rows with absurd NLLs).
    train_extra=(--eps 1e-3)
    # model space y = 2 (x + u) / 17 - 1: -log P(x) = -log p(y) - 64 log(2 / 17)
    export LOGDET="$("$python" -c 'import math; print(-64 * math.log(2 / 17))')" BPD=1
    echo "| run | test bits/dim | bound (training, bits/dim) | train (s) | NLL (s) |"
  fi
  echo "|---|---|---|---|---|"
  half=$((iterations / 2))
  specs=("vp (dsm)|--process vp --weighting likelihood"
         "vp (bound)|--process fp-noise --strategy fixed"
         "cld (dsm)|--process cld --weighting likelihood"
         "fp-noise joint|--process fp-noise --strategy joint"
         "fp-noise mix|--process fp-noise --strategy mix --forward-steps $half"
         "fp-drift joint|--process fp-drift --strategy joint"
         "fp-drift mix|--process fp-drift --strategy mix --forward-steps $half")
  if [ "$part" = toy ]; then specs+=("fp-field joint|--process fp-field --metric-width 16 --simulation-steps 8 --eps 1e-3"); fi
  for spec in "${specs[@]}"; do
    label="${spec%%|*}" args="${spec#*|}"
    name="$(echo "$label" | tr -c 'a-z0-9\n' '_')"
    extra=()
    if [[ "$label" == cld* ]]; then extra=(--velocity-samples 4); fi
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$sdeflow" train $args --data "$train_data" "${net[@]}" --iters "$iterations" --batch 256 --lr 2e-3 --ema 0.999 \
      --seed 0 --device cpu --log-every 50 --checkpoint-every "$iterations" --quiet "${train_extra[@]}" \
      --out "$work/$name.h5"
    t1=$(date +%s.%N)
    "$sdeflow" nll --model "$work/$name.h5" --data "$test_data" "${nll[@]}" "${extra[@]}" --seed 3 --quiet \
      --out "$work/$name-nll.h5"
    t2=$(date +%s.%N)
    row "$label" "$work/$name.h5" "$work/$name-nll.h5" "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")"
  done
  ;;
*)
  echo "usage: $0 plane|toy|digits [iterations] [build_dir] [figure_dir]" >&2
  exit 2
  ;;
esac
