#!/usr/bin/env bash
# The exact commands that produced the models shipped in models/ (docs: models/README.md). Run from anywhere
# after scripts/build.sh; takes a few minutes on 2 CPU cores. One LibTorch thread: with more, the result
# depends on the thread count's summation order (the run is still reproducible for a fixed count).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
sdeflow="${SDEFLOW_BUILD_DIR:-$root/build}/bin/sdeflow"
python="${SDEFLOW_VENV:-$HOME/.local/share/sdeflow/venv}/bin/python"
export OMP_NUM_THREADS=1

# 2-D checkerboard, MLP 3 x 128, likelihood weighting (importance-sampled t), VP.
"$sdeflow" train --data checkerboard --arch mlp --width 128 --depth 3 --process vp --iters 20000 --batch 1024 \
  --lr 2e-3 --weighting likelihood --ema 0.999 --log-every 100 --seed 0 --device cpu --quiet \
  --out models/checkerboard-mlp.h5

# 8x8 digits (scikit-learn's, converted with a fixed split), dequantised to [-1, 1).
mkdir -p data
"$python" scripts/digits_to_hdf5.py --out-dir data
"$sdeflow" train --data data/digits-train.h5 --arch mlp --width 128 --depth 3 --process vp --iters 10000 \
  --batch 256 --lr 2e-3 --weighting variance --ema 0.999 --log-every 100 --seed 0 --device cpu --quiet \
  --out models/digits-mlp.h5
