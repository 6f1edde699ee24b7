#!/usr/bin/env bash
# Prepares what a GPU machine without SUNDIALS or CLI11 needs to build sdeflow (docs/building.md, "GPU
# machines"): downloads Debian 12's SUNDIALS and CLI11 packages (apt-get download: no installation) into .debs/
# and extracts them with dpkg -x into .debs/root. Run on the Debian machine; .debs/ is git-ignored and is carried
# to the GPU machine with the working tree.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$root/.debs/root"
cd "$root/.debs"
# Every SUNDIALS library package (their CMake targets file checks that each library it names exists), as
# installed here by scripts/install-deps.sh, plus CLI11's headers.
mapfile -t packages < <(dpkg-query -W -f='${Status} ${Package}\n' 'libsundials-*' 2>/dev/null |
                        awk '$3 == "installed" { print $4 }' | sort -u)
packages+=(libcli11-dev)
apt-get download "${packages[@]}"
for deb in ./*.deb; do dpkg -x "$deb" root; done
rm -f ./*.deb   # only the extracted tree is needed (it travels with the working tree: keep it small)
echo "gpu-debs: extracted ${#packages[@]} packages into $root/.debs/root"
