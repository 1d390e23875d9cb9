#!/bin/bash
# Builds the C API thread tests with ThreadSanitizer and runs them: two contexts on one model in
# two threads, two models in one process, cancel from another thread, the thread pool.
# Usage: scripts/tsan.sh [BUILD_DIR]   (default: build-tsan beside the sources)
# Time: the tests take ~12 s; building from a cold cache ~18 min on 2 busy cores.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-tsan}
jobs=${SLM_JOBS:-2}
start=$(date +%s)
mkdir -p "$build"
cmake -S "$src" -B "$build" -G Ninja -DSLM_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DSLM_BUILD_TOOLS=OFF > "$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" --target test_capi test_thread_pool -j"$jobs"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
"$build/tests/test_capi" -tc="*two contexts*,*cancel*,*log callbacks*"
"$build/tests/test_thread_pool"
echo "tsan.sh: OK in $(( $(date +%s) - start )) s"
