#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job on its built-in default: sample a 2-D Gaussian
# mixture with the reverse VP SDE, write samples and a trajectory to HDF5, print a summary.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
"${SDEFLOW_BUILD_DIR:-$root/build}/bin/sdeflow" sample --out "${1:-sdeflow-demo.h5}" --save-every 100
