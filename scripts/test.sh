#!/usr/bin/env bash
# Builds libslm and runs the whole test suite: scripts/test.sh [build-dir] [extra cmake args...]
# On a fresh machine it first installs the Debian packages and the pinned npm references
# (llama.cpp through node-llama-cpp, the Hugging Face tokenizers) that the tests compare against.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
shift || true
"$root/scripts/install-deps.sh"
if [ ! -d "$root/tests/node/node_modules/node-llama-cpp" ]; then
  (cd "$root/tests/node" && npm ci --no-audit --no-fund --loglevel=error)
fi
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure -j "$(nproc)"
