#!/usr/bin/env bash
# One FP-Noise / FP-Drift training step (objective bound, the process trains) against one VP step (dsm, likelihood
# weighting) with the same network at batch 1024 (issue 16's speed target: at most 1.5x):
#
#   bench/run_fp_speed.sh [iterations] [repeats] [build_dir]        (defaults: 1000, 3, build)
#
# MLP 3 x 128 on the 2-D checkerboard, one thread, CPU; steps/s as sdeflow train reports it (its own wall clock over
# the run, checkpoint excluded); the best of the repeats. Prints a markdown table.
set -euo pipefail
iterations="${1:-1000}"
repeats="${2:-3}"
build="${3:-build}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
declare -A best
for ((r = 0; r < repeats; ++r)); do
  for process in vp fp-noise fp-drift; do
    rate=$("$build/bin/sdeflow" train --process "$process" --data checkerboard --iters "$iterations" --batch 1024 \
      --width 128 --depth 3 --weighting likelihood --device cpu --checkpoint-every "$iterations" --seed 0 \
      --out "$work/$process.h5" | sed -n 's/.*, \([0-9.]*\) steps\/s.*/\1/p')
    if [ -z "${best[$process]:-}" ] || awk "BEGIN{exit !($rate > ${best[$process]})}"; then best[$process]=$rate; fi
  done
done
echo "| process | objective | steps/s (best of $repeats) | time per step / VP's |"
echo "|---|---|---|---|"
for process in vp fp-noise fp-drift; do
  objective=$([ "$process" = vp ] && echo dsm || echo "bound (joint)")
  ratio=$(awk "BEGIN{printf \"%.2f\", ${best[vp]} / ${best[$process]}}")
  echo "| $process | $objective | ${best[$process]} | $ratio |"
done
