#!/usr/bin/env bash
# Benchmarks libslm (slm-bench) against llama.cpp (benchmarks/peer_llama.mjs, node-llama-cpp) on
# the same GGUF file and thread counts. The two engines run alternately, one thread count at a
# time, for several rounds, so that drift (thermal, other load) hits both; the samples of all
# rounds are pooled. Prints one markdown table with both figures and the ratio libslm/llama.cpp,
# in tokens per second of wall clock and, for shared machines, per CPU-second of the process.
#
# usage: benchmarks/compare.sh -m MODEL.gguf [-p 512] [-n 128] [-t 1,2] [-r 3] [--rounds 2]
#                              [--build DIR] [--isa NAME] [--keep DIR]
#        benchmarks/compare.sh --from DIR   (only the table, from the JSON files a --keep run left)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="" prompt=512 gen=128 threads=1 reps=3 rounds=2 build="$root/build" isa="" keep="" from=""
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model="$2"; shift 2 ;;
    -p) prompt="$2"; shift 2 ;;
    -n) gen="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    -r) reps="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --isa) isa="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --from) from="$2"; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -n "$from" ]; then
  out="$from"
  rounds=0
else
  [ -n "$model" ] || { echo "compare.sh: no model (-m FILE)" >&2; exit 2; }
  [ -f "$model" ] || { echo "compare.sh: $model: no such file" >&2; exit 1; }
  bench="$build/tools/slm-bench"
  [ -x "$bench" ] || { echo "compare.sh: $bench not built (cmake --build $build --target slm-bench)" >&2; exit 1; }
  if [ -n "$keep" ]; then
    mkdir -p "$keep"
    out="$keep"
  else
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
  fi
fi

isa_args=()
[ -n "$isa" ] && isa_args=(--isa "$isa")
for round in $(seq 1 "$rounds"); do
  for t in ${threads//,/ }; do
    echo "compare.sh: round $round, $t thread(s): libslm" >&2
    "$bench" -m "$model" -p "$prompt" -n "$gen" -t "$t" -r "$reps" "${isa_args[@]}" -o json \
      >"$out/slm-$round-$t.json"
    echo "compare.sh: round $round, $t thread(s): llama.cpp" >&2
    node "$root/benchmarks/peer_llama.mjs" -m "$model" -p "$prompt" -n "$gen" -t "$t" -r "$reps" -o json \
      >"$out/llama-$round-$t.json"
  done
done

node - "$out" <<'EOF'
const fs = require("fs"), path = require("path");
const dir = process.argv[2];
const pool = {};  // key -> {slm: [t/s...], llama: [...], slmCpu: [t per CPU-s...], llamaCpu: [...]}
let variant = "?", isa = "?", type = "?";
for (const f of fs.readdirSync(dir).sort()) {
  if (!/^(slm|llama)-.*\.json$/.test(f) || fs.statSync(path.join(dir, f)).size === 0) continue;
  const engine = f.startsWith("slm-") ? "slm" : "llama";
  for (const r of JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"))) {
    const test = r.n_prompt > 0 ? `pp${r.n_prompt}` : `tg${r.n_gen}`;
    const key = `${test}|${r.n_threads}`;
    pool[key] ??= {slm: [], llama: [], slmCpu: [], llamaCpu: []};
    pool[key][engine].push(...r.samples_ts);
    const n = r.n_prompt + r.n_gen;
    pool[key][engine + "Cpu"].push(...(r.samples_cpu_s ?? []).map((c) => n / c));
    if (r.cpu_variant) variant = r.cpu_variant;
    if (r.isa) isa = r.isa;
    if (r.model_type) type = r.model_type;
  }
}
const stat = (xs) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return {m, sd};
};
console.log(`model: ${type}; libslm ISA ${isa}; llama.cpp (node-llama-cpp) CPU variant ${variant}`);
console.log("| test | threads | libslm t/s | llama.cpp t/s | ratio | libslm t/CPU-s | llama.cpp t/CPU-s | ratio |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
const keys = Object.keys(pool).sort((a, b) => {
  const [ta, na] = a.split("|"), [tb, nb] = b.split("|");
  return ta.slice(0, 2).localeCompare(tb.slice(0, 2)) || Number(na) - Number(nb) || ta.localeCompare(tb);
});
for (const k of keys) {
  const [test, t] = k.split("|");
  const a = stat(pool[k].slm), b = stat(pool[k].llama);
  const c = stat(pool[k].slmCpu), d = stat(pool[k].llamaCpu);
  console.log(`| ${test} | ${t} | ${a.m.toFixed(2)} ± ${a.sd.toFixed(2)} | ${b.m.toFixed(2)} ± ${b.sd.toFixed(2)} | ${(a.m / b.m).toFixed(2)} | ` +
              `${c.m.toFixed(2)} ± ${c.sd.toFixed(2)} | ${d.m.toFixed(2)} ± ${d.sd.toFixed(2)} | ${(c.m / d.m).toFixed(2)} |`);
}
EOF
