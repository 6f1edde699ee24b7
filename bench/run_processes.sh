#!/usr/bin/env bash
# VP vs FP (constant random matrices) vs CLD with the same network and budget (issue 15's comparison):
#
#   bench/run_processes.sh [iterations] [build_dir]        (defaults: 5000, build)
#
# Trains an MLP 3 x 128 (likelihood weighting, importance-sampled t, EMA 0.999, batch 512, lr 2e-3, seed 0) on
# the 2-D checkerboard under each process, then evaluates the probability-flow NLL (dopri5, rtol = atol = 1e-5,
# exact trace, eps = 1e-5) of 2000 held-out checkerboard points (seed 7); for CLD the velocity bound with 4 draws
# per row. Prints a markdown table (NLL mean +- SE in nats, bits/dim, training and NLL wall time). One thread.
set -euo pipefail
iterations="${1:-5000}"
build="${2:-build}"
sdeflow="$build/bin/sdeflow"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
"$sdeflow" data --name checkerboard --n 2000 --seed 7 --out "$work/test.h5" > /dev/null
echo "| process | NLL (nats) | bits/dim | nll_kind | train (s) | NLL (s) |"
echo "|---|---|---|---|---|---|"
for process in "vp" "fp --fp-seed 1" "cld"; do
  name="${process%% *}"
  start=$(date +%s.%N)
  "$sdeflow" train --process $process --data checkerboard --arch mlp --width 128 --depth 3 --iters "$iterations" \
    --batch 512 --lr 2e-3 --weighting likelihood --ema 0.999 --log-every 100 --checkpoint-every "$iterations" \
    --seed 0 --device cpu --quiet --out "$work/$name.h5"
  mid=$(date +%s.%N)
  extra=""
  if [ "$name" = "cld" ]; then extra="--velocity-samples 4"; fi
  "$sdeflow" nll --model "$work/$name.h5" --data "$work/test.h5" --solver dopri5 --rtol 1e-5 --atol 1e-5 \
    --trace exact --eps 1e-5 --batch 2000 --quiet $extra --out "$work/$name-nll.h5"
  end=$(date +%s.%N)
  "${SDEFLOW_VENV:-$HOME/.local/share/sdeflow/venv}/bin/python" - "$work/$name-nll.h5" "$process" \
    "$start" "$mid" "$end" <<'PY'
import sys, h5py
path, process, start, mid, end = sys.argv[1:]
train, nll = float(mid) - float(start), float(end) - float(mid)
with h5py.File(path, "r") as f:
    a = f.attrs
    kind = a["nll_kind"].decode() if isinstance(a["nll_kind"], bytes) else a["nll_kind"]
    print(f"| {process} | {a['nll_mean']:.4f} +- {a['nll_stderr']:.4f} | {a['bpd_mean']:.4f} | {kind} | "
          f"{float(train):.1f} | {float(nll):.1f} |")
PY
done
