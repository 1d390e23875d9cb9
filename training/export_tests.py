#!/usr/bin/python3
"""Writes the held-out data and the training program's reference values that the C++ tests of
the shipped model use (tests/data/logexplainer/, see tests/test_shipped_model.cpp).

Usage (after train.py; R as in README.md):
  export_tests.py --data $R/data --tok $R/tok --run $R/run --out tests/data/logexplainer [--n 200]

Writes:
  heldout.jsonl   the first N held-out examples of at most 512 tokens, in file order, each with
                  id, kinds, keywords, prompt (the chat-template text up to and including
                  <｜Assistant｜>), completion (the rest: <think>, reasoning, answer, EOS) and ids
                  (the token ids of prompt + completion, from the Python tokenizer that
                  verify_tokenizer.py holds against Hugging Face's).
  reference.json  per example the sum and count of -log p(token) over the completion tokens
                  (the first target is the token after <｜Assistant｜>, exactly train.py's loss),
                  from hf/model.safetensors in float32 with a float64 log-softmax; the mean over
                  all N examples; and train.py's final held-out loss (1000 examples).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402
from train import load_split, per_token_nll  # noqa: E402
from train_tokenizer import ASSISTANT, Tokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()

    torch.set_num_threads(2)
    tok = Tokenizer.from_file(os.path.join(a.tok, "tokenizer.json"))
    hf = os.path.join(a.run, "hf")
    with open(os.path.join(hf, "config.json")) as f:
        hf_cfg = json.load(f)
    with open(os.path.join(a.run, "metrics.json")) as f:
        metrics = json.load(f)
    cfg = dict(metrics["model_config"])
    net = M.DeepseekV3(cfg)
    state = M.load_safetensors(os.path.join(hf, "model.safetensors"))
    missing = net.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys, missing
    net.eval()

    test, _ = load_split(os.path.join(a.data, "test.jsonl"), tok)
    os.makedirs(a.out, exist_ok=True)
    examples = []
    refs = []
    for ids, start, ex in test[:a.n]:
        text = ex["text"]
        cut = text.index(ASSISTANT) + len(ASSISTANT)
        prompt, completion = text[:cut], text[cut:]
        assert tok.encode(prompt) == ids[:start], ex["id"]  # the prompt's ids are a prefix
        nll = per_token_nll(net, ids)[start - 1:]
        examples.append(dict(id=ex["id"], kinds=ex["kinds"], keywords=ex["keywords"], heldout=ex["heldout"],
                             prompt=prompt, completion=completion, ids=ids))
        refs.append(dict(id=ex["id"], nll_sum=sum(nll), n_tokens=len(nll)))
    with open(os.path.join(a.out, "heldout.jsonl"), "w", encoding="utf-8") as f:
        for e in examples:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    total = sum(r["nll_sum"] for r in refs)
    count = sum(r["n_tokens"] for r in refs)
    reference = dict(
        note="Computed by training/export_tests.py from hf/model.safetensors (float32 weights and "
             "activations, float64 log-softmax): the training program's own model code. mean_nll is "
             "sum(nll_sum) / sum(n_tokens) over the examples of heldout.jsonl, scored from the token "
             "after <｜Assistant｜> to the final <｜end▁of▁sentence｜>, as train.py's held-out loss.",
        n_examples=len(refs), mean_nll=total / count, n_tokens=count,
        train_heldout_loss_1000=metrics["heldout_loss"], train_loss_1000=metrics["train_loss"],
        model=hf_cfg.get("architectures", ["?"])[0], examples=refs)
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
    print("%d examples, %d completion tokens, mean NLL %.5f (train.py held-out loss on 1000: %.5f)" % (
        len(refs), count, total / count, metrics["heldout_loss"]))


if __name__ == "__main__":
    main()
