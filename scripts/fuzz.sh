#!/usr/bin/env bash
# Fuzzes the GGUF reader (or the JSON parser) with libFuzzer (clang, ASan+UBSan), time-bounded.
#   scripts/fuzz.sh [BUILD_DIR] [SECONDS] [gguf|json]      (defaults: build-fuzz, 60, gguf)
# Exits non-zero when the fuzzer finds a crash, a sanitizer report, a timeout or an OOM; the
# input that triggered it is left in BUILD_DIR/fuzz-artifacts/ (replay: fuzz_<target> FILE).
# The corpus grows in BUILD_DIR/fuzz-corpus/<target> across runs; seeds are regenerated.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build-fuzz}"
seconds="${2:-60}"
target="${3:-gguf}"
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number, got '$seconds'" >&2; exit 2 ;; esac
case "$target" in gguf|json) ;; *) echo "fuzz.sh: target must be gguf or json, got '$target'" >&2; exit 2 ;; esac

"$root/scripts/install-deps.sh" --fuzz
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DSLM_BUILD_FUZZERS=ON -DSLM_SANITIZE=address,undefined \
  -DSLM_BUILD_TESTS=OFF -DSLM_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build" --target "fuzz_$target" fuzz_gguf_seeds -j "$(nproc)"

seeds="$build/fuzz-seeds/$target"
corpus="$build/fuzz-corpus/$target"
artifacts="$build/fuzz-artifacts"
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus" "$artifacts"
if [ "$target" = gguf ]; then
  "$build/tests/fuzz/fuzz_gguf_seeds" "$seeds"
else
  # Small tokenizer.json-shaped documents.
  printf '%s' '{"model":{"type":"BPE","vocab":{"a":0,"\u0120b":1},"merges":["a b",["c","d"]]}}' >"$seeds/tok.json"
  printf '%s' '[1,-0,2.5e-3,1e300,"\ud83d\ude00",true,false,null,{},[]]' >"$seeds/mixed.json"
fi

echo "fuzz.sh: fuzzing fuzz_$target for ${seconds}s (corpus $corpus)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}:halt_on_error=1"
# New inputs go to the first directory (the corpus); the seeds are only read.
"$build/tests/fuzz/fuzz_$target" "$corpus" "$seeds" \
  -dict="$root/tests/fuzz/$target.dict" \
  -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$artifacts/" -print_final_stats=1
