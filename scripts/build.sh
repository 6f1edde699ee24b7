#!/usr/bin/env bash
# Configures (Release by default) and builds sdeflow into build/ (or $SDEFLOW_BUILD_DIR), finding LibTorch
# in the project's Python environment. Extra arguments go to CMake's configure step, e.g.
#   scripts/build.sh -DSDEFLOW_SANITIZE=ON      (with SDEFLOW_BUILD_DIR=build-asan; see docs/building.md)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SDEFLOW_VENV:-$HOME/.local/share/sdeflow/venv}"
build="${SDEFLOW_BUILD_DIR:-$root/build}"
if [ ! -x "$venv/bin/python" ]; then
  echo "build: no Python environment at $venv; run scripts/install-deps.sh first" >&2
  exit 2
fi
torch_prefix="$("$venv/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
jobs="${SDEFLOW_JOBS:-$(nproc)}"
# The wheel's CMake files otherwise probe for a GPU and print warnings; no CUDA code of ours is compiled.
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${SDEFLOW_BUILD_TYPE:-Release}" \
  -DCMAKE_PREFIX_PATH="$torch_prefix" -DPython3_EXECUTABLE="$venv/bin/python" "$@"
cmake --build "$build" -j "$jobs"
