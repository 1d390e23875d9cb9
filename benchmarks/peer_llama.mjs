// llama.cpp's speed on the same GGUF file, through node-llama-cpp's prebuilt CPU library, measured
// like slm-bench: ppN = N random prompt tokens in one evaluation on an empty context; tgN = N
// tokens generated greedily one at a time from BOS. Load time is excluded; one warm-up run
// precedes the measured ones. Timing is done in JS around the library calls, so generation
// includes node-llama-cpp's per-token overhead (about 20% below llama-bench's own figure on the
// 1.5B Q4_0 model; prompt processing matches llama-bench).
//
// usage: node benchmarks/peer_llama.mjs -m MODEL.gguf [-p 512] [-n 128] [-t 1,2] [-r 5] [-o md|json]
// Run from anywhere; node-llama-cpp is resolved from tests/node/node_modules (npm ci there).
import {createRequire} from "node:module";
import {readFileSync} from "node:fs";
import {fileURLToPath} from "node:url";
import {dirname, join, basename} from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const nodeDir = join(root, "tests", "node");

function parseArgs(argv) {
  const o = {model: null, p: [512], n: [128], t: [1], r: 5, output: "md"};
  const list = (s) => s.split(",").filter(Boolean).map(Number);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "-m") o.model = v();
    else if (a === "-p") o.p = list(v());
    else if (a === "-n") o.n = list(v());
    else if (a === "-t") o.t = list(v());
    else if (a === "-r") o.r = Number(v());
    else if (a === "-o") o.output = v();
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.model) throw new Error("usage: peer_llama.mjs -m MODEL.gguf [-p 512] [-n 128] [-t 1,2] [-r 5] [-o md|json]");
  return o;
}

// The same deterministic prompt tokens as slm-bench (64-bit LCG, high bits mod n_vocab).
function promptTokens(n, nVocab) {
  const ids = [];
  let s = 0x9e3779b97f4a7c15n;
  for (let i = 0; i < n; i++) {
    s = (s * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    ids.push(Number((s >> 33n) % BigInt(nVocab)));
  }
  return ids;
}

function meanStd(xs) {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return {mean, sd};
}

// CPU seconds (user + system, all threads of this process) since `start` (process.cpuUsage()).
function cpuSeconds(start) {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

function cpuVariant() {
  try {
    const m = readFileSync("/proc/self/maps", "utf8").match(/libggml-cpu-([A-Za-z0-9_]+)\.so/);
    return m ? m[1] : "unknown";
  } catch {
    return "unknown";
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let mod;
  try {
    mod = await import(createRequire(join(nodeDir, "package.json")).resolve("node-llama-cpp"));
  } catch (e) {
    throw new Error(`node-llama-cpp is not installed (${e.code ?? e.message}): run \`npm ci\` in ${nodeDir}`);
  }
  const version = JSON.parse(readFileSync(join(nodeDir, "node_modules", "node-llama-cpp", "package.json"), "utf8")).version;
  const llama = await mod.getLlama({gpu: false, build: "never", logLevel: "error", progressLogs: false, maxThreads: 0});
  const t0 = performance.now();
  const model = await llama.loadModel({modelPath: o.model});
  const loadS = (performance.now() - t0) / 1000;
  const variant = cpuVariant();
  const bos = model.tokens.bos ?? 1;
  const results = [];
  const maxP = Math.max(...o.p, 0), maxN = Math.max(...o.n, 0);
  for (const threads of o.t) {
    const context = await model.createContext({contextSize: Math.max(maxP, maxN) + 16, threads: {ideal: threads, min: threads}, batchSize: Math.max(maxP, 1), flashAttention: false});
    const seq = context.getSequence();
    let vocab = 0;
    {  // the vocabulary size: one evaluation's probability map covers the whole vocabulary
      const it = seq.evaluateWithMetadata([bos], {probabilities: true}, {temperature: 0});
      const first = await it.next();
      vocab = first.value.probabilities.size;
      await it.return();
      await seq.clearHistory();
    }
    const runPP = async (n) => {
      await seq.clearHistory();
      const tokens = promptTokens(n, vocab);
      const c = process.cpuUsage();
      const s = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(tokens);
      return [(performance.now() - s) * 1e6, cpuSeconds(c)];
    };
    const runTG = async (n) => {
      await seq.clearHistory();
      let count = 0;
      const c = process.cpuUsage();
      const s = performance.now();
      for await (const tok of seq.evaluate([bos], {temperature: 0})) {
        void tok;
        if (++count >= n) break;
      }
      return [(performance.now() - s) * 1e6, cpuSeconds(c)];
    };
    const tests = [...o.p.filter((p) => p > 0).map((p) => [p, 0]), ...o.n.filter((n) => n > 0).map((n) => [0, n])];
    for (const [p, n] of tests) {
      const run = () => (p > 0 ? runPP(p) : runTG(n));
      await run();  // warm-up
      const ns = [], cpu = [];
      for (let r = 0; r < o.r; r++) {
        const [t, c] = await run();
        ns.push(t);
        cpu.push(c);
      }
      const ts = ns.map((x) => ((p + n) * 1e9) / x);
      const a = meanStd(ns), b = meanStd(ts);
      results.push({
        build_commit: `node-llama-cpp ${version}`, backends: "CPU", cpu_variant: variant,
        model_filename: o.model, model_size: model.size,
        n_threads: threads, n_prompt: p, n_gen: n, avg_ns: Math.round(a.mean), stddev_ns: Math.round(a.sd),
        avg_ts: b.mean, stddev_ts: b.sd, samples_ns: ns.map(Math.round), samples_ts: ts, samples_cpu_s: cpu, load_s: loadS,
      });
      process.stderr.write(`peer_llama: ${basename(o.model)} ${p > 0 ? "pp" + p : "tg" + n} t=${threads}: ${b.mean.toFixed(2)} t/s\n`);
    }
    await context.dispose();
  }
  await model.dispose();
  await llama.dispose();
  if (o.output === "json") {
    process.stdout.write(JSON.stringify(results, null, 2) + "\n");
  } else {
    console.log(`llama.cpp via node-llama-cpp ${version}, CPU variant ${variant}, load ${loadS.toFixed(3)} s`);
    console.log("| model | threads | test | t/s |");
    console.log("| --- | ---: | --- | ---: |");
    for (const r of results)
      console.log(`| ${basename(r.model_filename)} | ${r.n_threads} | ${r.n_prompt > 0 ? "pp" + r.n_prompt : "tg" + r.n_gen} | ${r.avg_ts.toFixed(2)} ± ${r.stddev_ts.toFixed(2)} |`);
  }
}

main().catch((e) => {
  process.stderr.write(`peer_llama: ${e.message}\n`);
  process.exit(1);
});
