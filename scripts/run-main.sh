#!/usr/bin/env bash
# The main job on a fresh clone: builds slm-run and runs it on the model shipped in weights/.
# Usage: scripts/run-main.sh [extra slm-run options]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target slm-run
model="$root/weights/slm-demo-random-q8_0.gguf"
prompt='[ 3521.118201] EXT4-fs error (device nvme0n1p2): ext4_find_entry:1682: inode #2: comm ls: reading directory lblock 0'
echo "== slm-run on $(basename "$model") (random weights: the text is meaningless, the engine is real)" >&2
"$build/tools/slm-run" -m "$model" -p "$prompt" -n 64 --temp 0 --verbose -t "$(nproc)" "$@"
echo
