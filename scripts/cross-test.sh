#!/usr/bin/env bash
# Cross-builds the kernel tests for arm64 (NEON, NEON-dotprod) and runs them under qemu-aarch64:
# scripts/cross-test.sh [build-dir]. qemu's default CPU ("max") has dotprod and i8mm, so every
# arm64 level runs; test_kernels also forces the plain NEON and scalar levels.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-arm64}"
"$root/scripts/install-deps.sh" --cross
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
  -DCMAKE_CROSSCOMPILING_EMULATOR="qemu-aarch64;-L;/usr/aarch64-linux-gnu" \
  -DSLM_WERROR=ON -DSLM_BUILD_TOOLS=OFF >/dev/null
tests=(test_quant test_quant_roundtrip test_kernels test_kernels_neon test_thread_pool)
cmake --build "$build" -j "$(nproc)" --target "${tests[@]}"
cd "$build"
ctest --output-on-failure -j "$(nproc)" -R "^($(IFS='|'; echo "${tests[*]}"))\$"
