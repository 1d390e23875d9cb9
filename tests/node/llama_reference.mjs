// llama.cpp as an outside reference (prebuilt CPU library through node-llama-cpp, offline):
// greedy generation from token ids with the full next-token distribution at every step.
//
// As a module: loadLlama(), greedyReference(), cpuVariant(). As a command:
//   node llama_reference.mjs -m MODEL.gguf --ids 1,403,407 [-n 32] [-k 10] [-t 1] [--full]
// prints {"model","prompt_ids","tokens":[...],"steps":[{"token","top":[[id,p],...],"probs"?}]}.
import {readFileSync} from "node:fs";
import {fileURLToPath} from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));

// Loads node-llama-cpp's prebuilt CPU build. A missing install is an error that says how to fix
// it: a test must never pass because its reference is absent.
export async function loadLlama() {
  let mod;
  try {
    mod = await import("node-llama-cpp");
  } catch (e) {
    throw new Error(`node-llama-cpp is not installed (${e.code ?? e.message}): run \`npm ci\` in ${here}`);
  }
  return mod.getLlama({gpu: false, build: "never", logLevel: "error", progressLogs: false});
}

// The ggml CPU variant the loader picked for this CPU (e.g. "sapphirerapids", "haswell"), read
// from the shared objects mapped into this process.
export function cpuVariant() {
  try {
    const maps = readFileSync("/proc/self/maps", "utf8");
    const m = maps.match(/libggml-cpu-([A-Za-z0-9_]+)\.so/);
    return m ? m[1] : "unknown";
  } catch {
    return "unknown";
  }
}

// Lets llama.cpp generate nGen tokens greedily after promptIds. Returns the generated ids and,
// per step, the distribution the token was chosen from: top-K [id, p] pairs and, with full, the
// whole distribution as a Float64Array indexed by id.
export async function greedyReference(llama, modelPath, promptIds, nGen, {topK = 10, threads = 1, full = false, model = null} = {}) {
  const owned = model === null;
  if (owned) model = await llama.loadModel({modelPath});
  const context = await model.createContext({contextSize: Math.max(64, promptIds.length + nGen + 8), threads, batchSize: 512});
  const nVocab = model.tokens ? model.fileInsights?.vocabularySize ?? null : null;
  const sequence = context.getSequence();
  const tokens = [];
  const steps = [];
  try {
    const it = sequence.evaluateWithMetadata(promptIds, {probabilities: true, confidence: true}, {temperature: 0});
    for await (const r of it) {
      const top = [];
      for (const [id, p] of r.probabilities) {
        if (top.length >= topK) break;
        top.push([id, p]);
      }
      const step = {token: r.token, top};
      if (full) {
        let n = nVocab ?? 0;
        for (const id of r.probabilities.keys()) if (id + 1 > n) n = id + 1;
        const probs = new Float64Array(n);
        for (const [id, p] of r.probabilities) probs[id] = p;
        step.probs = probs;
      }
      tokens.push(r.token);
      steps.push(step);
      if (tokens.length >= nGen) break;
    }
  } finally {
    await context.dispose();
    if (owned) await model.dispose();
  }
  return {model: modelPath, prompt_ids: promptIds, tokens, steps};
}

function parseArgs(argv) {
  const o = {model: null, ids: null, n: 32, k: 10, threads: 1, full: false};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "-m" || a === "--model") o.model = v();
    else if (a === "--ids") o.ids = v().split(/[,\s]+/).filter(Boolean).map(Number);
    else if (a === "-n") o.n = Number(v());
    else if (a === "-k") o.k = Number(v());
    else if (a === "-t") o.threads = Number(v());
    else if (a === "--full") o.full = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.model || !o.ids || o.ids.some((x) => !Number.isInteger(x) || x < 0)) throw new Error("usage: llama_reference.mjs -m MODEL --ids 1,2,3 [-n N] [-k K] [-t T] [--full]");
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    const o = parseArgs(process.argv.slice(2));
    const llama = await loadLlama();
    const ref = await greedyReference(llama, o.model, o.ids, o.n, {topK: o.k, threads: o.threads, full: o.full});
    ref.llama_cpu_variant = cpuVariant();
    for (const s of ref.steps) if (s.probs) s.probs = Array.from(s.probs);
    process.stdout.write(JSON.stringify(ref) + "\n");
    await llama.dispose();
  } catch (e) {
    process.stderr.write(`llama_reference: ${e.message}\n`);
    process.exit(1);
  }
}
