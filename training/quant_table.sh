#!/usr/bin/env bash
# Perplexity and KL divergence of the trained model's quantizations against its F16 GGUF (the
# table in docs/QUANTIZATION.md). Needs the training run's Hugging Face export and the held-out
# text; everything is made with the project's own tools.
#
#   training/quant_table.sh HF_DIR HELDOUT_JSONL BUILD_DIR OUT_DIR
#
# HF_DIR: $R/run/hf of training/README.md; HELDOUT_JSONL: prompt/completion lines, e.g.
# tests/data/logexplainer/heldout.jsonl (200 held-out examples); BUILD_DIR: a build with the
# tools. Scored: the completion tokens only (slm-perplexity --jsonl), each example from an empty
# cache -- the answers' loss given the log excerpts, as the model was trained (its prompts, log
# lines full of random hex and names, were never a training target).
set -euo pipefail
hf=$1 heldout=$2 build=$3 out=$4
mkdir -p "$out"
threads=$(nproc)
"$build/tools/slm-convert" "$hf" -o "$out/f16.gguf" --outtype F16 --keep-kv-b >/dev/null
echo "| type | size (MiB) | bits/weight | PPL | ln(PPL/PPL_F16) | mean KL | p99 KL | same top token |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for type in F16 Q8_0 Q6_K Q5_K_M Q4_K_M Q4_0; do
  model="$out/f16.gguf"
  if [ "$type" != F16 ]; then
    model="$out/$type.gguf"
    "$build/tools/slm-quantize" -t "$threads" "$out/f16.gguf" "$model" "$type" > "$out/$type.quantize.log" 2>&1
  fi
  "$build/tools/slm-perplexity" -m "$model" --jsonl "$heldout" --kl-base "$out/f16.gguf" -t "$threads" \
    -o json > "$out/$type.json"
  /usr/bin/python3 - "$out/$type.json" "$model" "$type" <<'EOF'
import json, os, sys
j = json.load(open(sys.argv[1]))
size = os.path.getsize(sys.argv[2]) / 2**20
kl = j["kl"]
log = sys.argv[2].replace(".gguf", ".quantize.log")
bpw = "16.000"
if os.path.exists(log):
    for line in open(log):
        if line.startswith("weights:"):  # "weights: A MiB -> B MiB, X -> Y bits per weight (...)"
            bpw = line.split("->")[2].split()[0]
print("| %s | %.2f | %s | %.4f ± %.4f | %+.4f ± %.4f | %.5f | %.4f | %.2f%% |" % (
    sys.argv[3], size, bpw, j["ppl"], j["ppl_err"], kl["ln_ppl_ratio"], kl["ln_ppl_ratio_stderr"],
    kl["mean"], kl["p99"], kl["same_top_pct"]))
EOF
done
