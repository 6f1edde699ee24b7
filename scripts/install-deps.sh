#!/usr/bin/env bash
# Installs everything sdeflow needs on a Debian 12 machine: Debian packages (apt) and one Python
# virtual environment (LibTorch from PyPI's torch wheel, plus the Python tools and benchmark peers).
# Idempotent and non-interactive: a second run on the same machine downloads nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SDEFLOW_VENV:-$HOME/.local/share/sdeflow/venv}"

apt_packages=(
  build-essential cmake pkg-config
  libsundials-dev libeigen3-dev libhdf5-dev libboost-test-dev libcli11-dev libtomlplusplus-dev
  python3 python3-venv python3-dev
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: apt packages missing: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: apt packages present"
fi

requirements="$here/requirements.txt"
stamp="$venv/.sdeflow-requirements"
if [ -f "$stamp" ] && cmp -s "$stamp" "$requirements"; then
  echo "install-deps: python environment up to date at $venv"
else
  if [ ! -x "$venv/bin/python" ]; then
    echo "install-deps: creating python environment at $venv"
    mkdir -p "$(dirname "$venv")"
    /usr/bin/python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$requirements"
  cp "$requirements" "$stamp"
fi
"$venv/bin/python" -c 'import torch; print("install-deps: torch", torch.__version__, "cmake prefix", torch.utils.cmake_prefix_path)'
