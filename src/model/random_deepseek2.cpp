// Deterministic random-weight `deepseek2` GGUF models (see random_deepseek2.hpp).
#include "model/random_deepseek2.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "model/random_model.hpp"
#include "slm/dtype.hpp"

namespace slm::mkmodel {

// ---- Presets and options ---------------------------------------------------------------------

Expected<Spec> deepseek2_preset(std::string_view name) {
  Spec s;
  s.arch = "deepseek2";
  s.name = "random-deepseek2-" + std::string(name);
  s.qkv_bias = false;
  s.n_head_kv = 1;
  s.rms_eps = 1e-6;
  Deepseek2Spec& d = s.ds;
  if (name == "tiny") {
    // Rows of 256 (n_embd) hold every K-quant; the narrower matrices fall back to Q8_0.
    s.n_embd = 256, s.n_layer = 3, s.n_head = 4, s.n_ff = 512, s.n_rot = 16, s.n_ctx_train = 4096;
    d.q_lora_rank = 128, d.kv_lora_rank = 128, d.qk_nope = 32, d.v_head = 32, d.n_dense_lead = 1;
    d.n_expert = 8, d.n_expert_used = 2, d.n_expert_shared = 1, d.n_ff_exp = 128;
    d.n_group = 4, d.n_group_used = 2, d.gating = 2, d.probs_bias = true, d.weights_norm = true, d.weights_scale = 2.5;
    d.split_kv_b = true, d.yarn_factor = 4.0, d.yarn_orig_ctx = 64, d.yarn_log_mul = 0.1;
  } else if (name == "tiny-lite") {
    s.n_embd = 256, s.n_layer = 3, s.n_head = 4, s.n_ff = 512, s.n_rot = 16, s.n_ctx_train = 4096;
    d.q_lora_rank = 0, d.kv_lora_rank = 128, d.qk_nope = 32, d.v_head = 32, d.n_dense_lead = 1;
    d.n_expert = 8, d.n_expert_used = 3, d.n_expert_shared = 2, d.n_ff_exp = 64;
    d.n_group = 1, d.n_group_used = 1, d.gating = 1, d.probs_bias = false, d.weights_norm = false, d.weights_scale = 1.0;
    d.split_kv_b = false, d.yarn_factor = 4.0, d.yarn_orig_ctx = 64, d.yarn_log_mul = 0.0707;
  } else if (name == "v2-lite") {
    // DeepSeek-V2-Lite: 27 layers (first dense, FFN 10944), 64 routed experts of 1408 (6 used)
    // + 2 shared, no q_lora, kv_lora 512, rope 64, nope 128, v 128, 16 heads, vocab 102400,
    // YaRN factor 40 over 4096 with mscale_all_dim 0.707.
    s.n_embd = 2048, s.n_layer = 27, s.n_head = 16, s.n_ff = 10944, s.n_rot = 64, s.n_vocab = 102400;
    s.n_ctx_train = 163840, s.rope_base = 10000.0;
    d.q_lora_rank = 0, d.kv_lora_rank = 512, d.qk_nope = 128, d.v_head = 128, d.n_dense_lead = 1;
    d.n_expert = 64, d.n_expert_used = 6, d.n_expert_shared = 2, d.n_ff_exp = 1408;
    d.n_group = 1, d.n_group_used = 1, d.gating = 1, d.probs_bias = false, d.weights_norm = false, d.weights_scale = 1.0;
    d.split_kv_b = true, d.yarn_factor = 40.0, d.yarn_orig_ctx = 4096, d.yarn_log_mul = 0.0707;
  } else {
    return errorf("--preset: expected tiny, tiny-lite or v2-lite for deepseek2, got '%.*s'", static_cast<int>(name.size()), name.data());
  }
  return s;
}

void deepseek2_normalize(Spec* spec) {
  spec->n_head_kv = spec->ds.split_kv_b ? 1 : spec->n_head;
  spec->qkv_bias = false;
  spec->llama3_rope = false;
}

const char* const kDeepseek2Usage =
    "  deepseek2 (--arch deepseek2 --preset tiny|tiny-lite|v2-lite):\n"
    "             --ds-q-lora N --ds-kv-lora N --ds-nope N --ds-v N (rope dims: --n-rot; dense FFN: --n-ff)\n"
    "             --ds-dense N --ds-experts N --ds-used N --ds-shared N --ds-ff-exp N\n"
    "             --ds-groups N --ds-groups-used N --ds-gating softmax|sigmoid --ds-bias 0|1\n"
    "             --ds-norm 0|1 --ds-scale F --ds-kv-b split|fused --ds-kb-type TYPE|model\n"
    "             --ds-yarn-factor F (1: no YaRN) --ds-yarn-orig-ctx N --ds-yarn-log-mul F\n"
    "             --ds-expert-std F --ds-router-std F\n"
    "             --ds-fill-period N (draw N rows per matrix, repeat them: fast benchmark files)\n";

Status deepseek2_option(Spec& spec, std::string_view flag, const char* value) {
  Deepseek2Spec& d = spec.ds;
  const std::string f(flag);
  char* end = nullptr;
  const long long iv = std::strtoll(value, &end, 10);
  const bool is_int = end != value && *end == '\0';
  const double fv = std::strtod(value, &end);
  const bool is_num = end != value && *end == '\0';
  auto bad = [&]() { return errorf("bad value for %s: '%s'", f.c_str(), value); };
  auto set_int = [&](int64_t* dst, int64_t lo) -> Status {
    if (!is_int || iv < lo) return bad();
    *dst = iv;
    return Status::success();
  };
  auto set_num = [&](double* dst) -> Status {
    if (!is_num) return bad();
    *dst = fv;
    return Status::success();
  };
  auto set_bool = [&](bool* dst) -> Status {
    if (!is_int || (iv != 0 && iv != 1)) return bad();
    *dst = iv == 1;
    return Status::success();
  };
  if (f == "--ds-q-lora") return set_int(&d.q_lora_rank, 0);
  if (f == "--ds-kv-lora") return set_int(&d.kv_lora_rank, 1);
  if (f == "--ds-nope") return set_int(&d.qk_nope, 1);
  if (f == "--ds-v") return set_int(&d.v_head, 1);
  if (f == "--ds-dense") return set_int(&d.n_dense_lead, 0);
  if (f == "--ds-experts") return set_int(&d.n_expert, 1);
  if (f == "--ds-used") return set_int(&d.n_expert_used, 1);
  if (f == "--ds-shared") return set_int(&d.n_expert_shared, 0);
  if (f == "--ds-ff-exp") return set_int(&d.n_ff_exp, 1);
  if (f == "--ds-groups") return set_int(&d.n_group, 1);
  if (f == "--ds-groups-used") return set_int(&d.n_group_used, 1);
  if (f == "--ds-yarn-orig-ctx") return set_int(&d.yarn_orig_ctx, 1);
  if (f == "--ds-scale") return set_num(&d.weights_scale);
  if (f == "--ds-yarn-factor") return set_num(&d.yarn_factor);
  if (f == "--ds-yarn-log-mul") return set_num(&d.yarn_log_mul);
  if (f == "--ds-expert-std") return set_num(&d.expert_std);
  if (f == "--ds-router-std") return set_num(&d.router_std);
  if (f == "--ds-fill-period") return set_int(&d.fill_period, 0);
  if (f == "--ds-bias") return set_bool(&d.probs_bias);
  if (f == "--ds-norm") return set_bool(&d.weights_norm);
  if (f == "--ds-gating") {
    if (std::string_view(value) == "softmax") d.gating = 1;
    else if (std::string_view(value) == "sigmoid") d.gating = 2;
    else return bad();
    return Status::success();
  }
  if (f == "--ds-kv-b") {
    if (std::string_view(value) == "split") d.split_kv_b = true;
    else if (std::string_view(value) == "fused") d.split_kv_b = false;
    else return bad();
    return Status::success();
  }
  if (f == "--ds-kb-type") {
    d.kb_type = std::string_view(value) == "model" ? "" : value;
    return Status::success();
  }
  return errorf("unknown option %s", f.c_str());
}

// ---- Types -----------------------------------------------------------------------------------

Expected<DType> deepseek2_tensor_type(const Spec& spec, std::string_view name, int64_t layer, int64_t n_cols) {
  if (name.ends_with("norm.weight") || name.ends_with(".bias") || name.ends_with("ffn_gate_inp.weight")) return DType::F32;
  const bool kb = name.ends_with("attn_k_b.weight") || name.ends_with("attn_v_b.weight") || name.ends_with("attn_kv_b.weight");
  std::string type = kb && !spec.ds.kb_type.empty() ? spec.ds.kb_type : spec.type;
  DType t;
  if (type == "Q4_K_M" || type == "q4_k_m") {
    // llama.cpp's Q4_K_M: Q6_K for the output and, in the layers q4_k_m_more_bits picks, for the
    // V projection and the FFN down projections; Q4_K elsewhere.
    const bool more = name.ends_with("attn_kv_b.weight") || name.ends_with("attn_v_b.weight") ||
                      name.ends_with("ffn_down.weight") || name.ends_with("ffn_down_exps.weight") ||
                      name.ends_with("ffn_down_shexp.weight");
    if (name == "output.weight") t = DType::Q6_K;
    else if (name == "token_embd.weight") t = spec.tied_output ? DType::Q6_K : DType::Q4_K;
    else t = more && q4_k_m_more_bits(layer, spec.n_layer) ? DType::Q6_K : DType::Q4_K;
  } else {
    const TypeTraits* tt = type_traits_by_name(type);
    if (tt == nullptr) return errorf("--type: unknown type '%s'", type.c_str());
    if (tt->from_float == nullptr) return errorf("--type: %s has no quantizer", tt->name);
    t = tt->type;
  }
  // Rows that the type's blocks do not tile: the next finer type that fits (llama.cpp falls
  // back the same way for K-quants on narrow rows).
  if (n_cols % traits(t).block_elems != 0) t = n_cols % 32 == 0 ? DType::Q8_0 : DType::F16;
  return t;
}

// ---- Tensors ---------------------------------------------------------------------------------

namespace {

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t name_hash(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

struct Plan {
  std::string name;
  std::vector<int64_t> shape;  // ne[0] first
  int64_t layer = -1;
  double mean = 0.0, std = 0.0;
};

}  // namespace

Status build_deepseek2_tensors(const Spec& spec, gguf::Writer& w) {
  const Deepseek2Spec& d = spec.ds;
  const std::string a = "deepseek2.";
  const int64_t E = spec.n_embd, H = spec.n_head, V = spec.n_vocab, dr = spec.n_rot;
  const int64_t dn = d.qk_nope, dv = d.v_head, dc = d.kv_lora_rank, dk = dn + dr;
  auto pos = [](const char* what, int64_t v) -> Status {
    if (v <= 0) return errorf("%s must be positive, got %lld", what, static_cast<long long>(v));
    return Status::success();
  };
  SLM_TRY(pos("--n-rot (deepseek2 rope dims)", dr));
  SLM_TRY(pos("--ds-kv-lora", dc));
  SLM_TRY(pos("--ds-nope", dn));
  SLM_TRY(pos("--ds-v", dv));
  if (dr % 2 != 0) return errorf("--n-rot must be even, got %lld", static_cast<long long>(dr));
  if (d.n_dense_lead > spec.n_layer) return errorf("--ds-dense %lld exceeds --n-layer %lld", static_cast<long long>(d.n_dense_lead), static_cast<long long>(spec.n_layer));
  const bool moe = d.n_dense_lead < spec.n_layer;
  if (moe) {
    SLM_TRY(pos("--ds-experts", d.n_expert));
    SLM_TRY(pos("--ds-used", d.n_expert_used));
    SLM_TRY(pos("--ds-ff-exp", d.n_ff_exp));
    if (d.n_expert_used > d.n_expert) return errorf("--ds-used %lld exceeds --ds-experts %lld", static_cast<long long>(d.n_expert_used), static_cast<long long>(d.n_expert));
    if (d.n_group > 1 && (d.n_expert % d.n_group != 0 || d.n_group_used > d.n_group || d.n_group_used * (d.n_expert / d.n_group) < d.n_expert_used))
      return errorf("--ds-groups %lld / --ds-groups-used %lld: expected a divisor of the expert count whose used groups hold --ds-used experts",
                    static_cast<long long>(d.n_group), static_cast<long long>(d.n_group_used));
  }

  // Keys (the common ones are written by build()).
  w.add_uint32(a + "leading_dense_block_count", static_cast<uint32_t>(d.n_dense_lead));
  w.add_uint32(a + "attention.q_lora_rank", static_cast<uint32_t>(d.q_lora_rank));
  w.add_uint32(a + "attention.kv_lora_rank", static_cast<uint32_t>(dc));
  if (d.split_kv_b) {
    w.add_uint32(a + "attention.key_length", static_cast<uint32_t>(dc + dr));
    w.add_uint32(a + "attention.value_length", static_cast<uint32_t>(dc));
    w.add_uint32(a + "attention.key_length_mla", static_cast<uint32_t>(dk));
    w.add_uint32(a + "attention.value_length_mla", static_cast<uint32_t>(dv));
  } else {
    w.add_uint32(a + "attention.key_length", static_cast<uint32_t>(dk));
    w.add_uint32(a + "attention.value_length", static_cast<uint32_t>(dv));
  }
  if (moe) {
    w.add_uint32(a + "expert_count", static_cast<uint32_t>(d.n_expert));
    w.add_uint32(a + "expert_used_count", static_cast<uint32_t>(d.n_expert_used));
    w.add_uint32(a + "expert_shared_count", static_cast<uint32_t>(d.n_expert_shared));
    w.add_uint32(a + "expert_feed_forward_length", static_cast<uint32_t>(d.n_ff_exp));
    w.add_float32(a + "expert_weights_scale", static_cast<float>(d.weights_scale));
    w.add_bool(a + "expert_weights_norm", d.weights_norm);
    w.add_uint32(a + "expert_gating_func", static_cast<uint32_t>(d.gating));
    if (d.n_group > 1) {
      w.add_uint32(a + "expert_group_count", static_cast<uint32_t>(d.n_group));
      w.add_uint32(a + "expert_group_used_count", static_cast<uint32_t>(d.n_group_used));
    }
  }
  if (d.yarn_factor > 1.0) {
    w.add_string(a + "rope.scaling.type", "yarn");
    w.add_float32(a + "rope.scaling.factor", static_cast<float>(d.yarn_factor));
    w.add_uint32(a + "rope.scaling.original_context_length", static_cast<uint32_t>(d.yarn_orig_ctx));
    w.add_float32(a + "rope.scaling.yarn_log_multiplier", static_cast<float>(d.yarn_log_mul));
  }

  // Tensors. Scales: projections keep unit-variance activations (std 1/sqrt(fan_in)); the LM
  // head gives logits of std logit_std; routed experts' outputs are scaled by expert_std.
  auto inv = [](int64_t n) { return 1.0 / std::sqrt(static_cast<double>(n)); };
  const double head_std = spec.logit_std * inv(E);
  std::vector<Plan> plan;
  plan.push_back({"token_embd.weight", {E, V}, -1, 0.0, spec.tied_output ? head_std : 1.0});
  plan.push_back({"output_norm.weight", {E}, -1, 1.0, 0.05});
  if (!spec.tied_output) plan.push_back({"output.weight", {E, V}, -1, 0.0, head_std});
  for (int64_t l = 0; l < spec.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    plan.push_back({p + "attn_norm.weight", {E}, l, 1.0, 0.05});
    if (d.q_lora_rank > 0) {
      plan.push_back({p + "attn_q_a.weight", {E, d.q_lora_rank}, l, 0.0, inv(E)});
      plan.push_back({p + "attn_q_a_norm.weight", {d.q_lora_rank}, l, 1.0, 0.05});
      plan.push_back({p + "attn_q_b.weight", {d.q_lora_rank, H * dk}, l, 0.0, inv(d.q_lora_rank)});
    } else {
      plan.push_back({p + "attn_q.weight", {E, H * dk}, l, 0.0, inv(E)});
    }
    plan.push_back({p + "attn_kv_a_mqa.weight", {E, dc + dr}, l, 0.0, inv(E)});
    plan.push_back({p + "attn_kv_a_norm.weight", {dc}, l, 1.0, 0.05});
    // The up-projections are drawn as kv_b (per head W_UK_h: dn rows, W_UV_h: dv rows, of dc)
    // and written either fused or split (k_b = W_UK_h^T per head, v_b = W_UV_h), so the split
    // and fused files of one seed hold the same model.
    if (d.split_kv_b) {
      plan.push_back({p + "attn_k_b.weight", {dn, dc, H}, l, 0.0, inv(dc)});
      plan.push_back({p + "attn_v_b.weight", {dc, dv, H}, l, 0.0, inv(dc)});
    } else {
      plan.push_back({p + "attn_kv_b.weight", {dc, H * (dn + dv)}, l, 0.0, inv(dc)});
    }
    plan.push_back({p + "attn_output.weight", {H * dv, E}, l, 0.0, inv(H * dv)});
    plan.push_back({p + "ffn_norm.weight", {E}, l, 1.0, 0.05});
    if (l < d.n_dense_lead) {
      plan.push_back({p + "ffn_gate.weight", {E, spec.n_ff}, l, 0.0, inv(E)});
      plan.push_back({p + "ffn_up.weight", {E, spec.n_ff}, l, 0.0, inv(E)});
      plan.push_back({p + "ffn_down.weight", {spec.n_ff, E}, l, 0.0, inv(spec.n_ff)});
    } else {
      const int64_t NE = d.n_expert, F = d.n_ff_exp, FS = d.n_ff_exp * d.n_expert_shared;
      plan.push_back({p + "ffn_gate_inp.weight", {E, NE}, l, 0.0, d.router_std * inv(E)});
      if (d.gating == 2 && d.probs_bias) plan.push_back({p + "exp_probs_b.bias", {NE}, l, 0.0, 0.3});
      plan.push_back({p + "ffn_gate_exps.weight", {E, F, NE}, l, 0.0, inv(E)});
      plan.push_back({p + "ffn_up_exps.weight", {E, F, NE}, l, 0.0, inv(E)});
      plan.push_back({p + "ffn_down_exps.weight", {F, E, NE}, l, 0.0, d.expert_std * inv(F)});
      if (FS > 0) {
        plan.push_back({p + "ffn_gate_shexp.weight", {E, FS}, l, 0.0, inv(E)});
        plan.push_back({p + "ffn_up_shexp.weight", {E, FS}, l, 0.0, inv(E)});
        plan.push_back({p + "ffn_down_shexp.weight", {FS, E}, l, 0.0, inv(FS)});
      }
    }
  }

  for (const Plan& t : plan) {
    const int64_t n_cols = t.shape[0];
    int64_t n_rows = 1;
    for (size_t i = 1; i < t.shape.size(); ++i) n_rows *= t.shape[i];
    auto type = deepseek2_tensor_type(spec, t.name, t.layer, n_cols);
    if (!type) return type.error();
    auto rb = row_bytes(*type, n_cols);
    if (!rb) return errorf("tensor '%s' as %s: %s", t.name.c_str(), dtype_name(*type), rb.error().message.c_str());
    const size_t row_b = *rb;
    const TypeTraits& tt = traits(*type);
    // The split k_b of head h is the transpose of the fused kv_b's W_UK_h rows; values are drawn
    // per fused row (stream "attn_kv_b", row h*(dn+dv)+i) so both layouts hold the same numbers.
    const bool is_kb = t.name.ends_with("attn_k_b.weight"), is_vb = t.name.ends_with("attn_v_b.weight");
    std::string stream = t.name;
    if (is_kb || is_vb) stream = t.name.substr(0, t.name.size() - std::string("attn_k_b.weight").size()) + "attn_kv_b.weight";
    const uint64_t key = name_hash(stream) ^ mix64(spec.seed * 0x9e3779b97f4a7c15ull + 1);
    const double mean = t.mean, half_width = t.std * std::sqrt(3.0);
    auto draw = [key, mean, half_width](int64_t row, float* out, int64_t n) {
      uint64_t state = mix64(key ^ (static_cast<uint64_t>(row) * 0xd1b54a32d192ed03ull));
      for (int64_t i = 0; i < n; ++i) {
        state += 0x9e3779b97f4a7c15ull;
        const double u = static_cast<double>(mix64(state) >> 11) * 0x1.0p-53;
        out[i] = static_cast<float>(mean + (2.0 * u - 1.0) * half_width);
      }
    };
    const std::string name = t.name;
    const int64_t period = d.fill_period;
    gguf::Writer::Producer produce = [=, &tt](std::span<uint8_t> out) -> Status {
      if (out.size() != row_b * static_cast<size_t>(n_rows))
        return errorf("tensor '%s': writer asked for %zu bytes, expected %zu", name.c_str(), out.size(), row_b * static_cast<size_t>(n_rows));
      std::vector<float> row(static_cast<size_t>(n_cols));
      if (is_kb) {
        // (dn, dc, H): row (h, j) holds W_UK_h[i][j] for i < dn: column j of the fused rows.
        std::vector<float> fused(static_cast<size_t>(dn * dc));
        for (int64_t h = 0; h < H; ++h) {
          for (int64_t i = 0; i < dn; ++i) draw(h * (dn + dv) + i, fused.data() + i * dc, dc);
          for (int64_t j = 0; j < dc; ++j) {
            for (int64_t i = 0; i < dn; ++i) row[static_cast<size_t>(i)] = fused[static_cast<size_t>(i * dc + j)];
            tt.from_float(row.data(), out.data() + static_cast<size_t>(h * dc + j) * row_b, n_cols);
          }
        }
        return Status::success();
      }
      for (int64_t r = 0; r < n_rows; ++r) {
        if (period > 0 && r >= period) {
          std::memcpy(out.data() + static_cast<size_t>(r) * row_b, out.data() + static_cast<size_t>(r % period) * row_b, row_b);
          continue;
        }
        const int64_t src = is_vb ? (r / dv) * (dn + dv) + dn + r % dv : r;
        draw(src, row.data(), n_cols);
        tt.from_float(row.data(), out.data() + static_cast<size_t>(r) * row_b, n_cols);
      }
      return Status::success();
    };
    SLM_TRY(w.add_tensor(t.name, *type, t.shape, std::move(produce)));
  }
  return Status::success();
}

}  // namespace slm::mkmodel
