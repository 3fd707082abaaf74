#!/usr/bin/env bash
# Install the Debian packages batchlab needs (as root, or through sudo).
# Only missing packages are installed; `apt-get update` runs once, first.
# Usage: scripts/deps.sh [--golden]   (--golden adds python3-torch, needed only to
#                                      regenerate tests/golden/*.safetensors)
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libopenblas-dev zlib1g-dev libcjson-dev
      libcmocka-dev gnuplot-nox dataset-fashion-mnist libmicrohttpd-dev libcurl4-openssl-dev
      libopenmpi-dev openmpi-bin clang libclang-rt-dev iproute2)
if [ "${1:-}" = "--golden" ]; then pkgs+=(python3-torch python3-numpy); fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
