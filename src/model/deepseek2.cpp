// `deepseek2` (DeepSeek-V2, V2-Lite, V3, R1): config, weight binding, and the forward pass
//   x = embed(token)
//   for each layer:
//     q      = Wq_b . norm(Wq_a . norm(x))      (or Wq . norm(x) without q_lora)   per head [nope | rope]
//     c | kr = Wkv_a . norm(x);  c = norm(c)    latent (kv_lora_rank) and shared rope key (qk_rope)
//     rope(q.rope), rope(kr);  cache <- [c | kr]
//     absorbed: qc_h = [W_UK_h^T q_h.nope | q_h.rope];  s_h(p) = scale * qc_h . cache(p)
//               o_h = W_UV_h . sum_p softmax(s_h)(p) c(p)
//     x += Wo . concat_h(o_h)
//     x += dense SwiGLU FFN (leading layers) or  sum_{e in topk} w_e FFN_e(norm(x)) + shared FFN
//   logits = Wout . norm(x)
// The absorbed form equals naive MLA (k_h = [W_UK_h c | kr], v_h = W_UV_h c) because
// q_h.nope . (W_UK_h c) = (W_UK_h^T q_h.nope) . c and sum_p a_p W_UV_h c_p = W_UV_h sum_p a_p c_p.
#include "model/deepseek2.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include "model/context_base.hpp"
#include "model/context_memory.hpp"
#include "model/interleave_store.hpp"
#include "ops/ops.hpp"
#include "slm/thread_pool.hpp"
#include "slm/tokenizer.hpp"

namespace slm::deepseek2 {

// ---- Config ----------------------------------------------------------------------------------

namespace {

const std::string kArch = "deepseek2";
std::string key(const char* suffix) { return kArch + "." + suffix; }

Expected<int64_t> get_count(const gguf::File& f, const std::string& k) {
  auto v = f.get_uint(k);
  if (!v) return v.error();
  if (*v > (1ull << 40)) return errorf("key '%s': value %llu is implausibly large", k.c_str(), static_cast<unsigned long long>(*v));
  return static_cast<int64_t>(*v);
}

Expected<int64_t> get_count_or(const gguf::File& f, const std::string& k, int64_t fallback) {
  if (!f.find(k)) return fallback;
  return get_count(f, k);
}

// A float key stored as float or integer (some converters write integers).
Expected<double> get_number_or(const gguf::File& f, const std::string& k, double fallback) {
  const gguf::Value* v = f.find(k);
  if (v == nullptr) return fallback;
  if (v->type == gguf::ValueType::FLOAT32 || v->type == gguf::ValueType::FLOAT64) return f.get_float(k);
  auto u = f.get_int(k);
  if (!u) return errorf("key '%s': expected a number, got %s", k.c_str(), gguf::value_type_name(v->type));
  return static_cast<double>(*u);
}

Status expect(bool ok, const std::string& k, const char* what, int64_t got) {
  if (!ok) return errorf("key '%s': expected %s, got %lld", k.c_str(), what, static_cast<long long>(got));
  return Status::success();
}

}  // namespace

double softmax_scale(const Config& c) {
  double mscale = 1.0;
  if (c.yarn && c.yarn_factor > 1.0) mscale = 1.0 + c.yarn_log_mul * std::log(c.yarn_factor);
  return mscale * mscale / std::sqrt(static_cast<double>(c.qk_head()));
}

void yarn_freq_factors(float* factors, const Config& c) {
  const int64_t half = c.qk_rope / 2;
  const double n_dims = static_cast<double>(c.qk_rope);
  // The pair index at which a wavelength makes n_rotations turns over the original context.
  auto corr_dim = [&](double n_rotations) {
    return n_dims * std::log(c.yarn_orig_ctx / (n_rotations * 2.0 * M_PI)) / (2.0 * std::log(c.rope_base));
  };
  const double low = std::max(0.0, std::floor(corr_dim(c.yarn_beta_fast)));
  const double high = std::min(n_dims - 1.0, std::ceil(corr_dim(c.yarn_beta_slow)));
  const double freq_scale = 1.0 / c.yarn_factor;
  for (int64_t i = 0; i < half; ++i) {
    // mix = 1: keep the original frequency (extrapolate, high-frequency pairs); 0: interpolate.
    const double y = (static_cast<double>(i) - low) / std::max(0.001, high - low);
    const double mix = 1.0 - std::clamp(y, 0.0, 1.0);
    factors[i] = static_cast<float>(1.0 / (freq_scale * (1.0 - mix) + mix));
  }
}

Expected<Config> read_config(const gguf::File& f) {
  Config c;
  auto arch = f.get_string("general.architecture");
  if (!arch) return arch.error();
  if (*arch != kArch)
    return errorf("key 'general.architecture': expected 'deepseek2', got '%.*s'", static_cast<int>(arch->size()), arch->data());

  auto req = [&](const char* suffix, int64_t* out) -> Status {
    auto v = get_count(f, key(suffix));
    if (!v) return v.error();
    SLM_TRY(expect(*v > 0, key(suffix), "a positive value", *v));
    *out = *v;
    return Status::success();
  };
  auto opt = [&](const char* suffix, int64_t fallback, int64_t* out) -> Status {
    auto v = get_count_or(f, key(suffix), fallback);
    if (!v) return v.error();
    *out = *v;
    return Status::success();
  };
  int64_t block_count = 0;
  SLM_TRY(req("context_length", &c.n_ctx_train));
  SLM_TRY(req("embedding_length", &c.n_embd));
  SLM_TRY(req("block_count", &block_count));
  SLM_TRY(req("attention.head_count", &c.n_head));
  SLM_TRY(opt("nextn_predict_layers", 0, &c.n_nextn));
  SLM_TRY(expect(c.n_nextn < block_count, key("nextn_predict_layers"), "fewer than block_count layers", c.n_nextn));
  c.n_layer = block_count - c.n_nextn;
  SLM_TRY(opt("leading_dense_block_count", 0, &c.n_dense_lead));
  SLM_TRY(expect(c.n_dense_lead <= c.n_layer, key("leading_dense_block_count"), "at most block_count", c.n_dense_lead));
  c.n_ff = 0;
  if (c.n_dense_lead > 0) SLM_TRY(req("feed_forward_length", &c.n_ff));

  // Attention geometry. Files converted for llama.cpp's MLA (2025 on) state the latent cache as
  // key_length = kv_lora_rank + rope dims, value_length = kv_lora_rank and the real head sizes in
  // key_length_mla / value_length_mla; older files state the real head sizes in key/value_length.
  SLM_TRY(opt("attention.q_lora_rank", 0, &c.q_lora_rank));
  SLM_TRY(req("attention.kv_lora_rank", &c.kv_lora_rank));
  SLM_TRY(req("rope.dimension_count", &c.qk_rope));
  SLM_TRY(expect(c.qk_rope % 2 == 0, key("rope.dimension_count"), "an even value", c.qk_rope));
  int64_t k_len = 0, v_len = 0;
  if (f.find(key("attention.key_length_mla")) || f.find(key("attention.value_length_mla"))) {
    SLM_TRY(req("attention.key_length_mla", &k_len));
    SLM_TRY(req("attention.value_length_mla", &v_len));
    int64_t kl = 0, vl = 0;
    SLM_TRY(opt("attention.key_length", c.kv_lora_rank + c.qk_rope, &kl));
    SLM_TRY(opt("attention.value_length", c.kv_lora_rank, &vl));
    if (kl != c.kv_lora_rank + c.qk_rope)
      return errorf("key '%s': expected kv_lora_rank + rope dims = %lld (MLA layout, key_length_mla present), got %lld",
                    key("attention.key_length").c_str(), static_cast<long long>(c.kv_lora_rank + c.qk_rope), static_cast<long long>(kl));
    if (vl != c.kv_lora_rank)
      return errorf("key '%s': expected kv_lora_rank = %lld (MLA layout, value_length_mla present), got %lld",
                    key("attention.value_length").c_str(), static_cast<long long>(c.kv_lora_rank), static_cast<long long>(vl));
  } else {
    SLM_TRY(req("attention.key_length", &k_len));
    SLM_TRY(req("attention.value_length", &v_len));
  }
  if (k_len <= c.qk_rope)
    return errorf("key '%s': expected more than rope.dimension_count (%lld) dims per head, got %lld",
                  key(f.find(key("attention.key_length_mla")) ? "attention.key_length_mla" : "attention.key_length").c_str(),
                  static_cast<long long>(c.qk_rope), static_cast<long long>(k_len));
  c.qk_nope = k_len - c.qk_rope;
  c.v_head = v_len;

  // Mixture of experts (only needed when some layer is not dense).
  if (c.n_dense_lead < c.n_layer) {
    SLM_TRY(req("expert_count", &c.n_expert));
    SLM_TRY(req("expert_used_count", &c.n_expert_used));
    SLM_TRY(opt("expert_shared_count", 0, &c.n_expert_shared));
    SLM_TRY(req("expert_feed_forward_length", &c.n_ff_exp));
    if (c.n_expert_used > c.n_expert)
      return errorf("key '%s': expected at most expert_count (%lld), got %lld", key("expert_used_count").c_str(),
                    static_cast<long long>(c.n_expert), static_cast<long long>(c.n_expert_used));
    int64_t gating = 0;
    SLM_TRY(opt("expert_gating_func", 0, &gating));
    if (gating == 0 || gating == 1) c.gating = Gating::Softmax;
    else if (gating == 2) c.gating = Gating::Sigmoid;
    else return errorf("key '%s': expected 0 or 1 (softmax) or 2 (sigmoid), got %lld", key("expert_gating_func").c_str(), static_cast<long long>(gating));
    auto norm = f.get_bool_or(key("expert_weights_norm"), false);
    if (!norm) return norm.error();
    c.weights_norm = *norm;
    // Absent (or 0, which llama.cpp reads as "do not scale"): no scaling.
    auto scale = get_number_or(f, key("expert_weights_scale"), 1.0);
    if (!scale) return scale.error();
    c.weights_scale = *scale == 0.0 ? 1.0 : *scale;
    if (!(std::isfinite(c.weights_scale) && c.weights_scale > 0.0))
      return errorf("key '%s': expected a positive number, got %g", key("expert_weights_scale").c_str(), c.weights_scale);
    SLM_TRY(opt("expert_group_count", 1, &c.n_group));
    SLM_TRY(opt("expert_group_used_count", c.n_group, &c.n_group_used));
    if (c.n_group <= 1) c.n_group = 1, c.n_group_used = 1;
    if (c.n_expert % c.n_group != 0)
      return errorf("key '%s': expected a divisor of expert_count (%lld), got %lld", key("expert_group_count").c_str(),
                    static_cast<long long>(c.n_expert), static_cast<long long>(c.n_group));
    if (c.n_group_used < 1 || c.n_group_used > c.n_group ||
        c.n_group_used * (c.n_expert / c.n_group) < c.n_expert_used)
      return errorf("key '%s': expected a value in [1, %lld] whose groups hold at least expert_used_count (%lld) experts, got %lld",
                    key("expert_group_used_count").c_str(), static_cast<long long>(c.n_group),
                    static_cast<long long>(c.n_expert_used), static_cast<long long>(c.n_group_used));
  }

  auto eps = f.get_float(key("attention.layer_norm_rms_epsilon"));
  if (!eps) return eps.error();
  if (!(*eps > 0.0 && *eps < 1.0))
    return errorf("key '%s': expected a value in (0, 1), got %g", key("attention.layer_norm_rms_epsilon").c_str(), *eps);
  c.rms_eps = static_cast<float>(*eps);
  auto base = f.get_float_or(key("rope.freq_base"), 10000.0);
  if (!base) return base.error();
  if (!(*base > 1.0)) return errorf("key '%s': expected a value > 1, got %g", key("rope.freq_base").c_str(), *base);
  c.rope_base = *base;

  if (f.find(key("rope.scaling.type"))) {
    auto type = f.get_string(key("rope.scaling.type"));
    if (!type) return type.error();
    if (*type == "yarn") {
      c.yarn = true;
      auto factor = get_number_or(f, key("rope.scaling.factor"), 1.0);
      auto orig = get_number_or(f, key("rope.scaling.original_context_length"), static_cast<double>(c.n_ctx_train));
      auto log_mul = get_number_or(f, key("rope.scaling.yarn_log_multiplier"), 0.0);
      auto fast = get_number_or(f, key("rope.scaling.yarn_beta_fast"), 32.0);
      auto slow = get_number_or(f, key("rope.scaling.yarn_beta_slow"), 1.0);
      auto attn = get_number_or(f, key("rope.scaling.attn_factor"), 1.0);
      for (auto* e : {&factor, &orig, &log_mul, &fast, &slow, &attn})
        if (!*e) return e->error();
      c.yarn_factor = *factor, c.yarn_orig_ctx = *orig, c.yarn_log_mul = *log_mul;
      c.yarn_beta_fast = *fast, c.yarn_beta_slow = *slow;
      if (!(c.yarn_factor >= 1.0 && c.yarn_orig_ctx >= 1.0 && c.yarn_beta_fast > c.yarn_beta_slow && c.yarn_beta_slow > 0.0))
        return errorf("keys '%s.*': expected factor >= 1, original_context_length >= 1, yarn_beta_fast > yarn_beta_slow > 0; "
                      "got %g, %g, %g, %g", key("rope.scaling").c_str(), c.yarn_factor, c.yarn_orig_ctx,
                      c.yarn_beta_fast, c.yarn_beta_slow);
      if (*attn != 1.0)
        return errorf("key '%s': only 1 is supported (DeepSeek files leave it out), got %g",
                      key("rope.scaling.attn_factor").c_str(), *attn);
    } else if (*type != "none") {
      return errorf("key '%s': expected 'none' or 'yarn', got '%.*s' (not supported for deepseek2)",
                    key("rope.scaling.type").c_str(), static_cast<int>(type->size()), type->data());
    }
  }
  c.kq_scale = static_cast<float>(softmax_scale(c));
  // Products of these sizes index buffers: keep each far below where they could overflow
  // (real models: at most ~129k vocab, 18432 FFN, 256 experts).
  const std::pair<const char*, int64_t> dims[] = {
      {"embedding_length", c.n_embd}, {"attention.head_count", c.n_head}, {"feed_forward_length", c.n_ff},
      {"attention.q_lora_rank", c.q_lora_rank}, {"attention.kv_lora_rank", c.kv_lora_rank},
      {"attention.key_length", c.qk_head()}, {"attention.value_length", c.v_head}, {"expert_count", c.n_expert},
      {"expert_feed_forward_length", c.n_ff_exp}, {"expert_shared_count", c.n_expert_shared},
      {"block_count", c.n_layer}};
  for (const auto& [k, v] : dims)
    if (v > (int64_t{1} << 20)) return errorf("key '%s': %lld is implausibly large (limit 2^20)", key(k).c_str(), static_cast<long long>(v));
  if (c.n_vocab > (int64_t{1} << 24)) return errorf("vocabulary size %lld is implausibly large (limit 2^24)", static_cast<long long>(c.n_vocab));

  if (f.find(key("vocab_size"))) {
    SLM_TRY(req("vocab_size", &c.n_vocab));
  } else if (f.find("tokenizer.ggml.tokens")) {
    auto toks = f.get_string_array("tokenizer.ggml.tokens");
    if (!toks) return toks.error();
    c.n_vocab = static_cast<int64_t>(toks->size());
  } else if (const gguf::TensorInfo* te = f.find_tensor("token_embd.weight")) {
    c.n_vocab = te->n_dims == 2 ? te->ne[1] : 0;
  }
  if (c.n_vocab <= 0) return errorf("vocabulary size: no '%s', 'tokenizer.ggml.tokens' or 2-D 'token_embd.weight'", key("vocab_size").c_str());
  return c;
}

// ---- Weights ---------------------------------------------------------------------------------

namespace {

std::string shape_str(const int64_t* ne, size_t n) {
  std::string out = "[";
  for (size_t i = 0; i < n; ++i) out += (i ? ", " : "") + std::to_string(ne[i]);
  return out + "]";
}

class Binder {
 public:
  explicit Binder(const gguf::File& f) : f_(f) {}

  // A tensor of exactly `shape` (ne[0] first); nullptr when absent and not required.
  Expected<const gguf::TensorInfo*> find(const std::string& name, std::initializer_list<int64_t> shape, bool required) {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    const std::vector<int64_t> want(shape);
    if (t == nullptr) {
      if (!required) return static_cast<const gguf::TensorInfo*>(nullptr);
      return errorf("tensor '%s': missing (expected shape %s)", name.c_str(), shape_str(want.data(), want.size()).c_str());
    }
    bool same = t->n_dims == want.size();
    for (size_t i = 0; same && i < want.size(); ++i) same = t->ne[i] == want[i];
    if (!same)
      return errorf("tensor '%s': expected shape %s, got %s", name.c_str(), shape_str(want.data(), want.size()).c_str(),
                    shape_str(t->ne, t->n_dims).c_str());
    bytes_ += t->n_bytes;
    return t;
  }

  Expected<const float*> vec(const std::string& name, int64_t n, bool required = true) {
    auto t = find(name, {n}, required);
    if (!t) return t.error();
    if (*t == nullptr) return static_cast<const float*>(nullptr);
    if ((*t)->type != DType::F32) return errorf("tensor '%s': expected type F32, got %s", name.c_str(), dtype_name((*t)->type));
    if (reinterpret_cast<uintptr_t>((*t)->data) % alignof(float) != 0) return errorf("tensor '%s': data not 4-byte aligned", name.c_str());
    return reinterpret_cast<const float*>((*t)->data);
  }

  // A matrix of rows of n_cols; `shape` is the GGUF shape (2-D or 3-D stacked experts/heads).
  Expected<kernels::Matrix> mat(const std::string& name, std::initializer_list<int64_t> shape, bool required = true) {
    auto t = find(name, shape, required);
    if (!t) return t.error();
    kernels::Matrix m;
    if (*t == nullptr) return m;
    const TypeTraits* tt = type_traits(static_cast<uint32_t>((*t)->type));
    if (tt == nullptr || tt->to_float == nullptr)
      return errorf("tensor '%s': type %s is not supported for computation", name.c_str(), tt ? tt->name : "unknown");
    const int64_t n_cols = *shape.begin();
    auto rb = row_bytes((*t)->type, n_cols);
    if (!rb) return errorf("tensor '%s': %s", name.c_str(), rb.error().message.c_str());
    m.type = (*t)->type;
    m.data = (*t)->data;
    m.n_cols = n_cols;
    m.n_rows = (*t)->rows();
    m.row_stride = *rb;
    return m;
  }

  size_t bytes() const { return bytes_; }

 private:
  const gguf::File& f_;
  size_t bytes_ = 0;
};

}  // namespace

Expected<Weights> bind_weights(const gguf::File& f, const Config& c) {
  Weights w;
  Binder b(f);
  const int64_t E = c.n_embd, V = c.n_vocab, H = c.n_head;
  const int64_t dk = c.qk_head(), dn = c.qk_nope, dc = c.kv_lora_rank, dr = c.qk_rope, dv = c.v_head;
  auto te = b.mat("token_embd.weight", {E, V});
  if (!te) return te.error();
  w.token_embd = *te;
  auto on = b.vec("output_norm.weight", E);
  if (!on) return on.error();
  w.output_norm = *on;
  auto out = b.mat("output.weight", {E, V}, false);
  if (!out) return out.error();
  w.tied_output = out->data == nullptr;
  w.output = w.tied_output ? w.token_embd : *out;

  const bool fused = f.find_tensor("blk.0.attn_k_b.weight") == nullptr && f.find_tensor("blk.0.attn_kv_b.weight") != nullptr;
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    Layer& L = w.layers[static_cast<size_t>(i)];
    const std::string p = "blk." + std::to_string(i) + ".";
    auto V_ = [&](const char* n, int64_t len, const float** dst, bool required = true) -> Status {
      auto v = b.vec(p + n, len, required);
      if (!v) return v.error();
      *dst = *v;
      return Status::success();
    };
    auto M_ = [&](const char* n, std::initializer_list<int64_t> shape, kernels::Matrix* dst) -> Status {
      auto m = b.mat(p + n, shape);
      if (!m) return m.error();
      *dst = *m;
      return Status::success();
    };
    SLM_TRY(V_("attn_norm.weight", E, &L.attn_norm));
    if (c.q_lora_rank > 0) {
      SLM_TRY(M_("attn_q_a.weight", {E, c.q_lora_rank}, &L.wq_a));
      SLM_TRY(V_("attn_q_a_norm.weight", c.q_lora_rank, &L.q_a_norm));
      SLM_TRY(M_("attn_q_b.weight", {c.q_lora_rank, H * dk}, &L.wq_b));
    } else {
      SLM_TRY(M_("attn_q.weight", {E, H * dk}, &L.wq));
    }
    SLM_TRY(M_("attn_kv_a_mqa.weight", {E, dc + dr}, &L.wkv_a));
    SLM_TRY(V_("attn_kv_a_norm.weight", dc, &L.kv_a_norm));
    L.fused_kv_b = fused;
    if (fused) {
      SLM_TRY(M_("attn_kv_b.weight", {dc, H * (dn + dv)}, &L.kv_b));
    } else {
      SLM_TRY(M_("attn_k_b.weight", {dn, dc, H}, &L.k_b));
      SLM_TRY(M_("attn_v_b.weight", {dc, dv, H}, &L.v_b));
    }
    SLM_TRY(M_("attn_output.weight", {H * dv, E}, &L.wo));
    SLM_TRY(V_("ffn_norm.weight", E, &L.ffn_norm));
    if (!c.is_moe_layer(i)) {
      SLM_TRY(M_("ffn_gate.weight", {E, c.n_ff}, &L.w_gate));
      SLM_TRY(M_("ffn_up.weight", {E, c.n_ff}, &L.w_up));
      SLM_TRY(M_("ffn_down.weight", {c.n_ff, E}, &L.w_down));
    } else {
      const int64_t NE = c.n_expert, F = c.n_ff_exp, FS = c.n_ff_exp * c.n_expert_shared;
      SLM_TRY(M_("ffn_gate_inp.weight", {E, NE}, &L.gate_inp));
      SLM_TRY(V_("exp_probs_b.bias", NE, &L.exp_probs_b, false));
      SLM_TRY(M_("ffn_gate_exps.weight", {E, F, NE}, &L.gate_exps));
      SLM_TRY(M_("ffn_up_exps.weight", {E, F, NE}, &L.up_exps));
      SLM_TRY(M_("ffn_down_exps.weight", {F, E, NE}, &L.down_exps));
      if (FS > 0) {
        SLM_TRY(M_("ffn_gate_shexp.weight", {E, FS}, &L.gate_sh));
        SLM_TRY(M_("ffn_up_shexp.weight", {E, FS}, &L.up_sh));
        SLM_TRY(M_("ffn_down_shexp.weight", {FS, E}, &L.down_sh));
      }
    }
  }
  // The multi-token-prediction layers (blk.n_layer ..) are not run: counted, not bound.
  for (const gguf::TensorInfo& t : f.tensors()) {
    int64_t blk = -1;
    if (t.name.starts_with("blk.")) {
      blk = 0;
      for (size_t k = 4; k < t.name.size() && t.name[k] >= '0' && t.name[k] <= '9'; ++k) blk = blk * 10 + (t.name[k] - '0');
    }
    if (blk >= c.n_layer) ++w.ignored_tensors;
  }
  w.bytes = b.bytes();
  return w;
}

// ---- Routing ---------------------------------------------------------------------------------

void route(IsaLevel isa, const Config& c, const float* logits, const float* bias, int32_t* ids, float* weights,
           float* scratch) {
  const int64_t n = c.n_expert;
  float* probs = scratch;         // gating scores, the weights come from these
  float* sel = scratch + n;       // selection scores (+ correction bias)
  float* group = scratch + 2 * n; // per-group scores
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (c.gating == Gating::Softmax) {
    std::memcpy(probs, logits, static_cast<size_t>(n) * sizeof(float));
    ops::softmax(isa, probs, n);
  } else {
    for (int64_t e = 0; e < n; ++e) probs[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  }
  for (int64_t e = 0; e < n; ++e) sel[e] = probs[e] + (bias ? bias[e] : 0.0f);

  // Group-limited selection: keep the best n_group_used groups. V3 (sigmoid) scores a group by
  // the sum of its two best selection scores, V2 (softmax) by its best one.
  if (c.n_group > 1) {
    const int64_t per = n / c.n_group;
    for (int64_t g = 0; g < c.n_group; ++g) {
      float best = neg_inf, second = neg_inf;
      for (int64_t e = g * per; e < (g + 1) * per; ++e) {
        if (sel[e] > best) second = best, best = sel[e];
        else if (sel[e] > second) second = sel[e];
      }
      group[g] = c.gating == Gating::Sigmoid && per > 1 ? best + second : best;
    }
    // Mark the kept groups by setting their score to +inf (ties: lower group index first; a NaN
    // score never wins, but some group is always kept).
    const float kept = std::numeric_limits<float>::infinity();
    for (int64_t k = 0; k < c.n_group_used; ++k) {
      int64_t arg = -1;
      for (int64_t g = 0; g < c.n_group; ++g)
        if (group[g] != kept && (arg < 0 || group[g] > group[arg] || std::isnan(group[arg]))) arg = g;
      group[arg] = kept;
    }
    for (int64_t g = 0; g < c.n_group; ++g)
      if (group[g] != kept)
        for (int64_t e = g * per; e < (g + 1) * per; ++e) sel[e] = neg_inf;
  }

  // Top-k by selection score (ties: lower id), weights from the gating scores. `taken` reuses
  // the group scores' scratch.
  float* taken = group;
  std::fill_n(taken, n, 0.0f);
  double sum = 0.0;
  for (int64_t k = 0; k < c.n_expert_used; ++k) {
    int64_t arg = -1;
    for (int64_t e = 0; e < n; ++e)
      if (taken[e] == 0.0f && (arg < 0 || sel[e] > sel[arg] || (std::isnan(sel[arg]) && !std::isnan(sel[e])))) arg = e;
    taken[arg] = 1.0f;
    ids[k] = static_cast<int32_t>(arg);
    weights[k] = probs[arg];
    sum += probs[arg];
  }
  const double norm = c.weights_norm ? 1.0 / std::max(sum, 1e-20) : 1.0;
  for (int64_t k = 0; k < c.n_expert_used; ++k) weights[k] = static_cast<float>(weights[k] * norm * c.weights_scale);
}

void route(const Config& c, const float* logits, const float* bias, int32_t* ids, float* weights, float* scratch) {
  route(default_isa_level(), c, logits, bias, ids, weights, scratch);
}

// ---- Model -----------------------------------------------------------------------------------

namespace {

// Sizes of everything a context allocates (context_memory_required and memory_bytes agree).
struct ContextPlan {
  size_t kv_bytes = 0;
  size_t scratch_bytes = 0;
  int64_t att_chunk = 1;     // tokens whose attention scores are computed at once
  size_t total_bytes = 0;    // the whole block, as carve() lays it out
  size_t total() const { return total_bytes; }
};

// Where a context's buffers live: all in one 64-byte-aligned block (the caller's arena or one
// allocation), laid out by carve(). Shapes are in the comments.
struct Deepseek2Buffers {
  uint8_t* kv_ = nullptr;          // (n_layer, n_ctx, kv_lora_rank + qk_rope) F16 or F32: [latent | rope key]
  std::span<uint8_t> scratch_;     // (scratch_bytes,) matmul's quantized activations
  float* x_ = nullptr;       // (n_batch, n_embd) residual stream
  float* xb_ = nullptr;      // (n_batch, n_embd) normed input of a block / attention output
  float* gx_ = nullptr;      // (n_batch, n_embd) inputs gathered for one expert
  float* gy_ = nullptr;      // (n_batch, n_embd) FFN / expert output
  float* moe_ = nullptr;     // (n_batch, n_embd) weighted sum of routed experts
  float* q_ = nullptr;       // (n_batch, n_head * qk_head) queries [nope | rope] per head
  float* qa_ = nullptr;      // (n_batch, q_lora_rank) compressed query
  float* kva_ = nullptr;     // (n_batch, kv_lora_rank + qk_rope) latent | rope key of new tokens
  float* qc_ = nullptr;      // (n_batch, n_head, kv_lora_rank + qk_rope) absorbed queries
  float* olat_ = nullptr;    // (n_batch, n_head, kv_lora_rank) attention output in latent space
  float* att_ = nullptr;     // (n_batch, n_head * v_head) attention output before Wo
  float* hb_ = nullptr;      // (n_batch, max FFN width) gate, then silu(gate) * up
  float* hb2_ = nullptr;     // (n_batch, max FFN width) up
  float* router_ = nullptr;  // (n_batch, n_expert) router logits
  float* route_w_ = nullptr;     // (n_batch, n_expert_used) expert weights
  int32_t* route_id_ = nullptr;  // (n_batch, n_expert_used) expert ids
  float* cos_ = nullptr;     // (n_batch, qk_rope/2)
  float* sin_ = nullptr;     // (n_batch, qk_rope/2)
  float* scores_ = nullptr;  // (att_chunk * n_head, n_ctx) attention weights
  float* rowbuf_ = nullptr;  // (n_threads, max(kv_lora_rank, qk_nope)) one converted row per thread
  float* route_scratch_ = nullptr;  // (3 * n_expert,)
  int32_t* exp_tok_ = nullptr;  // (n_batch * n_expert_used,) tokens grouped by expert
  float* exp_w_ = nullptr;      // (n_batch * n_expert_used,) their weights
  int32_t* exp_off_ = nullptr;  // (n_expert + 1,) start of each expert's group
  float* logits_one_ = nullptr; // (n_vocab,)
  // (tokens of the last forward step, MoE layers, n_expert_used): sized for n_batch tokens at
  // creation (issue 9: it used to grow inside eval on a longer prompt).
  int32_t* routing_ = nullptr;
};

// Lays the buffers out on `cv` (a measuring Carver gives null pointers and the total size).
void carve(model_memory::Carver& cv, const Config& c, const ContextParams& p, const ContextPlan& plan, Deepseek2Buffers& b) {
  const size_t B = static_cast<size_t>(p.n_batch), H = static_cast<size_t>(c.n_head);
  const size_t E = static_cast<size_t>(c.n_embd), R = static_cast<size_t>(c.cache_row());
  const size_t ffw = std::max({static_cast<size_t>(c.n_ff), static_cast<size_t>(c.n_ff_exp * std::max<int64_t>(1, c.n_expert_shared))});
  const size_t NE = static_cast<size_t>(c.n_expert), K = static_cast<size_t>(c.n_expert_used);
  const size_t n_moe = static_cast<size_t>(std::max<int64_t>(0, c.n_layer - c.n_dense_lead));
  b.kv_ = cv.take<uint8_t>(plan.kv_bytes);
  b.scratch_ = {cv.take<uint8_t>(plan.scratch_bytes), plan.scratch_bytes};
  b.x_ = cv.take<float>(B * E);
  b.xb_ = cv.take<float>(B * E);
  b.gx_ = cv.take<float>(B * E);
  b.gy_ = cv.take<float>(B * E);
  b.moe_ = cv.take<float>(B * E);
  b.q_ = cv.take<float>(B * H * static_cast<size_t>(c.qk_head()));
  b.qa_ = cv.take<float>(B * static_cast<size_t>(c.q_lora_rank));
  b.kva_ = cv.take<float>(B * R);
  b.qc_ = cv.take<float>(B * H * R);
  b.olat_ = cv.take<float>(B * H * static_cast<size_t>(c.kv_lora_rank));
  b.att_ = cv.take<float>(B * H * static_cast<size_t>(c.v_head));
  b.hb_ = cv.take<float>(B * ffw);
  b.hb2_ = cv.take<float>(B * ffw);
  b.router_ = cv.take<float>(B * NE);
  b.route_w_ = cv.take<float>(B * K);
  b.route_id_ = cv.take<int32_t>(B * K);
  b.cos_ = cv.take<float>(B * static_cast<size_t>(c.qk_rope / 2));
  b.sin_ = cv.take<float>(B * static_cast<size_t>(c.qk_rope / 2));
  b.scores_ = cv.take<float>(static_cast<size_t>(plan.att_chunk) * H * static_cast<size_t>(p.n_ctx));
  b.rowbuf_ = cv.take<float>(static_cast<size_t>(p.n_threads) * static_cast<size_t>(std::max(c.kv_lora_rank, c.qk_nope)));
  b.route_scratch_ = cv.take<float>(3 * NE);
  b.exp_tok_ = cv.take<int32_t>(B * K);
  b.exp_w_ = cv.take<float>(B * K);
  b.exp_off_ = cv.take<int32_t>(NE + 1);
  b.logits_one_ = cv.take<float>(static_cast<size_t>(c.n_vocab));
  b.routing_ = cv.take<int32_t>(B * n_moe * K);
}


class Deepseek2Model final : public Model {
 public:
  Deepseek2Model(gguf::File file, Config config, Weights weights)
      : file_(std::move(file)), config_(std::move(config)), weights_(std::move(weights)) {}

  Status init(const ModelParams& params) {
    const Config& c = config_;
    info_.arch = kArch;
    if (auto name = file_.get_string("general.name")) info_.name = std::string(*name);
    info_.n_vocab = c.n_vocab;
    info_.n_ctx_train = c.n_ctx_train;
    info_.n_embd = c.n_embd;
    info_.n_layer = c.n_layer;
    info_.n_head = c.n_head;
    info_.n_head_kv = 1;  // the latent cache is shared by all heads (MQA after absorption)
    info_.head_dim = c.qk_head();
    info_.n_ff = c.n_ff;
    info_.n_rot = c.qk_rope;
    info_.rope_freq_base = c.rope_base;
    info_.rope_scaling = c.yarn ? "yarn" : "none";
    info_.rms_eps = c.rms_eps;
    info_.tied_output = weights_.tied_output;
    info_.weights_bytes = weights_.bytes;
    std::map<std::string, int> counts;
    for (const gguf::TensorInfo& t : file_.tensors()) {
      info_.n_params += static_cast<int64_t>(t.n_elements);
      counts[dtype_name(t.type)]++;
    }
    for (const auto& [name, n] : counts)
      info_.type_summary += (info_.type_summary.empty() ? "" : ", ") + name + ": " + std::to_string(n);

    inv_freq_.resize(static_cast<size_t>(c.qk_rope / 2));
    std::vector<float> factors;
    if (c.yarn) {
      factors.resize(inv_freq_.size());
      yarn_freq_factors(factors.data(), c);
    }
    ops::rope_inv_freqs(inv_freq_.data(), c.qk_rope, c.rope_base, c.yarn ? factors.data() : nullptr, 1.0);

    // The tokenizer, when the file has one the tokenizer component can build (as for llama).
    if (file_.find("tokenizer.ggml.model")) {
      auto tok = Tokenizer::from_gguf(file_);
      if (tok) tokenizer_.emplace(std::move(*tok));
    }

    info_.interleavable_bytes = model_interleave::bytes_for(interleave_candidates());
    if (params.interleave_weights && !params.use_mlock) SLM_TRY(interleaved_.interleave(interleave_candidates(), file_));
    info_.interleaved_bytes = interleaved_.bytes();

    if (params.use_mlock && file_.size() > 0 && mlock(file_.bytes(), file_.size()) != 0)
      return errorf("mlock of %zu bytes of weights failed (raise RLIMIT_MEMLOCK or drop --mlock)", file_.size());
    return Status::success();
  }

  const ModelInfo& info() const override { return info_; }
  const Tokenizer* tokenizer() const override { return tokenizer_ ? &*tokenizer_ : nullptr; }
  const gguf::File& file() const override { return file_; }

  std::string summary() const override {
    const ModelInfo& i = info_;
    const Config& c = config_;
    char buf[2048];
    int n = std::snprintf(
        buf, sizeof buf,
        "arch: %s%s%s\nparams: %.3f M, weights %.1f MiB (mapped; %.1f MiB of it interleaved at load)\ntypes: %s\n"
        "shape: n_embd %lld, n_layer %lld (%lld dense), n_head %lld, n_vocab %lld, dense n_ff %lld\n"
        "MLA: q_lora_rank %lld, kv_lora_rank %lld, qk nope %lld + rope %lld, v %lld; %s kv_b; "
        "KV cache %lld values/token/layer (latent + rope key)\n"
        "MoE: %lld experts (%lld used, %lld shared) of n_ff %lld, %s gating%s, groups %lld (use %lld), norm %s, scale %g\n"
        "rope: adjacent pairs, base %g, dims %lld, scaling %s",
        i.arch.c_str(), i.name.empty() ? "" : " - ", i.name.c_str(), static_cast<double>(i.n_params) / 1e6,
        static_cast<double>(i.weights_bytes) / (1024.0 * 1024.0), static_cast<double>(i.interleaved_bytes) / (1024.0 * 1024.0),
        i.type_summary.c_str(), static_cast<long long>(c.n_embd), static_cast<long long>(c.n_layer),
        static_cast<long long>(c.n_dense_lead),
        static_cast<long long>(c.n_head), static_cast<long long>(c.n_vocab), static_cast<long long>(c.n_ff),
        static_cast<long long>(c.q_lora_rank), static_cast<long long>(c.kv_lora_rank), static_cast<long long>(c.qk_nope),
        static_cast<long long>(c.qk_rope), static_cast<long long>(c.v_head),
        weights_.layers.empty() || !weights_.layers[0].fused_kv_b ? "split attn_k_b/attn_v_b" : "fused attn_kv_b",
        static_cast<long long>(c.cache_row()), static_cast<long long>(c.n_expert), static_cast<long long>(c.n_expert_used),
        static_cast<long long>(c.n_expert_shared), static_cast<long long>(c.n_ff_exp),
        c.gating == Gating::Sigmoid ? "sigmoid" : "softmax",
        c.gating == Gating::Sigmoid && !weights_.layers.empty() && weights_.layers.back().exp_probs_b ? " + correction bias" : "",
        static_cast<long long>(c.n_group), static_cast<long long>(c.n_group_used), c.weights_norm ? "yes" : "no",
        c.weights_scale, c.rope_base, static_cast<long long>(c.qk_rope), c.yarn ? "yarn" : "none");
    std::string s(buf, static_cast<size_t>(std::max(0, std::min(n, static_cast<int>(sizeof buf) - 1))));
    if (c.yarn) {
      std::snprintf(buf, sizeof buf, " (factor %g, original context %g, log multiplier %g: softmax scale %.6g)",
                    c.yarn_factor, c.yarn_orig_ctx, c.yarn_log_mul, static_cast<double>(c.kq_scale));
      s += buf;
    }
    std::snprintf(buf, sizeof buf, "; rms eps %g; output %s\ntraining context: %lld\n", i.rms_eps,
                  i.tied_output ? "tied to token_embd" : "separate", static_cast<long long>(i.n_ctx_train));
    s += buf;
    if (c.n_nextn > 0) {
      std::snprintf(buf, sizeof buf, "note: %lld multi-token-prediction layer(s) (nextn_predict_layers, %zu tensors) are not used\n",
                    static_cast<long long>(c.n_nextn), weights_.ignored_tensors);
      s += buf;
    }
    return s;
  }

  Expected<ContextPlan> plan(const ContextParams& p) const {
    SLM_TRY(model_memory::validate(p));
    const Config& c = config_;
    // The largest buffers, in double first: a context that cannot be addressed is an error.
    const double biggest = std::max({static_cast<double>(c.n_layer) * p.n_ctx * static_cast<double>(c.cache_row()) * 4.0,
                                     static_cast<double>(p.n_batch) * static_cast<double>(c.n_head) * static_cast<double>(c.cache_row()) * 4.0,
                                     static_cast<double>(c.n_head) * p.n_ctx * 4.0});
    if (biggest > 0x1p50)
      return errorf("context: n_ctx %d with n_batch %d needs more than 2^50 bytes for this model", p.n_ctx, p.n_batch);
    const size_t T = static_cast<size_t>(p.n_ctx), H = static_cast<size_t>(c.n_head);
    const size_t R = static_cast<size_t>(c.cache_row());
    ContextPlan plan;
    const size_t elem = p.kv_type == KvType::F16 ? 2 : 4;
    plan.kv_bytes = static_cast<size_t>(c.n_layer) * T * R * elem;
    // Attention scores of att_chunk tokens x n_head x n_ctx at once: at most ~4M floats (16 MiB)
    // unless one token alone needs more (V3 at 32k context: 128 x 32768).
    plan.att_chunk = std::clamp<int64_t>(static_cast<int64_t>((size_t{4} << 20) / (H * T)), 1, p.n_batch);
    auto need = [&](const kernels::Matrix& m, int64_t n_tok) {
      if (m.data == nullptr) return;
      plan.scratch_bytes = std::max(plan.scratch_bytes, kernels::matmul_scratch_bytes(m.type, m.n_cols, n_tok));
    };
    need(weights_.output, p.n_batch);
    const DType kv_dtype = p.kv_type == KvType::F16 ? DType::F16 : DType::F32;
    plan.scratch_bytes = std::max(plan.scratch_bytes, kernels::matmul_scratch_bytes(kv_dtype, c.cache_row(), plan.att_chunk * c.n_head));
    for (const Layer& L : weights_.layers)
      for (const kernels::Matrix* m : {&L.wq, &L.wq_a, &L.wq_b, &L.wkv_a, &L.k_b, &L.v_b, &L.kv_b, &L.wo, &L.w_gate, &L.w_up,
                                       &L.w_down, &L.gate_inp, &L.gate_exps, &L.up_exps, &L.down_exps, &L.gate_sh, &L.up_sh,
                                       &L.down_sh})
        need(*m, p.n_batch);
    model_memory::Carver measure;  // the layout the context will use, measured
    Deepseek2Buffers unused;
    carve(measure, c, p, plan, unused);
    plan.total_bytes = measure.used();
    return plan;
  }

  size_t context_memory_required(const ContextParams& params) const override {
    auto p = plan(params);
    return p ? p->total() : 0;
  }

  Expected<std::unique_ptr<Context>> create_context(const ContextParams& params) const override;

  const Config& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  gguf::File file_;
  Config config_;
  Weights weights_;
  ModelInfo info_;
  std::vector<float> inv_freq_;  // (qk_rope/2,) RoPE frequency of each rotated pair (YaRN applied)
  std::optional<Tokenizer> tokenizer_;

  // The matrices worth copying into the kernels' interleaved layout at load
  // (model_interleave::wanted). The forward pass multiplies row slices of some of them (one
  // expert of a stacked expert tensor, one head of k_b / v_b): a slice of an interleaved matrix
  // is itself one when it starts and ends on a group of 16 rows, so those are interleaved only
  // when every slice does. kv_b of older files is read row by row (not through matmul) and the
  // token embedding by row lookup: both stay mapped.
  std::vector<kernels::Matrix*> interleave_candidates() {
    const Config& c = config_;
    const bool expert_slices = c.n_ff_exp % 16 == 0 && c.n_embd % 16 == 0;
    const bool head_slices = c.kv_lora_rank % 16 == 0 && c.v_head % 16 == 0;
    std::vector<kernels::Matrix*> mats;
    auto add = [&](kernels::Matrix& m, bool sliced_ok) {
      if (sliced_ok && m.data && model_interleave::wanted(m)) mats.push_back(&m);
    };
    for (Layer& L : weights_.layers) {
      for (kernels::Matrix* m : {&L.wq, &L.wq_a, &L.wq_b, &L.wkv_a, &L.wo, &L.w_gate, &L.w_up, &L.w_down, &L.gate_inp,
                                 &L.gate_sh, &L.up_sh, &L.down_sh})
        add(*m, true);
      for (kernels::Matrix* m : {&L.gate_exps, &L.up_exps, &L.down_exps}) add(*m, expert_slices);
      if (!L.fused_kv_b)
        for (kernels::Matrix* m : {&L.k_b, &L.v_b}) add(*m, head_slices);
    }
    if (!weights_.tied_output) add(weights_.output, true);
    return mats;
  }

  model_interleave::Store interleaved_;  // the interleaved copies
};

// Rows [first, first + n) of a stacked matrix (one expert, one head).
kernels::Matrix rows_of(const kernels::Matrix& m, int64_t first, int64_t n) {
  kernels::Matrix v = m;
  v.data = static_cast<const uint8_t*>(m.data) + static_cast<size_t>(first) * m.row_stride;
  v.n_rows = n;
  return v;
}

// ---- Context: run state and forward pass ---------------------------------------------------

class Deepseek2Context final : public model_memory::ContextBase, private Deepseek2Buffers {
 public:
  Deepseek2Context(const Deepseek2Model& model, const ContextParams& params, const ContextPlan& plan)
      : ContextBase(params, model.config().n_vocab), model_(model), c_(model.config()), w_(model.weights()), plan_(plan) {}

  // All buffers from one block (params_.arena or one allocation): no other allocation here
  // but the thread pool's, made after the arena is known to fit.
  Status init() {
    SLM_TRY(block_.init(params_, plan_.total_bytes));
    model_memory::Carver cv(block_.data());
    carve(cv, c_, params_, plan_, *this);
    auto pool = ThreadPool::create(params_.n_threads);
    if (!pool) return pool.error();
    pool_ = std::move(*pool);
    return Status::success();
  }

  const Model& model() const override { return model_; }
  const float* last_token_logits() const override { return logits_one_; }
  size_t kv_cache_bytes() const override { return plan_.kv_bytes; }
  size_t memory_bytes() const override { return plan_.total(); }
  std::span<const int32_t> routing() const { return {routing_, static_cast<size_t>(n_routed_)}; }

 protected:
  // routing_ holds the choices of the last step of the last eval (none after a failed one).
  void begin_eval() override { n_routed_ = 0; }
  void end_step(int64_t n_tokens, bool ok) override {
    n_routed_ = ok ? n_tokens * (c_.n_layer - c_.n_dense_lead) * c_.n_expert_used : 0;
  }

 private:
  Status matmul(const kernels::Matrix& w, const float* x, int64_t ldx, int64_t n, float* y, int64_t ldy) {
    return kernels::matmul(isa(), w, x, ldx, n, y, ldy, scratch_.data(), scratch_.size(), pool_.get());
  }
  // Runs fn(i, n) on the pool, or inline when `work` (multiply-adds, roughly) is too small to
  // pay for waking the workers (as kernels::matmul decides for its products).
  template <class Fn>
  void parallel(double work, Fn&& fn) {
    if (pool_ && work >= kernels::kMinPoolMacs) pool_->run(fn);
    else fn(0, 1);
  }
  // y_h = W_h x_h for every head h (the absorbed k_b / v_b products: one small matrix per head;
  // head h reads x + h * x_step and writes y + h * y_step, T tokens ldx / ldy apart).
  // At decode each head's product is below the size that pays for waking the pool, so one by
  // one they ran on the caller's thread while the others waited (11% of a V2-Lite decode step);
  // here the threads take whole heads, each head multiplied on one thread exactly as inline
  // before (the same bits for any thread count), each thread on its own slice of the scratch.
  template <class WeightOf>
  Status per_head(int64_t H, WeightOf weight_of, const float* x, int64_t x_step, int64_t ldx, float* y, int64_t y_step,
                  int64_t ldy, int64_t T) {
    const kernels::Matrix w0 = weight_of(0);
    const double head_macs = static_cast<double>(w0.n_rows) * static_cast<double>(w0.n_cols) * static_cast<double>(T);
    const int nt = pool_ ? pool_->size() : 1;
    const size_t slice = scratch_.size() / static_cast<size_t>(nt) / 64 * 64;
    const bool split = nt > 1 && H > 1 && head_macs < kernels::kMinPoolMacs &&
                       slice >= kernels::matmul_scratch_bytes(w0.type, w0.n_cols, T);
    if (!split) {
      for (int64_t h = 0; h < H; ++h) SLM_TRY(matmul(weight_of(h), x + h * x_step, ldx, T, y + h * y_step, ldy));
      return Status::success();
    }
    std::atomic<bool> failed{false};
    pool_->run([&](int ti, int n) {
      long h0, h1;
      split_range(static_cast<long>(H), ti, n, &h0, &h1);
      uint8_t* mine = scratch_.data() + static_cast<size_t>(ti) * slice;
      for (long h = h0; h < h1; ++h)
        if (!kernels::matmul(isa(), weight_of(h), x + h * x_step, ldx, T, y + h * y_step, ldy, mine, slice, nullptr).ok())
          failed.store(true, std::memory_order_relaxed);
    });
    if (failed.load()) return errorf("deepseek2: a per-head product failed (%lld heads of %lld x %lld %s)",
                                     static_cast<long long>(H), static_cast<long long>(w0.n_rows),
                                     static_cast<long long>(w0.n_cols), dtype_name(w0.type));
    return Status::success();
  }
  bool f16_cache() const { return params_.kv_type == KvType::F16; }
  size_t cache_elem() const { return f16_cache() ? 2 : 4; }
  uint8_t* cache_layer(int64_t l) {
    return kv_ + static_cast<size_t>(l) * static_cast<size_t>(params_.n_ctx) * static_cast<size_t>(c_.cache_row()) * cache_elem();
  }
  // Columns [c0, c1) of cache row `pos` of layer base `layer` as floats.
  void cache_read(const uint8_t* layer, int64_t pos, int64_t c0, int64_t c1, float* out) const {
    const size_t off = static_cast<size_t>(pos) * static_cast<size_t>(c_.cache_row()) + static_cast<size_t>(c0);
    if (f16_cache()) {
      const uint16_t* src = reinterpret_cast<const uint16_t*>(layer) + off;
      for (int64_t i = 0; i < c1 - c0; ++i) out[i] = f16_to_f32(src[i]);
    } else {
      std::memcpy(out, reinterpret_cast<const float*>(layer) + off, static_cast<size_t>(c1 - c0) * sizeof(float));
    }
  }

  // One step over `tokens` (<= n_batch) at positions n_past_ ...
  Status forward(std::span<const int32_t> tokens, int64_t first, bool last_chunk) override {
    const Config& c = c_;
    const int64_t T = static_cast<int64_t>(tokens.size());
    const int64_t E = c.n_embd, half = c.qk_rope / 2;
    const int64_t pos0 = n_past_;
    for (int64_t t = 0; t < T; ++t) {
      const kernels::Matrix& te = w_.token_embd;
      SLM_TRY(ops::get_row(te.type, te.data, te.row_stride, te.n_rows, E, tokens[t], x_ + t * E));
      ops::rope_cos_sin(cos_ + t * half, sin_ + t * half, model_.inv_freq().data(), c.qk_rope, pos0 + t);
    }
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const Layer& L = w_.layers[static_cast<size_t>(l)];
      for (int64_t t = 0; t < T; ++t) ops::rmsnorm(isa(), xb_ + t * E, x_ + t * E, L.attn_norm, E, c.rms_eps);
      SLM_TRY(attention(l, L, T, pos0));
      SLM_TRY(matmul(L.wo, att_, c.n_head * c.v_head, T, xb_, E));
      for (int64_t t = 0; t < T; ++t) ops::add(isa(), x_ + t * E, xb_ + t * E, E);

      for (int64_t t = 0; t < T; ++t) ops::rmsnorm(isa(), xb_ + t * E, x_ + t * E, L.ffn_norm, E, c.rms_eps);
      if (c.is_moe_layer(l)) {
        SLM_TRY(moe(L, T, l - c.n_dense_lead));
      } else {
        SLM_TRY(ffn(L.w_gate, L.w_up, L.w_down, xb_, T, gy_));
      }
      for (int64_t t = 0; t < T; ++t) ops::add(isa(), x_ + t * E, gy_ + t * E, E);
    }
    n_past_ += static_cast<int>(T);
    last_eval_size_ = static_cast<int>(first + T);

    const int64_t V = c.n_vocab;
    if (all_logits_) {
      for (int64_t t = 0; t < T; ++t) ops::rmsnorm(isa(), xb_ + t * E, x_ + t * E, w_.output_norm, E, c.rms_eps);
      SLM_TRY(matmul(w_.output, xb_, E, T, logits_all_.data() + first * V, V));
    } else if (last_chunk) {
      ops::rmsnorm(isa(), xb_, x_ + (T - 1) * E, w_.output_norm, E, c.rms_eps);
      SLM_TRY(matmul(w_.output, xb_, E, 1, logits_one_, V));
    }
    return Status::success();
  }

  // SwiGLU FFN of T rows of `in` (stride n_embd) into `out` (stride n_embd).
  Status ffn(const kernels::Matrix& gate, const kernels::Matrix& up, const kernels::Matrix& down, const float* in, int64_t T,
             float* out) {
    const int64_t E = c_.n_embd, F = gate.n_rows;
    SLM_TRY(matmul(gate, in, E, T, hb_, F));
    SLM_TRY(matmul(up, in, E, T, hb2_, F));
    for (int64_t t = 0; t < T; ++t) ops::silu_mul(isa(), hb_ + t * F, hb2_ + t * F, F);
    return matmul(down, hb_, F, T, out, E);
  }

  // MLA in the absorbed form for T tokens of layer l: reads xb_ (normed input), writes att_
  // (n_head * v_head per token) and the cache rows of the new positions.
  Status attention(int64_t l, const Layer& L, int64_t T, int64_t pos0) {
    const Config& c = c_;
    const int64_t E = c.n_embd, H = c.n_head, dk = c.qk_head(), dn = c.qk_nope, dr = c.qk_rope;
    const int64_t dc = c.kv_lora_rank, dv = c.v_head, R = c.cache_row(), half = dr / 2;
    // Queries, per head [nope | rope].
    if (c.q_lora_rank > 0) {
      SLM_TRY(matmul(L.wq_a, xb_, E, T, qa_, c.q_lora_rank));
      for (int64_t t = 0; t < T; ++t) ops::rmsnorm(isa(), qa_ + t * c.q_lora_rank, qa_ + t * c.q_lora_rank, L.q_a_norm, c.q_lora_rank, c.rms_eps);
      SLM_TRY(matmul(L.wq_b, qa_, c.q_lora_rank, T, q_, H * dk));
    } else {
      SLM_TRY(matmul(L.wq, xb_, E, T, q_, H * dk));
    }
    // Latent and shared rope key; normalise the latent, rotate the rope parts, cache [c | kr].
    SLM_TRY(matmul(L.wkv_a, xb_, E, T, kva_, R));
    uint8_t* layer = cache_layer(l);
    for (int64_t t = 0; t < T; ++t) {
      float* kv = kva_ + t * R;
      ops::rmsnorm(isa(), kv, kv, L.kv_a_norm, dc, c.rms_eps);
      ops::rope(isa(), kv + dc, 1, dr, dr, cos_ + t * half, sin_ + t * half, ops::RopeStyle::AdjacentPairs);
      ops::rope(isa(), q_ + t * H * dk + dn, H, dk, dr, cos_ + t * half, sin_ + t * half, ops::RopeStyle::AdjacentPairs);
      const size_t off = static_cast<size_t>(pos0 + t) * static_cast<size_t>(R);
      if (f16_cache()) {
        kernels::f32_to_f16_row(isa(), kv, reinterpret_cast<uint16_t*>(layer) + off, R);
      } else {
        std::memcpy(reinterpret_cast<float*>(layer) + off, kv, static_cast<size_t>(R) * sizeof(float));
      }
    }
    // Absorbed queries qc[t][h] = [W_UK_h^T q_nope | q_rope] (R values, like a cache row).
    if (!L.fused_kv_b) {
      SLM_TRY(per_head(H, [&](int64_t h) { return rows_of(L.k_b, h * dc, dc); }, q_, dk, H * dk, qc_, R, H * R, T));
    } else {
      // Older files hold W_UK_h untransposed: accumulate its rows, each dequantised once.
      const TypeTraits& tt = traits(L.kv_b.type);
      parallel(static_cast<double>(H * dn * dc) * static_cast<double>(T), [&](int ti, int nt) {
        long h0, h1;
        split_range(static_cast<long>(H), ti, nt, &h0, &h1);
        float* row = rowbuf_ + static_cast<size_t>(ti) * static_cast<size_t>(std::max(dc, dn));
        for (int64_t h = h0; h < h1; ++h) {
          for (int64_t t = 0; t < T; ++t) std::fill_n(qc_ + (t * H + h) * R, dc, 0.0f);
          for (int64_t i = 0; i < dn; ++i) {
            tt.to_float(static_cast<const uint8_t*>(L.kv_b.data) + static_cast<size_t>(h * (dn + dv) + i) * L.kv_b.row_stride, row, dc);
            for (int64_t t = 0; t < T; ++t) {
              const float a = q_[t * H * dk + h * dk + i];
              float* dst = qc_ + (t * H + h) * R;
              for (int64_t j = 0; j < dc; ++j) dst[j] += a * row[j];
            }
          }
        }
      });
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) std::memcpy(qc_ + (t * H + h) * R + dc, q_ + t * H * dk + h * dk + dn, static_cast<size_t>(dr) * sizeof(float));

    // Scores against the cache (one matmul: the cache rows are the "weights"), causal softmax,
    // then the weighted sum of latents; att_chunk tokens at a time to bound the score buffer.
    for (int64_t t0 = 0; t0 < T; t0 += plan_.att_chunk) {
      const int64_t tc = std::min(plan_.att_chunk, T - t0);
      const int64_t n_pos = pos0 + t0 + tc;  // positions the last token of the chunk sees
      kernels::Matrix cache;
      cache.type = f16_cache() ? DType::F16 : DType::F32;
      cache.data = layer;
      cache.n_rows = n_pos;
      cache.n_cols = R;
      cache.row_stride = static_cast<size_t>(R) * cache_elem();
      SLM_TRY(matmul(cache, qc_ + t0 * H * R, R, tc * H, scores_, n_pos));
      const int64_t items = tc * H;
      parallel(static_cast<double>(items) * static_cast<double>(n_pos) * 8.0, [&](int ti, int nt) {
        long b, e;
        split_range(static_cast<long>(items), ti, nt, &b, &e);
        for (long it = b; it < e; ++it) {
          const int64_t t = it / H;
          const int64_t seen = pos0 + t0 + t + 1;
          float* s = scores_ + it * n_pos;
          for (int64_t p = 0; p < seen; ++p) s[p] *= c.kq_scale;
          ops::softmax(isa(), s, seen);
          std::fill(s + seen, s + n_pos, 0.0f);
        }
      });
      // o_lat[t][h] = sum_p a[t][h][p] c(p): threads split the latent columns, so each cache row
      // is converted once and every output element has one writer.
      parallel(static_cast<double>(items) * static_cast<double>(n_pos) * static_cast<double>(dc), [&](int ti, int nt) {
        long c0, c1;
        split_range(static_cast<long>(dc), ti, nt, &c0, &c1);
        if (c0 == c1) return;
        float* row = rowbuf_ + static_cast<size_t>(ti) * static_cast<size_t>(std::max(dc, dn));
        for (int64_t it = 0; it < items; ++it) std::fill(olat_ + (t0 * H + it) * dc + c0, olat_ + (t0 * H + it) * dc + c1, 0.0f);
        for (int64_t p = 0; p < n_pos; ++p) {
          cache_read(layer, p, c0, c1, row);
          for (int64_t it = 0; it < items; ++it) {
            const float a = scores_[it * n_pos + p];
            if (a == 0.0f) continue;
            float* dst = olat_ + (t0 * H + it) * dc;
            for (long j = c0; j < c1; ++j) dst[j] += a * row[j - c0];
          }
        }
      });
    }
    // Value up-projection per head: att[t][h] = W_UV_h o_lat[t][h].
    auto wv = [&](int64_t h) { return L.fused_kv_b ? rows_of(L.kv_b, h * (dn + dv) + dn, dv) : rows_of(L.v_b, h * dv, dv); };
    SLM_TRY(per_head(H, wv, olat_, dc, H * dc, att_, dv, H * dv, T));
    return Status::success();
  }

  // Routed experts + shared experts of T tokens: xb_ (normed) -> gy_.
  // `moe_layer`: index among the MoE layers (routing_ records the choices of this step's tokens).
  Status moe(const Layer& L, int64_t T, int64_t moe_layer) {
    const Config& c = c_;
    const int64_t E = c.n_embd, NE = c.n_expert, K = c.n_expert_used, F = c.n_ff_exp;
    SLM_TRY(matmul(L.gate_inp, xb_, E, T, router_, NE));
    const int64_t n_moe = c.n_layer - c.n_dense_lead;
    for (int64_t t = 0; t < T; ++t) {
      route(isa(), c, router_ + t * NE, L.exp_probs_b, route_id_ + t * K, route_w_ + t * K, route_scratch_);
      std::copy_n(route_id_ + t * K, K, routing_ + (t * n_moe + moe_layer) * K);
    }
    // Group the (token, weight) pairs by expert (counting sort, tokens in order).
    std::fill_n(exp_off_, NE + 1, 0);
    for (int64_t i = 0; i < T * K; ++i) ++exp_off_[route_id_[i] + 1];
    for (int64_t e = 0; e < NE; ++e) exp_off_[e + 1] += exp_off_[e];
    for (int64_t i = 0; i < T * K; ++i) {
      const int32_t e = route_id_[i];
      const int32_t slot = exp_off_[e]++;
      exp_tok_[slot] = static_cast<int32_t>(i / K);
      exp_w_[slot] = route_w_[i];
    }
    for (int64_t e = NE; e > 0; --e) exp_off_[e] = exp_off_[e - 1];
    exp_off_[0] = 0;

    std::fill_n(moe_, T * E, 0.0f);
    // Each selected expert's weights are read once for all its tokens of the batch; the other
    // experts' pages are never touched (they stay on disk under the map).
    for (int64_t e = 0; e < NE; ++e) {
      const int64_t b = exp_off_[e], n = exp_off_[e + 1] - b;
      if (n == 0) continue;
      for (int64_t j = 0; j < n; ++j) std::memcpy(gx_ + j * E, xb_ + static_cast<int64_t>(exp_tok_[b + j]) * E, static_cast<size_t>(E) * sizeof(float));
      SLM_TRY(ffn(rows_of(L.gate_exps, e * F, F), rows_of(L.up_exps, e * F, F), rows_of(L.down_exps, e * E, E), gx_, n, gy_));
      for (int64_t j = 0; j < n; ++j) {
        const float wgt = exp_w_[b + j];
        float* dst = moe_ + static_cast<int64_t>(exp_tok_[b + j]) * E;
        const float* src = gy_ + j * E;
        for (int64_t i = 0; i < E; ++i) dst[i] += wgt * src[i];
      }
    }
    if (L.gate_sh.data != nullptr) {
      SLM_TRY(ffn(L.gate_sh, L.up_sh, L.down_sh, xb_, T, gy_));
      for (int64_t t = 0; t < T; ++t) ops::add(isa(), gy_ + t * E, moe_ + t * E, E);
    } else {
      std::memcpy(gy_, moe_, static_cast<size_t>(T * E) * sizeof(float));
    }
    return Status::success();
  }

  const Deepseek2Model& model_;
  const Config& c_;
  const Weights& w_;
  ContextPlan plan_;
  std::unique_ptr<ThreadPool> pool_;
  model_memory::Block block_;  // holds every buffer of Deepseek2Buffers
  int64_t n_routed_ = 0;
};

Expected<std::unique_ptr<Context>> Deepseek2Model::create_context(const ContextParams& params) const {
  auto p = plan(params);
  if (!p) return p.error();
  auto ctx = std::make_unique<Deepseek2Context>(*this, params, *p);
  SLM_TRY(ctx->init());
  return std::unique_ptr<Context>(std::move(ctx));
}

}  // namespace

std::span<const int32_t> last_routing(const Context& ctx) {
  const auto* d = dynamic_cast<const Deepseek2Context*>(&ctx);
  return d ? d->routing() : std::span<const int32_t>();
}

Expected<std::unique_ptr<Model>> load(gguf::File file, const ModelParams& params) {
  auto config = read_config(file);
  if (!config) return config.error();
  auto weights = bind_weights(file, *config);
  if (!weights) return weights.error();
  auto model = std::make_unique<Deepseek2Model>(std::move(file), std::move(*config), std::move(*weights));
  SLM_TRY(model->init(params));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace slm::deepseek2
