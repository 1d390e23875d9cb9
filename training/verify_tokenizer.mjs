// Encodes samples with @lenml/tokenizers (the JS port of Hugging Face tokenizers) and compares
// with the ids the Python trainer produced. Usage: node verify_tokenizer.mjs TOKDIR SAMPLES.json
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const lib = path.join(here, "..", "tests", "node", "node_modules", "@lenml", "tokenizers", "dist", "main.mjs");
const { TokenizerLoader } = await import(lib);

const [tokDir, samplesPath] = process.argv.slice(2);
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8")),
});
const samples = JSON.parse(fs.readFileSync(samplesPath, "utf8"));
let bad = 0, encoded = 0, chats = 0;
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
for (const s of samples) {
  if (s.text !== undefined) {
    const ids = tokenizer.encode(s.text, { add_special_tokens: false });
    encoded++;
    if (!same(ids, s.ids)) {
      bad++;
      if (bad <= 5) console.error("MISMATCH", JSON.stringify(s.text.slice(0, 120)), "\n js", ids.slice(0, 40).join(","), "\n py", s.ids.slice(0, 40).join(","));
      continue;
    }
    const withBos = tokenizer.encode(s.text);
    if (withBos[0] !== 0 || !same(withBos.slice(1), s.ids)) { bad++; console.error("BOS not prepended once for", JSON.stringify(s.text.slice(0, 60))); }
    const text = ids.length ? tokenizer.decode(ids, { skip_special_tokens: false }) : "";
    if (text !== s.text) { bad++; console.error("DECODE MISMATCH", JSON.stringify(text.slice(0, 80)), JSON.stringify(s.text.slice(0, 80))); }
  } else {
    const rendered = tokenizer.apply_chat_template([...s.chat, { role: "user", content: s.user }],
      { tokenize: false, add_generation_prompt: true });
    chats++;
    if (rendered !== s.prompt) { bad++; if (bad <= 5) console.error("TEMPLATE MISMATCH\n", JSON.stringify(rendered.slice(0, 200)), "\n", JSON.stringify(s.prompt.slice(0, 200))); }
  }
}
console.log(`@lenml/tokenizers: ${encoded} encodings, ${chats} chat renderings, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
