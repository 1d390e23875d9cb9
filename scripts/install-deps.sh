#!/usr/bin/env bash
# Installs the Debian packages that building and testing libslm need, skipping those present.
# Usage: scripts/install-deps.sh [--bench] [--fuzz] [--cross] [--train]
set -euo pipefail
packages=(cmake ninja-build g++ ccache doctest-dev unicode-data nodejs npm)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(libbenchmark-dev libeigen3-dev libdnnl-dev) ;;
    --fuzz) packages+=(clang libclang-rt-14-dev) ;;
    --cross) packages+=(g++-aarch64-linux-gnu qemu-user) ;;
    --train) packages+=(python3-torch python3-regex python3-numpy libopenblas0-pthread) ;;
    *) echo "install-deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  if [ "$p" = nodejs ] || [ "$p" = npm ]; then
    # Node may come from elsewhere (the image ships one); only install when absent.
    command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue
  fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps.sh: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
