#!/usr/bin/env bash
# The main job on a fresh clone: builds slm-run and runs it on the model shipped in weights/.
# Usage: scripts/run-main.sh [extra slm-run options]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target slm-run
model="$root/weights/slm-logexplainer-q8_0.gguf"
excerpt="$root/weights/example-ext4.log"
system='You explain Linux log excerpts: say what happened, how severe it is and what to check.'
echo "== the log excerpt ($excerpt)" >&2
cat "$excerpt" >&2
echo "== slm-run on $(basename "$model"): the project's own tiny DeepSeek-architecture log explainer (weights/README.md)" >&2
"$build/tools/slm-run" -m "$model" -f "$excerpt" --system "$system" --temp 0 -n 400 -t "$(nproc)" --verbose "$@"
echo
