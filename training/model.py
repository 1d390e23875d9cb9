"""A tiny DeepSeek-V3 language model in PyTorch (the layer design of DeepseekV3ForCausalLM).

Per layer:  h = x + Attn(RMSNorm(x));  out = h + FFN(RMSNorm(h))

Attention is MLA (multi-head latent attention):
  q      = q_b_proj(q_a_layernorm(q_a_proj(x)))            -> [heads, nope + rope]
  ckv    = kv_a_proj_with_mqa(x)                           -> [kv_lora_rank + rope]
  latent, k_rope = split(ckv)                              (k_rope is one head shared by all)
  kv     = kv_b_proj(kv_a_layernorm(latent))               -> [heads, nope + v]   (per head: k_nope then v)
  k      = concat(k_nope, rope(k_rope)),  q = concat(q_nope, rope(q_rope))
  softmax(q.k / sqrt(nope + rope)) v  -> o_proj

RoPE touches only the rope part and rotates ADJACENT PAIRS (x[2i], x[2i+1]) by pos * theta^(-2i/rope_dim)
(the "interleaved" / GPT-J layout, llama.cpp's LLAMA_ROPE_TYPE_NORM). HF's DeepSeek code reaches the
same scores by de-interleaving q_rope and k_rope (view(d/2, 2).transpose) and applying rotate_half;
the permutation is the same for q and k, so q.k is unchanged. The weights therefore need NO
permutation for GGUF (llama.cpp's deepseek2 converter permutes nothing; it only splits kv_b_proj
per head into k_b (transposed) and v_b and stacks the experts).

FFN: layers < first_k_dense_replace use a dense SwiGLU MLP (intermediate_size); later layers an MoE:
  s = sigmoid(gate(x)); experts chosen by top-k of (s + e_score_correction_bias) (the bias only
  chooses); weights = s[chosen] / sum(s[chosen]) (norm_topk_prob) * routed_scaling_factor;
  out = shared_experts(x) + sum_k weight_k * expert_k(x), every expert a SwiGLU of moe_intermediate_size.
The bias is not learned by gradient: train.py nudges it after each step towards balanced expert
load (DeepSeek-V3's auxiliary-loss-free balancing).
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Field names follow Hugging Face's DeepseekV3Config.
FULL_CONFIG = dict(
    vocab_size=4096, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
    q_lora_rank=96, kv_lora_rank=64, qk_rope_head_dim=16, qk_nope_head_dim=32, v_head_dim=32,
    intermediate_size=768, moe_intermediate_size=256, n_routed_experts=8, num_experts_per_tok=2,
    n_shared_experts=1, first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=True,
    scoring_func="sigmoid", topk_method="noaux_tc", n_group=1, topk_group=1, rope_theta=10000.0,
    rms_norm_eps=1e-6, max_position_embeddings=1024, tie_word_embeddings=True,
)
# For development and tests: minutes on one core. Every matrix row length (and the k_b/v_b
# split of kv_b_proj) stays a multiple of 32, so it quantizes to Q8_0 like the full model.
TINY_CONFIG = dict(FULL_CONFIG, hidden_size=64, num_hidden_layers=3, num_attention_heads=2,
                   q_lora_rank=32, kv_lora_rank=32, qk_rope_head_dim=16, qk_nope_head_dim=32,
                   v_head_dim=32, intermediate_size=128, moe_intermediate_size=64,
                   n_routed_experts=4)


def hf_config(cfg):
    """config.json content: the model fields plus the fixed DeepseekV3 ones."""
    out = dict(architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3")
    out.update(cfg)
    out.update(num_key_value_heads=cfg["num_attention_heads"], hidden_act="silu", moe_layer_freq=1,
               ep_size=1, num_nextn_predict_layers=0, attention_bias=False, attention_dropout=0.0,
               rope_scaling=None, initializer_range=0.02, bos_token_id=0, eos_token_id=1,
               use_cache=True, torch_dtype="float32")
    return out


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(dim, theta, n_pos):
    """cos/sin of shape [n_pos, dim/2]: pair i of position p turns by p * theta^(-2i/dim)."""
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    """x [..., seq, dim] in the interleaved layout: rotates (x[2i], x[2i+1]) for each i."""
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    r0 = x0 * cos - x1 * sin
    r1 = x0 * sin + x1 * cos
    return torch.stack((r0, r1), dim=-1).flatten(-2)


class MLA(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h = c["num_attention_heads"]
        self.nope = c["qk_nope_head_dim"]
        self.rope = c["qk_rope_head_dim"]
        self.vd = c["v_head_dim"]
        self.kvr = c["kv_lora_rank"]
        d = c["hidden_size"]
        self.q_a_proj = nn.Linear(d, c["q_lora_rank"], bias=False)
        self.q_a_layernorm = RMSNorm(c["q_lora_rank"], c["rms_norm_eps"])
        self.q_b_proj = nn.Linear(c["q_lora_rank"], self.h * (self.nope + self.rope), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(d, self.kvr + self.rope, bias=False)
        self.kv_a_layernorm = RMSNorm(self.kvr, c["rms_norm_eps"])
        self.kv_b_proj = nn.Linear(self.kvr, self.h * (self.nope + self.vd), bias=False)
        self.o_proj = nn.Linear(self.h * self.vd, d, bias=False)
        self.scale = 1.0 / math.sqrt(self.nope + self.rope)

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))).view(b, s, self.h, self.nope + self.rope).transpose(1, 2)
        q_nope, q_rope = q.split([self.nope, self.rope], dim=-1)
        ckv = self.kv_a_proj_with_mqa(x)
        latent, k_rope = ckv.split([self.kvr, self.rope], dim=-1)
        kv = self.kv_b_proj(self.kv_a_layernorm(latent)).view(b, s, self.h, self.nope + self.vd).transpose(1, 2)
        k_nope, v = kv.split([self.nope, self.vd], dim=-1)
        q_rope = apply_rope(q_rope, cos, sin)
        k_rope = apply_rope(k_rope.unsqueeze(1), cos, sin).expand(b, self.h, s, self.rope)
        qf = torch.cat((q_nope, q_rope), dim=-1)
        kf = torch.cat((k_nope, k_rope), dim=-1)
        att = torch.matmul(qf, kf.transpose(-1, -2)) * self.scale + mask
        att = torch.softmax(att, dim=-1)
        out = torch.matmul(att, v).transpose(1, 2).reshape(b, s, self.h * self.vd)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    def __init__(self, d, n_experts):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_experts, d))
        # Selection-only bias (DeepSeek-V3 "noaux_tc"); a buffer so that the optimizer skips it.
        self.register_buffer("e_score_correction_bias", torch.zeros(n_experts))


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.k = c["num_experts_per_tok"]
        self.n = c["n_routed_experts"]
        self.norm = c["norm_topk_prob"]
        self.scaling = c["routed_scaling_factor"]
        self.experts = nn.ModuleList(MLP(d, c["moe_intermediate_size"]) for _ in range(self.n))
        self.gate = Gate(d, self.n)
        self.shared_experts = MLP(d, c["moe_intermediate_size"] * c["n_shared_experts"])
        self.last_load = None  # tokens routed to each expert in the last forward (for balancing)

    def route(self, x):
        """x [T, d] -> (chosen experts [T, k], weights [T, k])."""
        scores = torch.sigmoid(F.linear(x, self.gate.weight))
        chosen = torch.topk(scores + self.gate.e_score_correction_bias, self.k, dim=-1, sorted=True).indices
        w = scores.gather(1, chosen)
        if self.k > 1 and self.norm:
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
        return chosen, w * self.scaling

    def forward(self, x, token_mask=None):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        chosen, w = self.route(x)
        out = torch.zeros_like(x)
        load = torch.zeros(self.n)
        for e in range(self.n):
            tok, slot = torch.nonzero(chosen == e, as_tuple=True)
            if tok.numel() == 0:
                continue
            if token_mask is not None:
                load[e] = token_mask.reshape(-1)[tok].sum()
            y = self.experts[e](x[tok]) * w[tok, slot, None]
            out.index_add_(0, tok, y)
        self.last_load = load
        return (out + self.shared_experts(x)).reshape(shape)


class Layer(nn.Module):
    def __init__(self, c, index):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = MLA(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.is_moe = index >= c["first_k_dense_replace"]
        self.mlp = MoE(c) if self.is_moe else MLP(c["hidden_size"], c["intermediate_size"])

    def forward(self, x, cos, sin, mask, token_mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        h = self.post_attention_layernorm(x)
        return x + (self.mlp(h, token_mask) if self.is_moe else self.mlp(h))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Layer(c, i) for i in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class DeepseekV3(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = dict(cfg)
        self.model = Inner(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        if cfg["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight
        cos, sin = rope_tables(cfg["qk_rope_head_dim"], cfg["rope_theta"], cfg["max_position_embeddings"])
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        n_layers = self.cfg["num_hidden_layers"]
        for name, p in self.named_parameters():
            if p.dim() == 1:
                continue  # norm weights stay 1
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, std=std / math.sqrt(2 * n_layers))
            else:
                nn.init.normal_(p, std=std)

    def forward(self, ids, token_mask=None):
        """ids [b, s] -> logits [b, s, vocab]. token_mask [b, s] (1 = real token) only feeds the
        expert-load statistics; causal masking already keeps right padding out of real tokens."""
        b, s = ids.shape
        x = self.model.embed_tokens(ids)
        cos, sin = self.rope_cos[:s], self.rope_sin[:s]
        mask = torch.full((s, s), float("-inf")).triu(1)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask, token_mask)
        return self.lm_head(self.model.norm(x))

    def moe_layers(self):
        return [l.mlp for l in self.model.layers if l.is_moe]

    def hf_state_dict(self):
        """Tensors under Hugging Face DeepseekV3 names, float32, contiguous."""
        out = {}
        for name, t in self.state_dict().items():
            if name.startswith("rope_"):
                continue
            if name == "lm_head.weight" and self.cfg["tie_word_embeddings"]:
                continue
            out[name] = t.detach().float().contiguous()
        return out


def count_params(model):
    seen = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def active_params(cfg):
    """Parameters touched per token (embedding lookup not counted, lm_head counted)."""
    d = cfg["hidden_size"]
    h = cfg["num_attention_heads"]
    attn = (d * cfg["q_lora_rank"] + cfg["q_lora_rank"] * h * (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"])
            + d * (cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"])
            + cfg["kv_lora_rank"] * h * (cfg["qk_nope_head_dim"] + cfg["v_head_dim"]) + h * cfg["v_head_dim"] * d)
    dense = 3 * d * cfg["intermediate_size"]
    moe = 3 * d * cfg["moe_intermediate_size"] * (cfg["num_experts_per_tok"] + cfg["n_shared_experts"]) + d * cfg["n_routed_experts"]
    L = cfg["num_hidden_layers"]
    k = cfg["first_k_dense_replace"]
    return L * attn + k * dense + (L - k) * moe + d * cfg["vocab_size"]


def save_safetensors(path, tensors, metadata=None):
    """Writes a .safetensors file: u64 little-endian header size, JSON header (dtype, shape,
    data_offsets per tensor, optional __metadata__), then the raw little-endian data."""
    dtypes = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
              torch.int32: "I32"}
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].contiguous().cpu()
        raw = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((8 - len(head) % 8) % 8)  # keeps the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    """Reads what save_safetensors writes (F32/F16/BF16/I32/I64)."""
    import numpy as np
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    np_types = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        if h["dtype"] == "BF16":
            raw = torch.frombuffer(bytearray(data[a:b]), dtype=torch.int16)
            out[name] = raw.view(torch.bfloat16).reshape(h["shape"])
        else:
            out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np_types[h["dtype"]]).copy()).reshape(h["shape"])
    return out
