#!/usr/bin/python3
"""Byte-level BPE tokenizer for the log explainer: trainer, encoder and HF file writer.

The pre-tokenizer is the Qwen2 regex (llama.cpp preset "qwen2" / "deepseek-r1-qwen"), run with
the `regex` module; bytes map to printable characters with the GPT-2 byte-to-unicode table;
merges are learned greedily (most frequent adjacent pair, ties broken by the smaller pair).
The DeepSeek-R1 special tokens are ids 0-5 and are also added tokens.

Usage: train_tokenizer.py --data DIR --out DIR [--vocab 4096] [--sample N]
Reads DIR/train.jsonl (field "text"), writes OUT/tokenizer.json and OUT/tokenizer_config.json.
"""
import argparse
import collections
import json
import os
import unicodedata

import regex

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK = "<think>"
END_THINK = "</think>"
# (content, special): R1 marks <think> and </think> as added but not special.
ADDED = [(BOS, True), (EOS, True), (USER, True), (ASSISTANT, True), (THINK, False), (END_THINK, False)]

# Qwen2 pre-tokenizer regex, exactly as in Qwen2's and DeepSeek-R1-Distill-Qwen's tokenizer.json.
PRETOKENIZE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
PRETOKENIZE_RE = regex.compile(PRETOKENIZE)
SPECIAL_RE = regex.compile("(" + "|".join(regex.escape(t) for t, _ in ADDED) + ")")

# DeepSeek-R1 chat template for system/user/assistant turns (no tool calls): as DeepSeek-V3's, with
# R1's generation prompt "<｜Assistant｜><think>\n". R1 also strips "...</think>" from earlier
# assistant turns with content.split('</think>')[-1]; that is left out because the JS Jinja of
# @lenml/tokenizers cannot parse it, and single-turn use never reaches it.
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    "{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}"
    "{%- endfor -%}"
    "{% if add_generation_prompt %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"
)


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = bytes_to_unicode()
CHAR_BYTES = {c: b for b, c in BYTE_CHARS.items()}


def pieces(text):
    """Splits text into (piece, is_added_token) in order."""
    for part in SPECIAL_RE.split(text):
        if not part:
            continue
        if SPECIAL_RE.fullmatch(part):
            yield part, True
        else:
            for w in PRETOKENIZE_RE.findall(unicodedata.normalize("NFC", part)):
                yield "".join(BYTE_CHARS[b] for b in w.encode("utf-8")), False


def train_bpe(word_counts, n_merges, min_frequency=2, log_every=500):
    """word_counts: {byte-mapped word: count}. Returns the merges as (left, right) pairs."""
    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    pair_count = collections.Counter()
    pair_words = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += counts[i]
            pair_words[(a, b)].add(i)
    merges = []
    while len(merges) < n_merges and pair_count:
        best = min(pair_count.items(), key=lambda kv: (-kv[1], kv[0]))
        if best[1] < min_frequency:
            break
        pair = best[0]
        merges.append(pair)
        joined = pair[0] + pair[1]
        for i in list(pair_words[pair]):
            w = words[i]
            c = counts[i]
            for a, b in zip(w, w[1:]):
                pair_count[(a, b)] -= c
                if pair_count[(a, b)] <= 0:
                    del pair_count[(a, b)]
            out = []
            j = 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == pair[0] and w[j + 1] == pair[1]:
                    out.append(joined)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for a, b in zip(out, out[1:]):
                pair_count[(a, b)] += c
                pair_words[(a, b)].add(i)
        del pair_words[pair]
        if log_every and len(merges) % log_every == 0:
            print("  %d merges, last %r (count %d)" % (len(merges), joined, best[1]), flush=True)
    return merges


class Tokenizer:
    """Encoder/decoder for the files this script writes (same algorithm as HF BPE)."""

    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.inv = {i: t for t, i in vocab.items()}
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.cache = {}

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        merges = [m.split(" ") if isinstance(m, str) else m for m in j["model"]["merges"]]
        return cls(j["model"]["vocab"], merges)

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = None
            for k in range(len(parts) - 1):
                r = self.ranks.get((parts[k], parts[k + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, k)
            if best is None:
                break
            k = best[1]
            parts[k:k + 2] = [parts[k] + parts[k + 1]]
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for piece, added in pieces(text):
            ids.extend([self.vocab[piece]] if added else self.bpe(piece))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t = self.inv[i]
            if any(t == a for a, _ in ADDED):
                out += t.encode("utf-8")
            else:
                out += bytes(CHAR_BYTES[c] for c in t)
        return out.decode("utf-8", errors="replace")


def added_token(i, content, special):
    return dict(id=i, content=content, single_word=False, lstrip=False, rstrip=False,
                normalized=False, special=special)


def write_files(out, vocab, merges):
    os.makedirs(out, exist_ok=True)
    bos_piece = {"SpecialToken": {"id": BOS, "type_id": 0}}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added_token(i, t, s) for i, (t, s) in enumerate(ADDED)],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": PRETOKENIZE}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        # Like DeepSeek-R1: encoding plain text with special tokens prepends BOS.
        "post_processor": {"type": "TemplateProcessing",
                           "single": [bos_piece, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [bos_piece, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {BOS: {"id": BOS, "ids": [0], "tokens": [BOS]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    def at(t):
        return {"__type": "AddedToken", "content": t, "lstrip": False, "normalized": False,
                "rstrip": False, "single_word": False}
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": at(BOS),
        "eos_token": at(EOS),
        "pad_token": at(EOS),
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": 512,
        "tokenizer_class": "LlamaTokenizerFast",
        "added_tokens_decoder": {str(i): {k: v for k, v in added_token(i, t, s).items() if k != "id"}
                                 for i, (t, s) in enumerate(ADDED)},
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--sample", type=int, default=40000, help="training examples used (first N)")
    ap.add_argument("--min-frequency", type=int, default=2, help="stop merging below this pair count")
    a = ap.parse_args()
    counts = collections.Counter()
    with open(os.path.join(a.data, "train.jsonl"), encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n >= a.sample:
                break
            for p, added in pieces(json.loads(line)["text"]):
                if not added:
                    counts[p] += 1
    print("%d distinct pre-tokens" % len(counts), flush=True)
    vocab = {t: i for i, (t, _) in enumerate(ADDED)}
    for b in range(256):
        vocab[BYTE_CHARS[b]] = len(vocab)
    merges = train_bpe(counts, a.vocab - len(vocab), a.min_frequency)
    for l, r in merges:
        if l + r not in vocab:  # two merge paths can spell the same token
            vocab[l + r] = len(vocab)
    write_files(a.out, vocab, merges)
    print("vocab %d (%d merges) -> %s" % (len(vocab), len(merges), a.out))


if __name__ == "__main__":
    main()
