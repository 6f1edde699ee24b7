#!/usr/bin/env bash
# Builds sdeflow and its tests on a GPU machine against the CUDA-enabled LibTorch of the machine's own PyTorch
# (CMake files under torch.utils.cmake_prefix_path), with SUNDIALS and CLI11 from .debs/root (scripts/gpu-debs.sh)
# when the system has none. Then runs the test suite; CUDA tests run instead of skipping. docs/building.md.
#   SDEFLOW_PYTHON   the Python whose torch to use (default: python3)
#   TORCH_CUDA_ARCH_LIST   default 9.0 (H100/H200)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${SDEFLOW_PYTHON:-python3}"
build="${SDEFLOW_BUILD_DIR:-$root/build-gpu}"
torch_prefix="$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
"$python" -c 'import torch; print("build-gpu: torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available())'
prefixes="$torch_prefix"
debs="$root/.debs/root/usr"
if [ -d "$debs" ]; then
  prefixes="$prefixes;$debs"
  export LD_LIBRARY_PATH="$debs/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CPATH="$debs/include${CPATH:+:$CPATH}"
fi
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefixes" \
  -DPython3_EXECUTABLE="$(command -v "$python")" "$@"
cmake --build "$build" -j "${SDEFLOW_JOBS:-$(nproc)}"
cd "$build" && ctest -j "${SDEFLOW_JOBS:-$(nproc)}" --output-on-failure -E '^consumer_'
