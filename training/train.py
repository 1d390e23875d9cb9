#!/usr/bin/python3
"""Trains the tiny DeepSeek-V3 log explainer on CPU and exports a Hugging Face checkpoint.

Usage (see README.md for the full run):
  train.py --data DIR --tok DIR --out DIR [--config full|tiny|FILE.json] [--minutes M] [--steps N]

Reads DIR/train.jsonl and DIR/test.jsonl (gen_logs.py) and the tokenizer files (train_tokenizer.py).
Loss is next-token cross-entropy on the assistant turn only (from <think> to the final
<｜end▁of▁sentence｜>); the prompt is context. Writes into --out:
  loss.csv               step, tokens, train loss, held-out loss, lr, seconds, expert-load spread
  metrics.json           final train / held-out loss, parameters, time, settings
  hf/                    config.json, model.safetensors (F32), tokenizer.json, tokenizer_config.json,
                         generation_config.json
  expected_outputs.json  per-token NLL of a fixed held-out subset and greedy continuations of
                         3 held-out prompts, for the C++ engine's tests
"""
import argparse
import csv
import json
import math
import os
import random
import shutil
import sys
import time

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core box spinning threads made
# steps 4-5x slower. Must be set before torch starts its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402
from train_tokenizer import ASSISTANT, BOS, EOS, USER, Tokenizer  # noqa: E402

MAX_LEN = 512


def load_split(path, tok, limit=None):
    """Returns [(ids, first_loss_position, example)] for examples of at most MAX_LEN tokens, and the
    number dropped as too long."""
    out = []
    dropped = 0
    asst = tok.vocab[ASSISTANT]
    with open(path, encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(out) >= limit:
                break
            ex = json.loads(line)
            ids = tok.encode(ex["text"])
            if len(ids) > MAX_LEN:
                dropped += 1
                continue
            start = ids.index(asst) + 1  # first target: the token after <｜Assistant｜>
            out.append((ids, start, ex))
    return out, dropped


def make_batch(items):
    """Right-padded ids [b, s], targets [b, s] (-100 outside the assistant turn), mask [b, s]."""
    s = max(len(ids) for ids, _, _ in items)
    b = len(items)
    x = torch.zeros(b, s, dtype=torch.long)
    y = torch.full((b, s), -100, dtype=torch.long)
    m = torch.zeros(b, s)
    for i, (ids, start, _) in enumerate(items):
        n = len(ids)
        x[i, :n] = torch.tensor(ids)
        y[i, start - 1:n - 1] = torch.tensor(ids[start:])
        m[i, :n] = 1
    return x, y, m


def batches(data, tokens_per_batch, rng):
    """Endless length-bucketed batches: shuffle, sort chunks of 64*batch by length, cut batches
    of about tokens_per_batch padded tokens, shuffle the batches."""
    while True:
        order = list(range(len(data)))
        rng.shuffle(order)
        chunk = 2048
        for c in range(0, len(order), chunk):
            part = sorted(order[c:c + chunk], key=lambda i: len(data[i][0]))
            group = []
            out = []
            for i in part:
                n = len(data[i][0])
                if group and (len(group) + 1) * max(n, len(data[group[0]][0])) > tokens_per_batch:
                    out.append(group)
                    group = []
                group.append(i)
            if group:
                out.append(group)
            rng.shuffle(out)
            for g in out:
                yield [data[i] for i in g]


@torch.no_grad()
def evaluate(net, data, tokens_per_batch=8192, groups=None):
    """Mean NLL per assistant token over data. With groups (a function of the example dict),
    also returns {group: mean NLL} from the same pass."""
    net.eval()
    sums = {}
    items = sorted(data, key=lambda d: len(d[0]))
    i = 0
    while i < len(items):
        j = i + 1
        while j < len(items) and (j - i + 1) * len(items[j][0]) <= tokens_per_batch:
            j += 1
        x, y, _ = make_batch(items[i:j])
        logits = net(x)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100,
                              reduction="none").view(y.shape)
        for r, (_, _, ex) in enumerate(items[i:j]):
            key = groups(ex) if groups else None
            tot, cnt = sums.get(key, (0.0, 0))
            sums[key] = (tot + nll[r].sum().item(), cnt + int((y[r] != -100).sum().item()))
        i = j
    net.train()
    total = sum(t for t, _ in sums.values()) / max(1, sum(c for _, c in sums.values()))
    if groups:
        return total, {k: t / max(1, c) for k, (t, c) in sorted(sums.items())}
    return total


@torch.no_grad()
def per_token_nll(net, ids):
    """NLL of ids[t+1] given ids[:t+1], for every t (length len(ids)-1)."""
    net.eval()
    x = torch.tensor([ids])
    logp = torch.log_softmax(net(x)[0, :-1].double(), dim=-1)
    return [-logp[t, ids[t + 1]].item() for t in range(len(ids) - 1)]


@torch.no_grad()
def greedy(net, prompt, max_new, eos):
    """Greedy decoding without a cache (recomputes the prefix each step)."""
    net.eval()
    ids = list(prompt)
    out = []
    for _ in range(max_new):
        logits = net(torch.tensor([ids[-MAX_LEN:]]))[0, -1]
        nxt = int(torch.argmax(logits).item())
        out.append(nxt)
        ids.append(nxt)
        if nxt == eos:
            break
    return out


def prompt_of(ex):
    return BOS + ex["system"] + USER + ex["excerpt"] + ASSISTANT + "<think>\n"


def export(net, cfg, tok_dir, out_dir):
    hf = os.path.join(out_dir, "hf")
    os.makedirs(hf, exist_ok=True)
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump(M.hf_config(cfg), f, indent=1)
    M.save_safetensors(os.path.join(hf, "model.safetensors"), net.hf_state_dict(), {"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, name), os.path.join(hf, name))
    with open(os.path.join(hf, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 0, "eos_token_id": 1, "do_sample": False, "max_new_tokens": 200,
                   "transformers_version": "4.46.0"}, f, indent=1)
    return hf


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default="full", help="full, tiny, or a JSON file of config fields")
    ap.add_argument("--steps", type=int, default=100000, help="upper bound on optimizer steps")
    ap.add_argument("--minutes", type=float, default=45.0,
                    help="stop training after this long (the rest of the run takes ~5 more minutes)")
    ap.add_argument("--batch-tokens", type=int, default=6144, help="padded tokens per batch")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--bias-rate", type=float, default=1e-2,
                    help="expert-bias balancing step (V3 used 1e-3 over far more steps)")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--eval-examples", type=int, default=300, help="held-out examples per periodic eval")
    ap.add_argument("--final-eval-examples", type=int, default=1000, help="examples for the final losses")
    ap.add_argument("--train-limit", type=int, default=None, help="use only the first N training examples")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    if a.config in ("full", "tiny"):
        cfg = dict(M.FULL_CONFIG if a.config == "full" else M.TINY_CONFIG)
    else:
        with open(a.config) as f:
            cfg = dict(M.FULL_CONFIG, **json.load(f))
    tok = Tokenizer.from_file(os.path.join(a.tok, "tokenizer.json"))
    cfg["vocab_size"] = max(cfg["vocab_size"], len(tok.vocab))

    t0 = time.time()
    train, train_dropped = load_split(os.path.join(a.data, "train.jsonl"), tok, a.train_limit)
    test, test_dropped = load_split(os.path.join(a.data, "test.jsonl"), tok)
    print("train %d examples (%d over %d tokens dropped), test %d (%d dropped), tokenized in %.0fs" % (
        len(train), train_dropped, MAX_LEN, len(test), test_dropped, time.time() - t0), flush=True)
    eval_test = test[:a.eval_examples]

    net = M.DeepseekV3(cfg)
    n_params = M.count_params(net)
    print("parameters %d (active per token %d)" % (n_params, M.active_params(cfg)), flush=True)
    decay = [p for n, p in net.named_parameters() if p.dim() > 1 and "embed" not in n]
    no_decay = [p for n, p in net.named_parameters() if not (p.dim() > 1 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95))

    log_path = os.path.join(a.out, "loss.csv")
    log = open(log_path, "w", newline="")
    w = csv.writer(log)
    w.writerow(["step", "tokens", "train_loss", "heldout_loss", "lr", "seconds", "expert_load_max_over_mean"])
    stream = batches(train, a.batch_tokens, rng)
    start = time.time()
    deadline = start + a.minutes * 60
    step = 0
    tokens = 0
    run_loss = 0.0
    run_n = 0
    # Cosine decay over the expected number of steps (re-estimated from the measured step time)
    # or over the time budget, whichever runs out first.
    planned = a.steps
    while step < a.steps and time.time() < deadline:
        if step == 20:
            per_step = (time.time() - start) / 20
            planned = min(a.steps, int(a.minutes * 60 / per_step))
            print("%.2fs/step -> about %d steps" % (per_step, planned), flush=True)
        # Progress is the larger of steps done and time used, so the schedule still anneals to
        # its floor by the deadline when the box gets busier (slower steps) after step 20.
        progress = min(1.0, max(step / max(1, planned), (time.time() - start) / (a.minutes * 60)))
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y, m = make_batch(next(stream))
        logits = net(x, m)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        spread = []
        with torch.no_grad():
            for moe in net.moe_layers():
                load = moe.last_load
                mean = load.mean()
                spread.append((load.max() / mean).item() if mean > 0 else 0.0)
                # Auxiliary-loss-free balancing: raise the bias of under-loaded experts.
                moe.gate.e_score_correction_bias += a.bias_rate * torch.sign(mean - load)
        step += 1
        tokens += int(m.sum().item())
        run_loss += loss.item()
        run_n += 1
        if step % a.eval_every == 0 or step == a.steps or time.time() >= deadline:
            held = evaluate(net, eval_test)
            w.writerow([step, tokens, "%.5f" % (run_loss / run_n), "%.5f" % held, "%.6f" % lr,
                        "%.1f" % (time.time() - start), "%.2f" % max(spread or [0])])
            log.flush()
            print("step %d tokens %d train %.4f held-out %.4f lr %.2e %.0fs" % (
                step, tokens, run_loss / run_n, held, lr, time.time() - start), flush=True)
            run_loss = 0.0
            run_n = 0
        elif step % 10 == 0:
            w.writerow([step, tokens, "%.5f" % loss.item(), "", "%.6f" % lr, "%.1f" % (time.time() - start), "%.2f" % max(spread or [0])])
    log.close()
    train_seconds = time.time() - start

    final_set = test[:a.final_eval_examples]
    final_train = evaluate(net, train[:a.final_eval_examples])
    # Held-out loss also split by how the example is held out (new values / new pair of kinds too).
    final_test, by_kind = evaluate(net, final_set, groups=lambda ex: ex["heldout"])
    print("final: train loss %.4f, held-out loss %.4f (%d examples each), %.0f s" % (
        final_train, final_test, len(final_set), train_seconds), flush=True)
    print("held-out loss by split: %s" % json.dumps(by_kind), flush=True)
    hf = export(net, cfg, a.tok, a.out)

    # Expected outputs for the engine: recompute from the exported file, so they describe it.
    net2 = M.DeepseekV3(cfg)
    state = M.load_safetensors(os.path.join(hf, "model.safetensors"))
    missing = net2.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys and all(k.startswith("rope_") or (k == "lm_head.weight" and cfg["tie_word_embeddings"]) for k in missing.missing_keys), missing
    subset = test[:8]
    ppl = []
    for ids, start_pos, ex in subset:
        nll = per_token_nll(net2, ids)
        ppl.append(dict(id=ex["id"], ids=ids, assistant_start=start_pos, nll=[round(v, 6) for v in nll],
                        mean_nll_all=sum(nll) / len(nll), mean_nll_assistant=sum(nll[start_pos - 1:]) / len(nll[start_pos - 1:])))
    gens = []
    for ids, _, ex in test[:3]:
        prompt = tok.encode(prompt_of(ex))
        out = greedy(net2, prompt, 200, tok.vocab[EOS])
        gens.append(dict(id=ex["id"], prompt_ids=prompt, greedy_ids=out, greedy_text=tok.decode(out),
                         reference_answer=ex["answer"], keywords=ex["keywords"]))
        print("--- %s (%s)\n%s" % (ex["id"], ", ".join(ex["kinds"]), tok.decode(out)), flush=True)
    all_nll = [v for p in ppl for v in p["nll"]]
    expected = dict(
        note="Computed in float64 log-softmax over float32 logits from hf/model.safetensors. nll[t] is "
             "-log p(ids[t+1] | ids[:t+1]); assistant_start is the first target position of the "
             "answer (loss in training counts targets from there). Greedy: argmax at every step, "
             "no sampling, stop at <｜end▁of▁sentence｜> (id 1) or 200 tokens.",
        perplexity_subset=ppl, mean_nll_all_tokens=sum(all_nll) / len(all_nll),
        greedy=gens)
    with open(os.path.join(a.out, "expected_outputs.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False)
    metrics = dict(config=a.config, steps=step, tokens_seen=tokens, train_seconds=round(train_seconds),
                   train_loss=final_train, heldout_loss=final_test, final_eval_examples=len(final_set),
                   heldout_loss_by_kind=by_kind,
                   train_examples=len(train), train_dropped_over_512=train_dropped,
                   test_dropped_over_512=test_dropped, parameters=n_params,
                   active_parameters=M.active_params(cfg), threads=a.threads, seed=a.seed,
                   lr=a.lr, batch_tokens=a.batch_tokens,
                   torch=torch.__version__, model_config=cfg)
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    print("wrote %s, %s, %s" % (hf, log_path, os.path.join(a.out, "expected_outputs.json")))


if __name__ == "__main__":
    main()
