#!/usr/bin/env bash
# Fuzzes the GGUF reader with libFuzzer (clang, ASan+UBSan) for a bounded time.
#   scripts/fuzz.sh [BUILD_DIR] [SECONDS]      (defaults: build-fuzz, 60)
# Exits non-zero when the fuzzer finds a crash, a sanitizer report, a timeout or an OOM; the
# input that triggered it is left in BUILD_DIR/fuzz-artifacts/ (replay: fuzz_gguf FILE).
# The corpus grows in BUILD_DIR/fuzz-corpus/gguf across runs; seeds are regenerated each run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build-fuzz}"
seconds="${2:-60}"
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number, got '$seconds'" >&2; exit 2 ;; esac

"$root/scripts/install-deps.sh" --fuzz
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DSLM_BUILD_FUZZERS=ON -DSLM_SANITIZE=address,undefined \
  -DSLM_BUILD_TESTS=OFF -DSLM_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build" --target fuzz_gguf fuzz_gguf_seeds -j "$(nproc)"

seeds="$build/fuzz-seeds/gguf"
corpus="$build/fuzz-corpus/gguf"
artifacts="$build/fuzz-artifacts"
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus" "$artifacts"
"$build/tests/fuzz/fuzz_gguf_seeds" "$seeds"

echo "fuzz.sh: fuzzing the GGUF reader for ${seconds}s (corpus $corpus)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}:halt_on_error=1"
# New inputs go to the first directory (the corpus); the seeds are read only.
"$build/tests/fuzz/fuzz_gguf" "$corpus" "$seeds" \
  -dict="$root/tests/fuzz/gguf.dict" \
  -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$artifacts/" -print_final_stats=1
