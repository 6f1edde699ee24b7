#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite through CTest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
cd "${SDEFLOW_BUILD_DIR:-$root/build}"
# Tests run one LibTorch thread each (OMP_NUM_THREADS=1, set per test in tests/CMakeLists.txt), as many
# at a time as there are cores: no thread oversubscription, whatever else the machine runs.
ctest --output-on-failure --timeout 1200 -j "$(nproc)" "$@"
