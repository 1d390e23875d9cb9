#!/usr/bin/python3
"""Checks that the tokenizer files are standard: encodes corpus samples with this project's
Python BPE and with the JS port of Hugging Face tokenizers (@lenml/tokenizers, installed in
tests/node/node_modules) and requires identical ids, decodes, and chat-template renderings.

Usage: verify_tokenizer.py --data DIR --tok DIR [--n 300]
Exits non-zero on any mismatch.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_tokenizer import ASSISTANT, BOS, USER, Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--n", type=int, default=300)
    a = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(a.tok, "tokenizer.json"))
    samples = []
    for split in ("train", "test"):
        with open(os.path.join(a.data, split + ".jsonl"), encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= a.n // 2:
                    break
                ex = json.loads(line)
                # Whole rendered examples, the bare excerpt and a few awkward strings.
                for text in (ex["text"], ex["excerpt"]):
                    samples.append(dict(text=text, ids=tok.encode(text)))
                samples.append(dict(chat=[{"role": "system", "content": ex["system"]}] if ex["system"] else [],
                                    user=ex["excerpt"],
                                    prompt=BOS + ex["system"] + USER + ex["excerpt"] + ASSISTANT + "<think>\n"))
    for text in ["", " ", "  leading spaces", "tabs\tand\r\nCRLF\n\n\nlines", "Ünïcödé ✓ 日本語 😀",
                 "don't we'll I'M", "0x1234abcd 3.14159 1,000,000", "<think>\nx\n</think>\n\n",
                 "a<｜User｜>b<｜Assistant｜>c<｜end▁of▁sentence｜>"]:
        samples.append(dict(text=text, ids=tok.encode(text)))
    for s in samples:
        if "text" in s and tok.decode(s["ids"]) != s["text"]:
            sys.exit("python decode does not round-trip %r" % s["text"][:80])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "samples.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(samples, f, ensure_ascii=False)
        r = subprocess.run(["node", os.path.join(HERE, "verify_tokenizer.mjs"), a.tok, path])
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
