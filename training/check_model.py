#!/usr/bin/python3
"""Self-checks of model.py (seconds, tiny config): RoPE layout vs HF's formulation, MoE routing
vs a per-token loop, MLA vs a per-head loop, safetensors round trip, HF tensor names.
Exits non-zero on the first failure. Usage: check_model.py"""
import os
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)
    print("ok:", what)


def hf_style_rope(x, pos, dim, theta):
    """HF DeepSeek: de-interleave (view(d/2, 2).transpose), then x*cos + rotate_half(x)*sin with
    cos/sin = cat(freqs, freqs)."""
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    f = pos[:, None].double() * inv[None, :]
    emb = torch.cat((f, f), dim=-1)
    cos, sin = emb.cos().float(), emb.sin().float()
    s = x.shape
    x = x.view(*s[:-1], dim // 2, 2).transpose(-1, -2).reshape(s)
    half = torch.cat((-x[..., dim // 2:], x[..., :dim // 2]), dim=-1)
    return x * cos + half * sin


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = dict(M.TINY_CONFIG)
    net = M.DeepseekV3(cfg).eval()

    # 1. RoPE: same q.k as HF's layout, and relative (depends only on the position difference).
    d = cfg["qk_rope_head_dim"]
    q = torch.randn(5, d)
    k = torch.randn(5, d)
    pos = torch.arange(5)
    cos, sin = M.rope_tables(d, cfg["rope_theta"], 5)
    ours = M.apply_rope(q, cos, sin) @ M.apply_rope(k, cos, sin).T
    hf = hf_style_rope(q, pos, d, cfg["rope_theta"]) @ hf_style_rope(k, pos, d, cfg["rope_theta"]).T
    check(torch.allclose(ours, hf, atol=1e-5), "interleaved-pair RoPE gives HF DeepSeek's q.k")
    cos9, sin9 = M.rope_tables(d, cfg["rope_theta"], 9)
    a = M.apply_rope(q[:1], cos9[2:3], sin9[2:3]) @ M.apply_rope(k[:1], cos9[0:1], sin9[0:1]).T
    b = M.apply_rope(q[:1], cos9[8:9], sin9[8:9]) @ M.apply_rope(k[:1], cos9[6:7], sin9[6:7]).T
    check(torch.allclose(a, b, atol=1e-5), "RoPE score depends only on the position difference")

    # 2. MoE against a per-token loop written from the V3 description.
    moe = net.moe_layers()[0]
    with torch.no_grad():
        moe.gate.e_score_correction_bias.copy_(torch.randn(cfg["n_routed_experts"]) * 0.5)
    x = torch.randn(7, cfg["hidden_size"])
    with torch.no_grad():
        got = moe(x)
        want = []
        for t in range(7):
            s = torch.sigmoid(moe.gate.weight @ x[t])
            chosen = torch.topk(s + moe.gate.e_score_correction_bias, cfg["num_experts_per_tok"]).indices
            w = s[chosen] / s[chosen].sum() * cfg["routed_scaling_factor"]
            y = moe.shared_experts(x[t])
            for e, we in zip(chosen.tolist(), w):
                y = y + we * moe.experts[e](x[t])
            want.append(y)
    check(torch.allclose(got, torch.stack(want), atol=1e-5), "MoE = shared + normalized sigmoid top-k (bias only selects)")

    # 3. MLA against a per-head loop over the HF formulation.
    attn = net.model.layers[0].self_attn
    s_len = 6
    x = torch.randn(1, s_len, cfg["hidden_size"])
    cos, sin = M.rope_tables(d, cfg["rope_theta"], s_len)
    mask = torch.full((s_len, s_len), float("-inf")).triu(1)
    with torch.no_grad():
        got = attn(x, cos, sin, mask)[0]
        h, nope, vd, r = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"], d
        qall = attn.q_b_proj(attn.q_a_layernorm(attn.q_a_proj(x[0]))).view(s_len, h, nope + r)
        ckv = attn.kv_a_proj_with_mqa(x[0])
        kv = attn.kv_b_proj(attn.kv_a_layernorm(ckv[:, :cfg["kv_lora_rank"]])).view(s_len, h, nope + vd)
        kpe = hf_style_rope(ckv[:, cfg["kv_lora_rank"]:], torch.arange(s_len), r, cfg["rope_theta"])
        outs = []
        for head in range(h):
            qh = torch.cat((qall[:, head, :nope], hf_style_rope(qall[:, head, nope:], torch.arange(s_len), r, cfg["rope_theta"])), -1)
            kh = torch.cat((kv[:, head, :nope], kpe), -1)
            p = torch.softmax(qh @ kh.T / (nope + r) ** 0.5 + mask, -1)
            outs.append(p @ kv[:, head, nope:])
        want = attn.o_proj(torch.cat(outs, -1))
    check(torch.allclose(got, want, atol=1e-5), "MLA matches a per-head HF-layout computation")

    # 4. Export names and safetensors round trip.
    sd = net.hf_state_dict()
    names = set(sd)
    check(("lm_head.weight" in names) != cfg["tie_word_embeddings"], "lm_head.weight exported only when untied")
    for n in ["model.embed_tokens.weight", "model.norm.weight",
              "model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.q_a_layernorm.weight",
              "model.layers.0.self_attn.q_b_proj.weight", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
              "model.layers.0.self_attn.kv_a_layernorm.weight", "model.layers.0.self_attn.kv_b_proj.weight",
              "model.layers.0.self_attn.o_proj.weight", "model.layers.0.input_layernorm.weight",
              "model.layers.0.post_attention_layernorm.weight", "model.layers.0.mlp.gate_proj.weight",
              "model.layers.1.mlp.gate.weight", "model.layers.1.mlp.gate.e_score_correction_bias",
              "model.layers.1.mlp.experts.0.down_proj.weight", "model.layers.1.mlp.shared_experts.up_proj.weight"]:
        check(n in names, "exported tensor " + n)
    check(not any("rope_" in n for n in names), "no RoPE tables exported")
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "m.safetensors")
        M.save_safetensors(p, sd, {"format": "pt"})
        back = M.load_safetensors(p)
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
        check(n % 8 == 0, "safetensors header length is a multiple of 8")
    check(set(back) == names and all(torch.equal(back[k], sd[k]) for k in names), "safetensors round trip is exact")
    net2 = M.DeepseekV3(cfg).eval()
    missing = net2.load_state_dict(back, strict=False)
    check(not missing.unexpected_keys and set(missing.missing_keys) <= {"lm_head.weight"}, "export loads back")
    ids = torch.randint(0, cfg["vocab_size"], (2, 9))
    with torch.no_grad():
        check(torch.equal(net(ids), net2(ids)), "reloaded model gives identical logits")
        full = net(ids)
        part = net(ids[:, :5])
    check(torch.allclose(full[:, :5], part, atol=1e-5), "causal: later tokens do not change earlier logits")
    print("all model checks passed")


if __name__ == "__main__":
    main()
