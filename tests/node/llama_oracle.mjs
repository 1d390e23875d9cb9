// The llama.cpp oracle, teacher-forced: llama.cpp (node-llama-cpp, CPU) generates greedily from a
// prompt and records every step's next-token distribution; libslm (slm-logits --ids) evaluates
// exactly that token sequence, and at every generated position must
//   (a) pick llama.cpp's top-1 wherever it beats llama.cpp's top-2 by a clear margin, and
//   (b) keep max_i |p_llama(i) - p_slm(i)| over the whole vocabulary under a tolerance.
// Driven by ctest (tests/test_llama_oracle.cmake); exits non-zero on any failure.
//
// Why teacher-forced: once two engines pick different tokens at a near-tie, free-running
// sequences diverge and nothing after that point can be compared. Feeding both the same tokens
// compares every position. On stories260K (a trained model with peaked distributions) we also
// require the free-running greedy sequences to be identical, and equal to the golden file.
//
// Tolerances (measured values and reasoning also in docs/PERFORMANCE.md, "llama.cpp oracle"):
//   llama.cpp stores K and V in F16 (relative rounding 2^-11 ~ 4.9e-4) and, for quantized
//   weights, rounds the activations to 8 bits per block (Q8_0 / Q8_K: step = max|x|/127) before
//   its integer dot products; on stories260K (F32 weights) its logits differ from a double-
//   precision forward pass by up to 3.6e-3. libslm rounds differently (float activations
//   against dequantized weights in the reference kernels). A logit error d moves a softmax
//   probability by at most ~d/2 (dp_i = p_i (dz_i - sum_j p_j dz_j)), and it can close the gap
//   between the top two logits by at most 2d. So per type we measured the logit error (half the
//   spread of log p_slm - log p_llama over tokens with p > 1e-3) on 3 seeds x 2 archs, and set
//     (b) the probability tolerance to ~2x the largest |dp| seen, and
//     (a) the top-1 margin ln(p1/p2) to >= 2x the largest logit error seen,
//   so that the checks hold with headroom for honest rounding and fail on a real bug (a wrong
//   RoPE, bias, scale or dequantization moves probabilities by 0.1-1 at most positions).
//   The quantized types' error scales with the logit spread, which is why the test models use
//   --logit-std 4 (top-1 typically 0.3-0.95, like a real model) rather than mkmodel's 15.
import {execFileSync} from "node:child_process";
import {mkdirSync, readFileSync, existsSync} from "node:fs";
import {join} from "node:path";
import {loadLlama, greedyReference, cpuVariant} from "./llama_reference.mjs";

// Per weight type: max |p_llama - p_slm| over the vocabulary at any step (tolerance b), and the
// top-1 margin, as a logit gap ln(p1/p2) (tolerance a): below it llama.cpp's own rounding can
// swap the order, so the top-1 is not a fact to check there.
const TOLERANCE = {
  // Measured (3 seeds x 2 archs, logit std 4): max |dp| <= 1.4e-3, logit error <= 9.4e-3.
  F32: {prob: 5e-3, margin: 0.05},
  F16: {prob: 5e-3, margin: 0.05},
  // Measured: max |dp| <= 2.9e-2, logit error <= 0.15 (llama.cpp's 8-bit activations).
  Q8_0: {prob: 0.06, margin: 0.4},
  Q4_0: {prob: 0.06, margin: 0.4},
  // Measured: max |dp| <= 5.6e-2, logit error <= 0.23 (Q8_K activations against Q4_K/Q6_K).
  Q4_K_M: {prob: 0.1, margin: 0.5},
};
// At least this fraction of the steps must have a clear top-1, or the test checks too little.
const MIN_CLEAR_FRACTION = 0.5;

function parseArgs(argv) {
  const o = {slmLogits: null, mkmodel: null, workdir: null, arch: null, types: [], nGen: 24, stories: null, golden: null, shared: null, threads: 1, shape: {},
             trained: null, heldout: null, nExamples: 8};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--slm-logits") o.slmLogits = v();
    else if (a === "--mkmodel") o.mkmodel = v();
    else if (a === "--workdir") o.workdir = v();
    else if (a === "--arch") o.arch = v();
    else if (a === "--types") o.types = v().split(",").filter(Boolean);
    else if (a === "--n-gen") o.nGen = Number(v());
    else if (a === "--stories") o.stories = v();
    else if (a === "--shared") o.shared = v();
    else if (a === "--golden") o.golden = v();
    else if (a === "--threads") o.threads = Number(v());
    else if (a === "--trained") o.trained = v();
    else if (a === "--heldout") o.heldout = v();
    else if (a === "--examples") o.nExamples = Number(v());
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.slmLogits) throw new Error("--slm-logits BIN is required");
  if (o.arch && (!o.mkmodel || !o.workdir || o.types.length === 0)) throw new Error("--arch needs --mkmodel, --workdir and --types");
  return o;
}

// Runs slm-logits on `ids`; returns one record per position: {pos, token, top, logits?}.
function slmLogits(bin, model, ids, {full = true, nGen = 0, threads = 1} = {}) {
  const args = ["-m", model, "--ids", ids.join(","), "-k", "10", "-t", String(threads)];
  if (full) args.push("--full-logits");
  if (nGen > 0) args.push("-n", String(nGen));
  let out;
  try {
    out = execFileSync(bin, args, {encoding: "utf8", maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "pipe"]});
  } catch (e) {
    throw new Error(`slm-logits failed (${e.status}): ${String(e.stderr).trim()}`);
  }
  return out.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

function softmax(logits) {
  let max = -Infinity;
  for (const z of logits) if (z > max) max = z;
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

function argmax(p) {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}

// Compares llama.cpp's steps with libslm's positions. Returns {ok, lines}.
function compare(label, ref, ours, tol) {
  const P = ref.prompt_ids.length;
  const lines = [];
  let ok = true;
  let maxDp = 0, maxDz = 0, maxDpStep = -1, clear = 0, agreed = 0, close = 0;
  for (let s = 0; s < ref.steps.length; s++) {
    const step = ref.steps[s];
    const pos = P - 1 + s;
    const rec = ours[pos];
    if (!rec || rec.pos !== pos) {
      lines.push(`${label}: slm-logits gave no position ${pos}`);
      return {ok: false, lines};
    }
    const pOurs = softmax(rec.logits);
    if (pOurs.length !== step.probs.length) {
      lines.push(`${label}: vocabulary sizes differ: libslm ${pOurs.length}, llama.cpp ${step.probs.length}`);
      return {ok: false, lines};
    }
    let dp = 0, at = -1;
    for (let i = 0; i < pOurs.length; i++) {
      const d = Math.abs(pOurs[i] - step.probs[i]);
      if (d > dp) dp = d, at = i;
    }
    if (dp > maxDp) maxDp = dp, maxDpStep = s;
    // Logit error estimate: log-probabilities differ by the logit error minus a common shift
    // (the log-normalizer); measured over tokens either engine gives p > 1e-3.
    const diffs = [];
    for (let i = 0; i < pOurs.length; i++)
      if ((pOurs[i] > 1e-3 || step.probs[i] > 1e-3) && pOurs[i] > 0 && step.probs[i] > 0) diffs.push(Math.log(pOurs[i]) - Math.log(step.probs[i]));
    if (diffs.length > 1) {
      const mid = (Math.max(...diffs) + Math.min(...diffs)) / 2;
      for (const d of diffs) maxDz = Math.max(maxDz, Math.abs(d - mid));
    }
    if (dp >= tol.prob) {
      ok = false;
      lines.push(`${label}: step ${s} (position ${pos}): |dp| ${dp.toExponential(2)} >= ${tol.prob} at token ${at} (llama.cpp ${step.probs[at].toFixed(5)}, libslm ${pOurs[at].toFixed(5)})`);
    }
    const [t1, p1] = step.top[0];
    const p2 = step.top.length > 1 ? step.top[1][1] : 0;
    const margin = p2 > 0 ? Math.log(p1 / p2) : Infinity;
    if (margin > tol.margin) {
      ++clear;
      const mine = argmax(pOurs);
      if (mine === t1) ++agreed;
      else {
        ok = false;
        lines.push(`${label}: step ${s} (position ${pos}): top-1 ${mine} (p ${pOurs[mine].toFixed(5)}) but llama.cpp's is ${t1} (p ${p1.toFixed(5)}, margin ln(p1/p2) ${margin.toFixed(3)})`);
      }
    } else {
      ++close;
    }
  }
  lines.push(`${label}: ${ref.steps.length} steps, max |dp| ${maxDp.toExponential(2)} (tolerance ${tol.prob}, step ${maxDpStep}), logit error ~${maxDz.toExponential(2)}; top-1 agrees at ${agreed}/${clear} clear steps (margin > ${tol.margin}), ${close} near-ties not checked: ${ok ? "PASS" : "FAIL"}`);
  if (clear < MIN_CLEAR_FRACTION * ref.steps.length) {
    ok = false;
    lines.push(`${label}: only ${clear} of ${ref.steps.length} steps had a clear top-1: the model is too flat to test`);
  }
  return {ok, lines};
}

// Deterministic prompt ids in [lo, hi): the same prompt every run.
function promptIds(n, lo, hi, seed) {
  const ids = [];
  let s = BigInt(seed) * 0x9e3779b97f4a7c15n;
  for (let i = 0; i < n; i++) {
    s = (s * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    ids.push(lo + Number((s >> 33n) % BigInt(hi - lo)));
  }
  return ids;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(o.slmLogits)) throw new Error(`${o.slmLogits} does not exist (build the slm-logits target)`);
  const llama = await loadLlama();
  console.log(`llama.cpp: node-llama-cpp prebuilt, CPU variant ${cpuVariant()}`);
  let ok = true;
  const report = (r) => {
    for (const l of r.lines) console.log(l);
    ok = ok && r.ok;
  };

  if (o.arch) {
    mkdirSync(o.workdir, {recursive: true});
    for (const type of o.types) {
      const tol = TOLERANCE[type];
      if (!tol) throw new Error(`no tolerance defined for type ${type}`);
      const path = join(o.workdir, `oracle-${o.arch}-${type}.gguf`);
      makeModel(o.mkmodel, o.arch, type, path);
      const model = await llama.loadModel({modelPath: path});
      const nVocab = model.tokens ? model.fileInsights.vocabularySize ?? null : null;
      const vocab = nVocab ?? 256;
      const prompt = [model.tokens.bos ?? 1, ...promptIds(11, Math.min(300, vocab - 1), vocab, 7)];
      const ref = await greedyReference(llama, path, prompt, o.nGen, {full: true, model, threads: o.threads});
      await model.dispose();
      const seq = [...prompt, ...ref.tokens.slice(0, -1)];
      const ours = slmLogits(o.slmLogits, path, seq, {threads: o.threads});
      report(compare(`${o.arch} ${type}`, ref, ours, tol));
    }
  }

  if (o.shared !== null) {
    // ../shared (beside the checkout) is optional: present in CI and locally, absent for a fresh
    // clone. Say so when it is absent; the checks above have run either way.
    const model = join(o.shared, "data/models/stories260K.gguf");
    if (existsSync(model)) {
      o.stories = model;
      o.golden = join(o.shared, "data/golden/stories260K_greedy_once.json");
    } else {
      console.log(`stories260K: ${model} not found: the stories260K checks did NOT run`);
    }
  }
  if (o.stories) {
    // A trained model: teacher-forced as above, and free-running greedy must match exactly.
    const golden = o.golden && existsSync(o.golden) ? JSON.parse(readFileSync(o.golden, "utf8")) : null;
    const prompt = golden ? golden.prompt_ids : [1, 403, 407, 261, 378];
    const nGen = golden ? golden.greedy_ids.length - prompt.length : 60;
    const ref = await greedyReference(llama, o.stories, prompt, nGen, {full: true, threads: o.threads});
    const seq = [...prompt, ...ref.tokens.slice(0, -1)];
    report(compare("stories260K F32", ref, slmLogits(o.slmLogits, o.stories, seq, {threads: o.threads}), TOLERANCE.F32));
    // Free-running: slm-logits -n continues greedily by itself.
    const free = slmLogits(o.slmLogits, o.stories, prompt, {full: false, nGen: nGen - 1, threads: o.threads});
    const gen = free.slice(prompt.length).map((r) => r.token);
    gen.push(free[free.length - 1].top[0][0]);
    const check = (name, expect) => {
      const diff = gen.findIndex((t, i) => t !== expect[i]);
      const same = diff < 0 && gen.length === expect.length;
      console.log(`stories260K free-running greedy vs ${name}: ${same ? `${gen.length} tokens identical: PASS` : `differs at generated token ${diff} (libslm ${gen[diff]}, ${name} ${expect[diff]}): FAIL`}`);
      ok = ok && same;
    };
    check("llama.cpp", ref.tokens);
    if (golden) check("golden file", golden.greedy_ids.slice(prompt.length));
    else console.log(`stories260K: no golden file at ${o.golden}: that comparison did not run`);
  }
  if (o.trained) {
    // The shipped model (weights/, issue 10): held-out prompts from tests/data/logexplainer,
    // teacher-forced as above with the tolerances of its type, and the free-running greedy
    // answers must be the same token for token up to EOS -- except after a step where
    // llama.cpp's own top two are a near-tie (margin below the type's tolerance), where two
    // honest engines may part; such a stop is reported and counted, and at most a quarter of
    // the examples may end that way.
    if (!o.heldout) throw new Error("--trained needs --heldout FILE");
    const tol = TOLERANCE.Q8_0;
    const lines = readFileSync(o.heldout, "utf8").split("\n").filter(Boolean).slice(0, o.nExamples);
    const model = await llama.loadModel({modelPath: o.trained});
    let tied = 0;
    for (const line of lines) {
      const ex = JSON.parse(line);
      const asst = ex.ids.indexOf(3);  // <｜Assistant｜>; the completion starts "<think>\n"
      if (asst < 0 || ex.ids[asst + 1] !== 4) throw new Error(`${ex.id}: unexpected prompt ids`);
      const prompt = ex.ids.slice(0, asst + 3);
      const ref = await greedyReference(llama, o.trained, prompt, o.nGen, {full: true, model, threads: o.threads});
      const seq = [...prompt, ...ref.tokens.slice(0, -1)];
      report(compare(`shipped ${ex.id}`, ref, slmLogits(o.slmLogits, o.trained, seq, {threads: o.threads}), tol));
      const free = slmLogits(o.slmLogits, o.trained, prompt, {full: false, nGen: o.nGen - 1, threads: o.threads});
      const gen = free.slice(prompt.length).map((r) => r.token);
      gen.push(free[free.length - 1].top[0][0]);
      const eos = ref.tokens.indexOf(1);
      const n = eos < 0 ? ref.tokens.length : eos + 1;
      const diff = gen.slice(0, n).findIndex((t, i) => t !== ref.tokens[i]);
      if (diff < 0) {
        console.log(`shipped ${ex.id}: free-running greedy identical for ${n} tokens${eos < 0 ? "" : " (to EOS)"}: PASS`);
      } else {
        const [, p1] = ref.steps[diff].top[0];
        const p2 = ref.steps[diff].top.length > 1 ? ref.steps[diff].top[1][1] : 0;
        const margin = p2 > 0 ? Math.log(p1 / p2) : Infinity;
        const nearTie = margin <= tol.margin;
        if (nearTie) ++tied;
        console.log(`shipped ${ex.id}: free-running greedy differs at generated token ${diff} (libslm ${gen[diff]}, llama.cpp ${ref.tokens[diff]}, llama.cpp margin ln(p1/p2) ${margin.toFixed(3)}): ${nearTie ? "near-tie, accepted" : "FAIL"}`);
        ok = ok && nearTie;
      }
    }
    if (tied > lines.length / 4) {
      console.log(`shipped model: ${tied} of ${lines.length} free-running answers parted at near-ties: too many: FAIL`);
      ok = false;
    }
    await model.dispose();
  }
  await llama.dispose();
  if (!ok) {
    console.log("llama.cpp oracle: FAILED");
    process.exit(1);
  }
  console.log("llama.cpp oracle: all checks passed");
}

// A small random-weight model that is not trivial: 3 layers, n_embd 256 (a multiple of Q4_K's
// 256-element block), GQA 4:2, head dim 64, a 3000-token vocabulary that llama.cpp loads,
// logit std 4 (peaked but not one-hot distributions).
function makeModel(mkmodel, arch, type, path) {
  const args = arch.startsWith("deepseek2") ? deepseek2Args(arch, type, path) : ["--preset", "tiny", "--arch", arch, "--type", type, "-o", path,
                "--n-layer", "3", "--n-embd", "256", "--n-head", "4", "--n-head-kv", "2", "--n-ff", "768", "--n-vocab", "3000", "--seed", "11", "--logit-std", "4"];
  try {
    execFileSync(mkmodel, args, {stdio: ["ignore", "pipe", "pipe"]});
  } catch (e) {
    throw new Error(`slm-mkmodel ${args.join(" ")} failed: ${String(e.stderr).trim()}`);
  }
}

// deepseek2 (src/model/random_deepseek2.cpp presets, 3 layers: 1 dense + 2 MoE, n_embd 256):
//   --arch deepseek2       "tiny": q_lora, sigmoid gating + correction bias, 4 groups keep 2,
//                          split attn_k_b/attn_v_b (kept F32: this llama.cpp build aborts in
//                          its CPU scheduler, GGML_ASSERT(*cur_backend_id != -1), on split files
//                          whose attn_k_b is F16 or quantized), YaRN.
//   --arch deepseek2-lite  "tiny-lite": no q_lora, softmax gating, no groups, fused attn_kv_b
//                          (F16), YaRN. (llama.cpp scores expert groups by their top-2 sum for
//                          every gating function; libslm uses the max for softmax (V2), so
//                          softmax-with-groups models are checked against the reference only.)
function deepseek2Args(arch, type, path) {
  const lite = arch === "deepseek2-lite";
  return ["--arch", "deepseek2", "--preset", lite ? "tiny-lite" : "tiny", "--type", type, "-o", path,
          "--n-vocab", "3000", "--seed", "11", "--logit-std", "4", "--ds-kb-type", lite ? "F16" : "F32"];
}

main().catch((e) => {
  console.error(`llama.cpp oracle: ${e.message}`);
  process.exit(1);
});
