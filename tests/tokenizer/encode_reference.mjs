// Reference token ids for the tokenizer corpus from @lenml/tokenizers (the JS port of the
// Hugging Face tokenizers), using the tokenizer.json / tokenizer_config.json files shipped in the
// @lenml/tokenizer-* packages under tests/node/node_modules.
//
// Usage: node tests/tokenizer/encode_reference.mjs CORPUS OUT_DIR [name...]
// SLM_TOKENIZER_BENCH_REPEATS=N times N passes and reports the best (for docs/PERFORMANCE.md).
// Writes OUT_DIR/<name>.ids (one line of space-separated ids per corpus line; the corpus has one
// JSON string per line) and OUT_DIR/<name>.time (CPU seconds spent encoding, corpus bytes).
// Ids are produced with add_special_tokens=false; added/special tokens written in the text are
// matched (the JS tokenizer always does).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = path.resolve(here, "..", "node");
const modules = path.join(nodeDir, "node_modules");
const NAMES = ["deepseek_v3", "qwen3", "llama3_1", "llama2"];

function die(msg) {
  process.stderr.write(`encode_reference: ${msg}\n`);
  process.exit(2);
}

const [corpusPath, outDir, ...only] = process.argv.slice(2);
if (!corpusPath || !outDir) die("usage: node encode_reference.mjs CORPUS OUT_DIR [name...]");
if (!fs.existsSync(path.join(modules, "@lenml", "tokenizers")))
  die(`${modules}/@lenml/tokenizers is missing: run \`npm ci\` in ${nodeDir}`);

const require = createRequire(path.join(nodeDir, "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizers");

const lines = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
const corpusBytes = lines.reduce((n, s) => n + Buffer.byteLength(s, "utf8"), 0);
fs.mkdirSync(outDir, { recursive: true });

for (const name of only.length ? only : NAMES) {
  const dir = path.join(modules, "@lenml", `tokenizer-${name}`, "models");
  if (!fs.existsSync(dir)) die(`${dir} is missing: run \`npm ci\` in ${nodeDir}`);
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
  // Warm-up (JIT), then the timed pass.
  for (let i = 0; i < Math.min(50, lines.length); ++i) tok.encode(lines[i], { add_special_tokens: false });
  const repeats = Math.max(1, Number(process.env.SLM_TOKENIZER_BENCH_REPEATS ?? 1));
  let out = null;
  let seconds = Infinity;
  for (let r = 0; r < repeats; ++r) {
    // CPU time of this process (user + system), not wall-clock: the machine may be shared.
    const t0 = process.cpuUsage();
    out = lines.map((s) => tok.encode(s, { add_special_tokens: false }));
    const dt = process.cpuUsage(t0);
    seconds = Math.min(seconds, (dt.user + dt.system) / 1e6);
  }
  fs.writeFileSync(path.join(outDir, `${name}.ids`), out.map((ids) => ids.join(" ")).join("\n") + "\n");
  fs.writeFileSync(path.join(outDir, `${name}.time`), `${seconds} ${corpusBytes}\n`);
  process.stdout.write(`${name}: ${lines.length} lines, ${(corpusBytes / 1e6 / seconds).toFixed(2)} MB/s\n`);
}
