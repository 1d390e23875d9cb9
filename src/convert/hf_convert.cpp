// slm-convert's engine: reads config.json, the safetensors shards and the tokenizer files of a
// Hugging Face model directory and writes a GGUF file in llama.cpp's layout (names, keys, Q/K
// order, MLA split, stacked experts), streaming each tensor through a gguf::Writer producer.
#include "convert/hf_convert.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "slm/gguf.hpp"
#include "slm/safetensors.hpp"
#include "slm/thread_pool.hpp"

namespace slm::convert {

namespace fs = std::filesystem;
using st_Tensor = safetensors::Tensor;

// The pre-tokenizer regexes of Llama 3 (llama.cpp "llama-bpe") and Qwen2 ("qwen2", or
// "deepseek-r1-qwen" with the DeepSeek-R1 special tokens), as written in their tokenizer.json.
const char* const kRegexLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kRegexQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

// ============================================================================================
// Config helpers
// ============================================================================================

struct Config {
  const json::Value* root = nullptr;
  std::string path;

  const json::Value* find(std::string_view key) const { return root->find(key); }
  bool has(std::string_view key) const {
    const json::Value* v = find(key);
    return v != nullptr && !v->is_null();
  }
  Expected<int64_t> integer(std::string_view key) const {
    auto v = json::get_int(*root, key);
    if (!v) return errorf("%s: %s", path.c_str(), v.error().message.c_str());
    if (*v < 0 || *v > (int64_t{1} << 40)) {
      return errorf("%s: %.*s = %lld is out of range", path.c_str(), static_cast<int>(key.size()), key.data(),
                    static_cast<long long>(*v));
    }
    return *v;
  }
  Expected<int64_t> integer_or(std::string_view key, int64_t fallback) const {
    if (!has(key)) return fallback;
    return integer(key);
  }
  Expected<double> number_or(std::string_view key, double fallback) const {
    if (!has(key)) return fallback;
    auto v = json::get_number(*root, key);
    if (!v) return errorf("%s: %s", path.c_str(), v.error().message.c_str());
    return *v;
  }
  bool boolean_or(std::string_view key, bool fallback) const {
    const json::Value* v = find(key);
    return v != nullptr && v->is_bool() ? v->as_bool() : fallback;
  }
  std::string string_or(std::string_view key, std::string fallback) const {
    const json::Value* v = find(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : fallback;
  }
};

#define SLM_ASSIGN(var, expr)           \
  auto var##_or_ = (expr);              \
  if (!var##_or_) return var##_or_.error(); \
  auto var = *var##_or_

// ============================================================================================
// Output tensors
// ============================================================================================

// One GGUF tensor: its shape (ne[0] = row length first) and a function producing row r as floats.
struct OutTensor {
  std::string name;
  std::vector<int64_t> ne;
  DType type = DType::F32;
  int64_t rows = 0;
  std::function<Status(int64_t row, float* out)> row;
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

class Builder {
 public:
  Builder(const safetensors::Checkpoint& ckpt, DType outtype) : ckpt_(ckpt), outtype_(outtype) {}

  // The HF tensor `hf` with the given PyTorch shape, or an Error naming what is missing/wrong.
  Expected<const st_Tensor*> get(const std::string& hf, const std::vector<int64_t>& shape) {
    const st_Tensor* t = ckpt_.find(hf);
    if (t == nullptr) return errorf("tensor '%s' is missing from the checkpoint", hf.c_str());
    if (t->shape != shape) {
      return errorf("tensor '%s' has shape %s, the config implies %s", hf.c_str(), shape_str(t->shape).c_str(),
                    shape_str(shape).c_str());
    }
    if (!t->is_float()) {
      return errorf("tensor '%s' (in %s) is %s: only F32, F16, BF16 and F64 checkpoints convert (FP8 checkpoints "
                    "need dequantizing first)",
                    hf.c_str(), t->file->c_str(), safetensors::dtype_name(t->dtype));
    }
    used_.insert(hf);
    return t;
  }
  bool has(const std::string& hf) const { return ckpt_.find(hf) != nullptr; }
  void skip(const std::string& hf) { used_.insert(hf); }

  // The GGUF type of a tensor: F32 for vectors, norms and the MoE router, else the out type.
  DType type_for(const std::string& name, size_t n_dims) const {
    if (n_dims <= 1 || name.ends_with("_norm.weight") || name.find("ffn_gate_inp.weight") != std::string::npos) {
      return DType::F32;
    }
    return outtype_;
  }

  void add(OutTensor t) { out_.push_back(std::move(t)); }

  // A tensor copied as is (PyTorch shape reversed into ne).
  Status direct(const std::string& gguf_name, const std::string& hf, const std::vector<int64_t>& shape) {
    SLM_ASSIGN(t, get(hf, shape));
    OutTensor o;
    o.name = gguf_name;
    o.ne.assign(shape.rbegin(), shape.rend());
    o.type = type_for(gguf_name, shape.size());
    const int64_t n0 = o.ne[0];
    o.rows = static_cast<int64_t>(t->n_elements) / n0;
    o.row = [t, n0](int64_t r, float* out) {
      return safetensors::read_f32(*t, static_cast<uint64_t>(r * n0), static_cast<uint64_t>(n0), out);
    };
    add(std::move(o));
    return Status::success();
  }

  // Q or K (weight [n_head*hd, n_embd] or bias [n_head*hd]) reordered for llama.cpp's RoPE: HF
  // rotates pairs (i, i + hd/2) of each head, ggml's normal RoPE pairs (2j, 2j+1), so output row
  // h*hd + 2j + p is HF row h*hd + p*hd/2 + j.
  Status permuted(const std::string& gguf_name, const std::string& hf, const std::vector<int64_t>& shape,
                  int64_t n_head) {
    SLM_ASSIGN(t, get(hf, shape));
    const int64_t n_rows_total = shape[0];
    if (n_head <= 0 || n_rows_total % n_head != 0 || (n_rows_total / n_head) % 2 != 0) {
      return errorf("tensor '%s': %lld rows do not split into %lld heads of even size", hf.c_str(),
                    static_cast<long long>(n_rows_total), static_cast<long long>(n_head));
    }
    const int64_t hd = n_rows_total / n_head;
    auto src_row = [hd](int64_t r) {
      const int64_t h = r / hd, i = r % hd, j = i / 2, p = i % 2;
      return h * hd + p * (hd / 2) + j;
    };
    OutTensor o;
    o.name = gguf_name;
    o.ne.assign(shape.rbegin(), shape.rend());
    o.type = type_for(gguf_name, shape.size());
    if (shape.size() == 1) {  // a bias: one row whose elements are permuted
      o.rows = 1;
      o.row = [t, n_rows_total, src_row](int64_t, float* out) -> Status {
        std::vector<float> all(static_cast<size_t>(n_rows_total));
        SLM_TRY(safetensors::read_f32(*t, 0, static_cast<uint64_t>(n_rows_total), all.data()));
        for (int64_t r = 0; r < n_rows_total; ++r) out[r] = all[static_cast<size_t>(src_row(r))];
        return Status::success();
      };
    } else {
      const int64_t n0 = shape[1];
      o.rows = n_rows_total;
      o.row = [t, n0, src_row](int64_t r, float* out) {
        return safetensors::read_f32(*t, static_cast<uint64_t>(src_row(r) * n0), static_cast<uint64_t>(n0), out);
      };
    }
    add(std::move(o));
    return Status::success();
  }

  // Experts e = 0..n-1 of the same shape [a, b] stacked into one 3-D tensor ne = [b, a, n].
  Status stacked(const std::string& gguf_name, const std::vector<std::string>& hf, const std::vector<int64_t>& shape) {
    std::vector<const st_Tensor*> ts;
    for (const std::string& h : hf) {
      SLM_ASSIGN(t, get(h, shape));
      ts.push_back(t);
    }
    OutTensor o;
    o.name = gguf_name;
    o.ne = {shape[1], shape[0], static_cast<int64_t>(hf.size())};
    o.type = type_for(gguf_name, 3);
    const int64_t n0 = shape[1], per = shape[0];
    o.rows = per * static_cast<int64_t>(hf.size());
    o.row = [ts, n0, per](int64_t r, float* out) {
      return safetensors::read_f32(*ts[static_cast<size_t>(r / per)], static_cast<uint64_t>((r % per) * n0),
                                   static_cast<uint64_t>(n0), out);
    };
    add(std::move(o));
    return Status::success();
  }

  // Unused checkpoint tensors are an error (a name we do not map would silently drop weights).
  Status check_all_used(const std::function<bool(const std::string&)>& ignorable) const {
    for (const st_Tensor* t : ckpt_.tensors()) {
      if (used_.count(t->name) || ignorable(t->name)) continue;
      return errorf("checkpoint tensor '%s' (in %s) is not used by this architecture's conversion", t->name.c_str(),
                    t->file->c_str());
    }
    return Status::success();
  }

  std::vector<OutTensor>& tensors() { return out_; }

 private:
  const safetensors::Checkpoint& ckpt_;
  DType outtype_;
  std::set<std::string> used_;
  std::vector<OutTensor> out_;
};

std::string L(int64_t i) { return "model.layers." + std::to_string(i) + "."; }
std::string B(int64_t i) { return "blk." + std::to_string(i) + "."; }

// ============================================================================================
// Architectures
// ============================================================================================

// rope_scaling (or rope_parameters in newer configs); nullptr when absent or null.
const json::Value* rope_scaling(const Config& c) {
  for (const char* k : {"rope_scaling", "rope_parameters"}) {
    const json::Value* v = c.find(k);
    if (v != nullptr && v->is_object()) return v;
  }
  return nullptr;
}

std::string scaling_type(const json::Value* rs) {
  if (rs == nullptr) return "";
  for (const char* k : {"rope_type", "type"}) {
    const json::Value* v = rs->find(k);
    if (v != nullptr && v->is_string()) return std::string(v->as_string());
  }
  return "";
}

double scaling_number(const json::Value* rs, const char* key, double fallback) {
  const json::Value* v = rs ? rs->find(key) : nullptr;
  return v != nullptr && v->is_number() ? v->as_double() : fallback;
}

Status write_rope_scaling(gguf::Writer& w, const std::string& arch, const json::Value* rs, int64_t n_ctx) {
  const std::string type = scaling_type(rs);
  if (type.empty() || type == "default" || type == "llama3") return Status::success();  // llama3: rope_freqs
  if (type == "linear" || type == "yarn") {
    w.add_string(arch + ".rope.scaling.type", type);
    w.add_float32(arch + ".rope.scaling.factor", static_cast<float>(scaling_number(rs, "factor", 1.0)));
    if (type == "yarn") {
      w.add_uint32(arch + ".rope.scaling.original_context_length",
                   static_cast<uint32_t>(scaling_number(rs, "original_max_position_embeddings", static_cast<double>(n_ctx))));
      if (const json::Value* m = rs->find("mscale_all_dim"); m != nullptr && m->is_number()) {
        w.add_float32(arch + ".rope.scaling.yarn_log_multiplier", static_cast<float>(0.1 * m->as_double()));
      }
    }
    return Status::success();
  }
  return errorf("config.json: rope scaling type '%s' is not supported", type.c_str());
}

Status convert_dense(const Config& c, const std::string& arch, Builder& b, gguf::Writer& w, int64_t n_vocab) {
  SLM_ASSIGN(n_embd, c.integer("hidden_size"));
  SLM_ASSIGN(n_layer, c.integer("num_hidden_layers"));
  SLM_ASSIGN(n_ff, c.integer("intermediate_size"));
  SLM_ASSIGN(n_head, c.integer("num_attention_heads"));
  SLM_ASSIGN(n_head_kv, c.integer_or("num_key_value_heads", n_head));
  SLM_ASSIGN(n_ctx, c.integer_or("max_position_embeddings", 4096));
  SLM_ASSIGN(theta, c.number_or("rope_theta", 10000.0));
  SLM_ASSIGN(eps, c.number_or("rms_norm_eps", 1e-6));
  if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0 || n_embd % n_head != 0) {
    return errorf("config.json: num_attention_heads %lld / num_key_value_heads %lld / hidden_size %lld do not fit",
                  static_cast<long long>(n_head), static_cast<long long>(n_head_kv), static_cast<long long>(n_embd));
  }
  SLM_ASSIGN(head_dim, c.integer_or("head_dim", n_embd / n_head));
  const bool llama = arch == "llama";
  const bool tied = c.boolean_or("tie_word_embeddings", false) || !b.has("lm_head.weight");

  w.add_uint32(arch + ".context_length", static_cast<uint32_t>(n_ctx));
  w.add_uint32(arch + ".embedding_length", static_cast<uint32_t>(n_embd));
  w.add_uint32(arch + ".block_count", static_cast<uint32_t>(n_layer));
  w.add_uint32(arch + ".feed_forward_length", static_cast<uint32_t>(n_ff));
  w.add_uint32(arch + ".attention.head_count", static_cast<uint32_t>(n_head));
  w.add_uint32(arch + ".attention.head_count_kv", static_cast<uint32_t>(n_head_kv));
  w.add_float32(arch + ".rope.freq_base", static_cast<float>(theta));
  w.add_float32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(eps));
  if (head_dim != n_embd / n_head) {
    w.add_uint32(arch + ".attention.key_length", static_cast<uint32_t>(head_dim));
    w.add_uint32(arch + ".attention.value_length", static_cast<uint32_t>(head_dim));
  }
  w.add_uint32(arch + ".vocab_size", static_cast<uint32_t>(n_vocab));
  w.add_uint32(arch + ".rope.dimension_count", static_cast<uint32_t>(head_dim));
  const json::Value* rs = rope_scaling(c);
  SLM_TRY(write_rope_scaling(w, arch, rs, n_ctx));

  // Llama 3.1 frequency scaling becomes a rope_freqs tensor of per-pair divisors, as in
  // convert_hf_to_gguf (the engine divides each pair's frequency by it).
  if (scaling_type(rs) == "llama3") {
    const double factor = scaling_number(rs, "factor", 8.0), lo = scaling_number(rs, "low_freq_factor", 1.0),
                 hi = scaling_number(rs, "high_freq_factor", 4.0),
                 old_ctx = scaling_number(rs, "original_max_position_embeddings", 8192.0);
    auto freqs = std::make_shared<std::vector<float>>();
    const double lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
    for (int64_t i = 0; i < head_dim; i += 2) {
      const double freq = 1.0 / std::pow(theta, static_cast<double>(i) / static_cast<double>(head_dim));
      const double wavelen = 2.0 * M_PI / freq;
      double f;
      if (wavelen < hi_wavelen) {
        f = 1.0;
      } else if (wavelen > lo_wavelen) {
        f = factor;
      } else {
        const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
        f = 1.0 / ((1.0 - smooth) / factor + smooth);
      }
      freqs->push_back(static_cast<float>(f));
    }
    OutTensor o;
    o.name = "rope_freqs.weight";
    o.ne = {head_dim / 2};
    o.type = DType::F32;
    o.rows = 1;
    o.row = [freqs](int64_t, float* out) {
      std::memcpy(out, freqs->data(), freqs->size() * sizeof(float));
      return Status::success();
    };
    b.add(std::move(o));
  }

  SLM_TRY(b.direct("token_embd.weight", "model.embed_tokens.weight", {n_vocab, n_embd}));
  const int64_t q_rows = n_head * head_dim, kv_rows = n_head_kv * head_dim;
  for (int64_t i = 0; i < n_layer; ++i) {
    const std::string l = L(i), g = B(i);
    SLM_TRY(b.direct(g + "attn_norm.weight", l + "input_layernorm.weight", {n_embd}));
    if (llama) {
      SLM_TRY(b.permuted(g + "attn_q.weight", l + "self_attn.q_proj.weight", {q_rows, n_embd}, n_head));
      SLM_TRY(b.permuted(g + "attn_k.weight", l + "self_attn.k_proj.weight", {kv_rows, n_embd}, n_head_kv));
    } else {
      SLM_TRY(b.direct(g + "attn_q.weight", l + "self_attn.q_proj.weight", {q_rows, n_embd}));
      SLM_TRY(b.direct(g + "attn_k.weight", l + "self_attn.k_proj.weight", {kv_rows, n_embd}));
    }
    SLM_TRY(b.direct(g + "attn_v.weight", l + "self_attn.v_proj.weight", {kv_rows, n_embd}));
    // Biases: always in Qwen2, optional (attention_bias) in Llama.
    if (!llama || b.has(l + "self_attn.q_proj.bias")) {
      if (llama) {
        SLM_TRY(b.permuted(g + "attn_q.bias", l + "self_attn.q_proj.bias", {q_rows}, n_head));
        SLM_TRY(b.permuted(g + "attn_k.bias", l + "self_attn.k_proj.bias", {kv_rows}, n_head_kv));
      } else {
        SLM_TRY(b.direct(g + "attn_q.bias", l + "self_attn.q_proj.bias", {q_rows}));
        SLM_TRY(b.direct(g + "attn_k.bias", l + "self_attn.k_proj.bias", {kv_rows}));
      }
      SLM_TRY(b.direct(g + "attn_v.bias", l + "self_attn.v_proj.bias", {kv_rows}));
    }
    SLM_TRY(b.direct(g + "attn_output.weight", l + "self_attn.o_proj.weight", {n_embd, q_rows}));
    if (b.has(l + "self_attn.o_proj.bias")) {
      SLM_TRY(b.direct(g + "attn_output.bias", l + "self_attn.o_proj.bias", {n_embd}));
    }
    SLM_TRY(b.direct(g + "ffn_norm.weight", l + "post_attention_layernorm.weight", {n_embd}));
    SLM_TRY(b.direct(g + "ffn_gate.weight", l + "mlp.gate_proj.weight", {n_ff, n_embd}));
    SLM_TRY(b.direct(g + "ffn_up.weight", l + "mlp.up_proj.weight", {n_ff, n_embd}));
    SLM_TRY(b.direct(g + "ffn_down.weight", l + "mlp.down_proj.weight", {n_embd, n_ff}));
  }
  SLM_TRY(b.direct("output_norm.weight", "model.norm.weight", {n_embd}));
  if (!tied) {
    SLM_TRY(b.direct("output.weight", "lm_head.weight", {n_vocab, n_embd}));
  } else if (b.has("lm_head.weight")) {
    b.skip("lm_head.weight");  // tied: the same matrix as the embedding
  }
  return b.check_all_used([](const std::string& n) { return n.ends_with("rotary_emb.inv_freq"); });
}

Status convert_deepseek2(const Config& c, Builder& b, gguf::Writer& w, int64_t n_vocab, bool keep_kv_b) {
  const std::string a = "deepseek2";
  SLM_ASSIGN(n_embd, c.integer("hidden_size"));
  SLM_ASSIGN(n_layer, c.integer("num_hidden_layers"));
  SLM_ASSIGN(n_ff, c.integer("intermediate_size"));
  SLM_ASSIGN(n_head, c.integer("num_attention_heads"));
  SLM_ASSIGN(n_ctx, c.integer_or("max_position_embeddings", 4096));
  SLM_ASSIGN(theta, c.number_or("rope_theta", 10000.0));
  SLM_ASSIGN(eps, c.number_or("rms_norm_eps", 1e-6));
  SLM_ASSIGN(kv_lora, c.integer("kv_lora_rank"));
  SLM_ASSIGN(q_lora, c.integer_or("q_lora_rank", 0));
  SLM_ASSIGN(nope, c.integer("qk_nope_head_dim"));
  SLM_ASSIGN(rope_dim, c.integer("qk_rope_head_dim"));
  SLM_ASSIGN(v_dim, c.integer("v_head_dim"));
  SLM_ASSIGN(n_expert, c.integer_or("n_routed_experts", 0));
  SLM_ASSIGN(n_shared, c.integer_or("n_shared_experts", 0));
  SLM_ASSIGN(n_used, c.integer_or("num_experts_per_tok", 0));
  SLM_ASSIGN(moe_ff, c.integer_or("moe_intermediate_size", n_ff));
  SLM_ASSIGN(first_dense, c.integer_or("first_k_dense_replace", n_expert > 0 ? 0 : n_layer));
  SLM_ASSIGN(moe_freq, c.integer_or("moe_layer_freq", 1));
  SLM_ASSIGN(scale, c.number_or("routed_scaling_factor", 1.0));
  SLM_ASSIGN(n_group, c.integer_or("n_group", 0));
  SLM_ASSIGN(topk_group, c.integer_or("topk_group", 0));
  if (moe_freq != 1) return errorf("config.json: moe_layer_freq %lld is not supported (1 only)", static_cast<long long>(moe_freq));
  const std::string scoring = c.string_or("scoring_func", "softmax");
  if (scoring != "softmax" && scoring != "sigmoid") {
    return errorf("config.json: scoring_func '%s' is not supported (softmax, sigmoid)", scoring.c_str());
  }
  const int64_t n_head_kv = keep_kv_b ? n_head : 1;

  w.add_uint32(a + ".context_length", static_cast<uint32_t>(n_ctx));
  w.add_uint32(a + ".embedding_length", static_cast<uint32_t>(n_embd));
  w.add_uint32(a + ".block_count", static_cast<uint32_t>(n_layer));
  w.add_uint32(a + ".feed_forward_length", static_cast<uint32_t>(n_ff));
  w.add_uint32(a + ".attention.head_count", static_cast<uint32_t>(n_head));
  w.add_uint32(a + ".attention.head_count_kv", static_cast<uint32_t>(n_head_kv));
  w.add_float32(a + ".rope.freq_base", static_cast<float>(theta));
  w.add_float32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(eps));
  if (n_used > 0) w.add_uint32(a + ".expert_used_count", static_cast<uint32_t>(n_used));
  w.add_uint32(a + ".leading_dense_block_count", static_cast<uint32_t>(first_dense));
  w.add_uint32(a + ".vocab_size", static_cast<uint32_t>(n_vocab));
  // Written even when 0: llama.cpp reads 0 as "no Q LoRA" (attn_q) on models of any depth.
  w.add_uint32(a + ".attention.q_lora_rank", static_cast<uint32_t>(q_lora));
  w.add_uint32(a + ".attention.kv_lora_rank", static_cast<uint32_t>(kv_lora));
  if (keep_kv_b) {
    w.add_uint32(a + ".attention.key_length", static_cast<uint32_t>(nope + rope_dim));
    w.add_uint32(a + ".attention.value_length", static_cast<uint32_t>(v_dim));
  } else {
    // MLA as MQA over the compressed latent: K = [latent, rope part], V = latent.
    w.add_uint32(a + ".attention.key_length", static_cast<uint32_t>(kv_lora + rope_dim));
    w.add_uint32(a + ".attention.value_length", static_cast<uint32_t>(kv_lora));
    w.add_uint32(a + ".attention.key_length_mla", static_cast<uint32_t>(nope + rope_dim));
    w.add_uint32(a + ".attention.value_length_mla", static_cast<uint32_t>(v_dim));
  }
  w.add_uint32(a + ".expert_feed_forward_length", static_cast<uint32_t>(moe_ff));
  if (n_expert > 0) w.add_uint32(a + ".expert_count", static_cast<uint32_t>(n_expert));
  w.add_uint32(a + ".expert_shared_count", static_cast<uint32_t>(n_shared));
  w.add_float32(a + ".expert_weights_scale", static_cast<float>(scale));
  w.add_bool(a + ".expert_weights_norm", c.boolean_or("norm_topk_prob", false));
  w.add_uint32(a + ".expert_gating_func", scoring == "sigmoid" ? 2u : 1u);  // LLAMA_EXPERT_GATING_FUNC_TYPE
  if (n_group > 0) w.add_uint32(a + ".expert_group_count", static_cast<uint32_t>(n_group));
  if (topk_group > 0) w.add_uint32(a + ".expert_group_used_count", static_cast<uint32_t>(topk_group));
  w.add_uint32(a + ".rope.dimension_count", static_cast<uint32_t>(rope_dim));
  SLM_TRY(write_rope_scaling(w, a, rope_scaling(c), n_ctx));

  SLM_TRY(b.direct("token_embd.weight", "model.embed_tokens.weight", {n_vocab, n_embd}));
  const int64_t qk = nope + rope_dim;
  for (int64_t i = 0; i < n_layer; ++i) {
    const std::string l = L(i), g = B(i);
    SLM_TRY(b.direct(g + "attn_norm.weight", l + "input_layernorm.weight", {n_embd}));
    if (q_lora > 0) {
      SLM_TRY(b.direct(g + "attn_q_a.weight", l + "self_attn.q_a_proj.weight", {q_lora, n_embd}));
      SLM_TRY(b.direct(g + "attn_q_a_norm.weight", l + "self_attn.q_a_layernorm.weight", {q_lora}));
      SLM_TRY(b.direct(g + "attn_q_b.weight", l + "self_attn.q_b_proj.weight", {n_head * qk, q_lora}));
    } else {
      SLM_TRY(b.direct(g + "attn_q.weight", l + "self_attn.q_proj.weight", {n_head * qk, n_embd}));
    }
    SLM_TRY(b.direct(g + "attn_kv_a_mqa.weight", l + "self_attn.kv_a_proj_with_mqa.weight", {kv_lora + rope_dim, n_embd}));
    SLM_TRY(b.direct(g + "attn_kv_a_norm.weight", l + "self_attn.kv_a_layernorm.weight", {kv_lora}));
    const std::string kvb = l + "self_attn.kv_b_proj.weight";
    if (keep_kv_b) {
      SLM_TRY(b.direct(g + "attn_kv_b.weight", kvb, {n_head * (nope + v_dim), kv_lora}));
    } else {
      // kv_b_proj rows per head h: [nope rows of K | v_dim rows of V], each kv_lora long.
      SLM_ASSIGN(t, b.get(kvb, {n_head * (nope + v_dim), kv_lora}));
      const int64_t per = nope + v_dim;
      // attn_k_b: per head the K part transposed, ne = [nope, kv_lora, n_head]; row (h, c) holds
      // K[h][0..nope)[c].
      OutTensor k;
      k.name = g + "attn_k_b.weight";
      k.ne = {nope, kv_lora, n_head};
      k.type = b.type_for(k.name, 3);
      k.rows = kv_lora * n_head;
      k.row = [t, kv_lora, nope, per](int64_t r, float* out) -> Status {
        const int64_t h = r / kv_lora, col = r % kv_lora;
        for (int64_t j = 0; j < nope; ++j) {
          SLM_TRY(safetensors::read_f32(*t, static_cast<uint64_t>((h * per + j) * kv_lora + col), 1, out + j));
        }
        return Status::success();
      };
      b.add(std::move(k));
      // attn_v_b: per head the V part as is, ne = [kv_lora, v_dim, n_head].
      OutTensor v;
      v.name = g + "attn_v_b.weight";
      v.ne = {kv_lora, v_dim, n_head};
      v.type = b.type_for(v.name, 3);
      v.rows = v_dim * n_head;
      v.row = [t, kv_lora, nope, v_dim, per](int64_t r, float* out) {
        const int64_t h = r / v_dim, j = r % v_dim;
        return safetensors::read_f32(*t, static_cast<uint64_t>((h * per + nope + j) * kv_lora),
                                     static_cast<uint64_t>(kv_lora), out);
      };
      b.add(std::move(v));
    }
    SLM_TRY(b.direct(g + "attn_output.weight", l + "self_attn.o_proj.weight", {n_embd, n_head * v_dim}));
    SLM_TRY(b.direct(g + "ffn_norm.weight", l + "post_attention_layernorm.weight", {n_embd}));
    if (i < first_dense || n_expert == 0) {
      SLM_TRY(b.direct(g + "ffn_gate.weight", l + "mlp.gate_proj.weight", {n_ff, n_embd}));
      SLM_TRY(b.direct(g + "ffn_up.weight", l + "mlp.up_proj.weight", {n_ff, n_embd}));
      SLM_TRY(b.direct(g + "ffn_down.weight", l + "mlp.down_proj.weight", {n_embd, n_ff}));
      continue;
    }
    SLM_TRY(b.direct(g + "ffn_gate_inp.weight", l + "mlp.gate.weight", {n_expert, n_embd}));
    if (b.has(l + "mlp.gate.e_score_correction_bias")) {
      SLM_TRY(b.direct(g + "exp_probs_b.bias", l + "mlp.gate.e_score_correction_bias", {n_expert}));
    }
    for (const char* p : {"gate", "up", "down"}) {
      std::vector<std::string> names;
      for (int64_t e = 0; e < n_expert; ++e) names.push_back(l + "mlp.experts." + std::to_string(e) + "." + p + "_proj.weight");
      const bool down = std::strcmp(p, "down") == 0;
      SLM_TRY(b.stacked(g + "ffn_" + p + "_exps.weight", names,
                        down ? std::vector<int64_t>{n_embd, moe_ff} : std::vector<int64_t>{moe_ff, n_embd}));
    }
    if (n_shared > 0) {
      const int64_t sff = moe_ff * n_shared;
      SLM_TRY(b.direct(g + "ffn_gate_shexp.weight", l + "mlp.shared_experts.gate_proj.weight", {sff, n_embd}));
      SLM_TRY(b.direct(g + "ffn_up_shexp.weight", l + "mlp.shared_experts.up_proj.weight", {sff, n_embd}));
      SLM_TRY(b.direct(g + "ffn_down_shexp.weight", l + "mlp.shared_experts.down_proj.weight", {n_embd, sff}));
    }
  }
  SLM_TRY(b.direct("output_norm.weight", "model.norm.weight", {n_embd}));
  if (!c.boolean_or("tie_word_embeddings", false) && b.has("lm_head.weight")) {
    SLM_TRY(b.direct("output.weight", "lm_head.weight", {n_vocab, n_embd}));
  } else if (b.has("lm_head.weight")) {
    b.skip("lm_head.weight");
  }
  // Layers past num_hidden_layers are DeepSeek-V3's multi-token-prediction modules: not converted.
  const int64_t nl = n_layer;
  return b.check_all_used([nl](const std::string& n) {
    if (n.ends_with("rotary_emb.inv_freq")) return true;
    if (n.rfind("model.layers.", 0) != 0) return false;
    return std::atoll(n.c_str() + 13) >= nl;
  });
}

// ============================================================================================
// Tokenizer
// ============================================================================================

enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

bool looks_special(std::string_view t) {
  auto sw = [&](std::string_view p) { return t.substr(0, p.size()) == p; };
  auto ew = [&](std::string_view s) { return t.size() >= s.size() && t.substr(t.size() - s.size()) == s; };
  return t == "<pad>" || t == "<mask>" || (sw("<|") && ew("|>")) || (sw("<｜") && ew("｜>")) ||
         (sw("<unused") && ew(">"));
}

// The content of a tokenizer_config special-token entry: a string or {"content": ...}.
std::optional<std::string> token_content(const json::Value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_object()) {
    const json::Value* c = v->find("content");
    if (c != nullptr && c->is_string()) return std::string(c->as_string());
  }
  return std::nullopt;
}

std::vector<std::string> split_regexes(const json::Value* pre) {
  std::vector<std::string> out;
  if (pre == nullptr || !pre->is_object()) return out;
  const json::Value* type = pre->find("type");
  if (type == nullptr || !type->is_string()) return out;
  if (type->as_string() == "Sequence") {
    const json::Value* list = pre->find("pretokenizers");
    if (list != nullptr) {
      for (const json::Value& p : list->items()) {
        for (std::string& s : split_regexes(&p)) out.push_back(std::move(s));
      }
    }
  } else if (type->as_string() == "Split") {
    const json::Value* pat = pre->find("pattern");
    const json::Value* re = pat ? pat->find("Regex") : nullptr;
    if (re != nullptr && re->is_string()) out.emplace_back(re->as_string());
  }
  return out;
}

bool has_bytelevel_regex(const json::Value* pre) {
  if (pre == nullptr || !pre->is_object()) return false;
  const json::Value* type = pre->find("type");
  if (type != nullptr && type->as_string() == "ByteLevel") {
    const json::Value* ur = pre->find("use_regex");
    return ur == nullptr || ur->as_bool();
  }
  const json::Value* list = pre->find("pretokenizers");
  if (list != nullptr) {
    for (const json::Value& p : list->items()) {
      if (has_bytelevel_regex(&p)) return true;
    }
  }
  return false;
}

// A byte-fallback BPE tokenizer.json is SentencePiece-style when spaces become "▁": either the
// normalizer pair [Prepend("▁"),] Replace(" ", "▁") or a Metaspace pre-tokenizer. The result:
// whether a "▁" is prepended to the text (GGUF tokenizer.ggml.add_space_prefix).
Expected<bool> spm_space_prefix(const json::Value& doc) {
  auto flatten = [](const json::Value* v, const char* list) {
    std::vector<const json::Value*> out;
    if (v == nullptr || !v->is_object()) return out;
    const json::Value* t = v->find("type");
    const json::Value* items = v->find(list);
    if (t != nullptr && t->is_string() && t->as_string() == "Sequence" && items != nullptr && items->is_array()) {
      for (const json::Value& x : items->items()) out.push_back(&x);
    } else {
      out.push_back(v);
    }
    return out;
  };
  auto type_of = [](const json::Value* v) -> std::string_view {
    const json::Value* t = v->find("type");
    return t != nullptr && t->is_string() ? t->as_string() : std::string_view();
  };
  bool prepend = false, replace = false, metaspace = false, meta_prefix = false;
  for (const json::Value* n : flatten(doc.find("normalizer"), "normalizers")) {
    const std::string_view t = type_of(n);
    const json::Value* pp = n->find("prepend");
    const json::Value* content = n->find("content");
    const json::Value* pat = n->find("pattern");
    const json::Value* str = pat != nullptr ? pat->find("String") : nullptr;
    if (t == "Prepend" && pp != nullptr && pp->is_string() && pp->as_string() == "\u2581") {
      prepend = true;
    } else if (t == "Replace" && content != nullptr && content->is_string() && content->as_string() == "\u2581" &&
               str != nullptr && str->is_string() && str->as_string() == " ") {
      replace = true;
    }
  }
  for (const json::Value* p : flatten(doc.find("pre_tokenizer"), "pretokenizers")) {
    if (type_of(p) != "Metaspace") continue;
    metaspace = true;
    const json::Value* scheme = p->find("prepend_scheme");
    const json::Value* add = p->find("add_prefix_space");
    if (scheme != nullptr && scheme->is_string()) {
      meta_prefix = scheme->as_string() != "never";
    } else {
      meta_prefix = add == nullptr || !add->is_bool() || add->as_bool();
    }
  }
  if (replace) return prepend;
  if (metaspace) return meta_prefix;
  return errorf("a byte_fallback BPE tokenizer without the SentencePiece space handling (normalizer Replace(\" \", "
                "\"\u2581\") or a Metaspace pre-tokenizer) is not supported");
}

struct Vocab {
  std::string model = "gpt2";
  std::string pre;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;  // llama (SentencePiece-style) only
  std::optional<bool> add_space_prefix;  // llama only: whether "▁" is prepended to the text
  std::string unk;                       // model.unk_token, the fallback for the unknown id
  std::vector<std::string> merges;
  std::map<std::string, int64_t> ids;
};

Expected<Vocab> load_vocab(const fs::path& dir, int64_t n_vocab_config, const ConvertOptions& opt, int64_t* n_vocab) {
  const fs::path tp = dir / "tokenizer.json";
  auto doc = json::parse_file(tp.string());
  if (!doc) return doc.error();
  const char* path = tp.c_str();
  auto model = json::get(*doc, "model", json::Kind::Object);
  if (!model) return errorf("%s: %s", path, model.error().message.c_str());
  const std::string mtype = std::string((*model)->find("type") ? (*model)->find("type")->as_string() : "");
  if (mtype != "BPE") return errorf("%s: tokenizer model '%s' is not supported (BPE only)", path, mtype.c_str());
  auto vocab = json::get(**model, "vocab", json::Kind::Object);
  if (!vocab) return errorf("%s: %s", path, vocab.error().message.c_str());
  Vocab v;
  const json::Value* bf = (*model)->find("byte_fallback");
  const bool byte_fallback = bf != nullptr && bf->as_bool();
  v.model = byte_fallback ? "llama" : "gpt2";

  std::map<int64_t, std::string> by_id;
  auto put = [&](const std::string& tok, int64_t id) -> Status {
    if (id < 0 || id > (int64_t{1} << 24)) return errorf("%s: token '%s' has id %lld out of range", path, tok.c_str(), static_cast<long long>(id));
    auto [it, fresh] = by_id.emplace(id, tok);
    if (!fresh && it->second != tok) {
      return errorf("%s: id %lld is both '%s' and '%s'", path, static_cast<long long>(id), it->second.c_str(), tok.c_str());
    }
    v.ids[tok] = id;
    return Status::success();
  };
  for (const json::Member& m : (*vocab)->members()) {
    if (!m.value.is_integer()) return errorf("%s: vocab entry '%s' is not an integer id", path, m.key.c_str());
    SLM_TRY(put(m.key, m.value.as_int()));
  }
  std::map<int64_t, bool> added;  // id -> special
  if (const json::Value* at = doc->find("added_tokens"); at != nullptr && at->is_array()) {
    for (const json::Value& t : at->items()) {
      auto id = json::get_int(t, "id");
      auto content = json::get_string(t, "content");
      if (!id || !content) return errorf("%s: added_tokens entry without id/content", path);
      SLM_TRY(put(std::string(*content), *id));
      const json::Value* sp = t.find("special");
      added[*id] = sp != nullptr && sp->as_bool();
    }
  }
  if (by_id.empty()) return errorf("%s: empty vocabulary", path);
  const int64_t max_id = by_id.rbegin()->first;
  int64_t n = std::max(n_vocab_config, max_id + 1);
  if (n_vocab_config > 0 && max_id >= n_vocab_config) {
    return errorf("%s: token id %lld is beyond config.json's vocab_size %lld", path, static_cast<long long>(max_id),
                  static_cast<long long>(n_vocab_config));
  }
  *n_vocab = n;
  std::vector<std::string> merges;
  if (const json::Value* mg = (*model)->find("merges"); mg != nullptr && mg->is_array()) {
    for (const json::Value& m : mg->items()) {
      if (m.is_string()) {
        merges.emplace_back(m.as_string());
      } else if (m.is_array() && m.size() == 2 && m.items()[0].is_string() && m.items()[1].is_string()) {
        merges.push_back(std::string(m.items()[0].as_string()) + " " + std::string(m.items()[1].as_string()));
      } else {
        return errorf("%s: a merge is neither \"a b\" nor [\"a\", \"b\"]", path);
      }
    }
  }
  if (const json::Value* u = (*model)->find("unk_token"); u != nullptr && u->is_string()) v.unk = std::string(u->as_string());
  // SentencePiece-style scores. llama.cpp's SPM tokenizer merges the adjacent pair whose
  // concatenation has the highest score; HF's BPE applies the merge of lowest rank. Scoring each
  // token by minus the rank of the first merge that makes it gives the same order (llama.cpp's
  // own converter writes -1000 for every token of a tokenizer.json, which loses it). Tokens no
  // merge makes keep minus their id, below every merge result.
  std::map<int64_t, float> merge_score;
  if (byte_fallback) {
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) return errorf("%s: merge %zu \"%s\" is not two tokens", path, r, m.c_str());
      auto it = v.ids.find(m.substr(0, sp) + m.substr(sp + 1));
      if (it == v.ids.end()) continue;
      merge_score.emplace(it->second, -static_cast<float>(r));
    }
  }
  const float below_merges = -static_cast<float>(merges.size());
  for (int64_t i = 0; i < n; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      v.tokens.push_back("[PAD" + std::to_string(i) + "]");
      v.types.push_back(kUnused);
      v.scores.push_back(-1000.0f);
      continue;
    }
    const std::string& tok = it->second;
    v.tokens.push_back(tok);
    int32_t type = kNormal;
    float score = below_merges - static_cast<float>(i);
    if (auto ms = merge_score.find(i); ms != merge_score.end()) score = ms->second;
    if (auto a = added.find(i); a != added.end()) {
      type = a->second || looks_special(tok) ? kControl : kUserDefined;
      score = 0.0f;
    } else if (byte_fallback && tok.size() == 6 && tok.rfind("<0x", 0) == 0 && tok.back() == '>') {
      type = kByte;
      score = 0.0f;
    }
    if (byte_fallback && tok == (v.unk.empty() ? std::string("<unk>") : v.unk)) type = kUnknown;
    v.types.push_back(type);
    v.scores.push_back(score);
  }
  if (!byte_fallback) {
    v.merges = std::move(merges);
    if (!opt.pre.empty()) {
      v.pre = opt.pre;
    } else {
      auto pre = recognise_pre(*doc);
      if (!pre) return errorf("%s: %s", path, pre.error().message.c_str());
      v.pre = *pre;
    }
  } else {
    auto prefix = spm_space_prefix(*doc);
    if (!prefix) return errorf("%s: %s", path, prefix.error().message.c_str());
    v.add_space_prefix = *prefix;
    if (!opt.pre.empty()) v.pre = opt.pre;
  }
  return v;
}

Status write_vocab(gguf::Writer& w, const fs::path& dir, const Config& cfg, const Vocab& v) {
  w.add_string("tokenizer.ggml.model", v.model);
  if (!v.pre.empty()) w.add_string("tokenizer.ggml.pre", v.pre);
  w.add_string_array("tokenizer.ggml.tokens", std::span<const std::string>(v.tokens));
  if (v.model == "llama") w.add_float32_array("tokenizer.ggml.scores", v.scores);
  if (v.add_space_prefix) w.add_bool("tokenizer.ggml.add_space_prefix", *v.add_space_prefix);
  w.add_int32_array("tokenizer.ggml.token_type", v.types);
  if (v.model == "gpt2") w.add_string_array("tokenizer.ggml.merges", std::span<const std::string>(v.merges));

  // Special tokens: tokenizer_config.json names them; config.json and generation_config.json
  // give ids for those it does not.
  json::Value tc = json::Value::object();
  const fs::path tcp = dir / "tokenizer_config.json";
  std::error_code ec;
  if (fs::exists(tcp, ec)) {
    auto d = json::parse_file(tcp.string());
    if (!d) return d.error();
    if (!d->is_object()) return errorf("%s: not a JSON object", tcp.c_str());
    tc = std::move(*d);
  }
  json::Value gc = json::Value::object();
  const fs::path gcp = dir / "generation_config.json";
  if (fs::exists(gcp, ec)) {
    auto d = json::parse_file(gcp.string());
    if (!d) return d.error();
    if (d->is_object()) gc = std::move(*d);
  }
  struct Special {
    const char* name;
    const char* key;
  };
  for (const Special s : {Special{"bos", "tokenizer.ggml.bos_token_id"}, Special{"eos", "tokenizer.ggml.eos_token_id"},
                          Special{"unk", "tokenizer.ggml.unknown_token_id"},
                          Special{"pad", "tokenizer.ggml.padding_token_id"}}) {
    std::optional<int64_t> id;
    if (auto content = token_content(tc.find(std::string(s.name) + "_token"))) {
      auto it = v.ids.find(*content);
      if (it == v.ids.end()) {
        return errorf("%s: %s_token '%s' is not in the vocabulary", tcp.c_str(), s.name, content->c_str());
      }
      id = it->second;
    }
    if (!id && std::string_view(s.name) == "unk" && !v.unk.empty()) {
      if (auto it = v.ids.find(v.unk); it != v.ids.end()) id = it->second;
    }
    for (const json::Value* src : {cfg.root, static_cast<const json::Value*>(&gc)}) {
      if (id) break;
      const json::Value* x = src->find(std::string(s.name) + "_token_id");
      if (x != nullptr && x->is_integer()) id = x->as_int();
      if (x != nullptr && x->is_array() && x->size() > 0 && x->items()[0].is_integer()) id = x->items()[0].as_int();
    }
    if (id) {
      if (*id < 0 || *id >= static_cast<int64_t>(v.tokens.size())) {
        return errorf("%s token id %lld is outside the vocabulary", s.name, static_cast<long long>(*id));
      }
      w.add_uint32(s.key, static_cast<uint32_t>(*id));
    }
  }
  for (const char* k : {"add_bos_token", "add_eos_token"}) {
    const json::Value* x = tc.find(k);
    if (x != nullptr && x->is_bool()) w.add_bool(std::string("tokenizer.ggml.") + k, x->as_bool());
  }
  // Chat template: tokenizer_config.json's (a string, or a list of named templates: "default"),
  // else chat_template.jinja.
  std::string tmpl;
  if (const json::Value* ct = tc.find("chat_template"); ct != nullptr) {
    if (ct->is_string()) {
      tmpl = std::string(ct->as_string());
    } else if (ct->is_array()) {
      for (const json::Value& e : ct->items()) {
        const json::Value* name = e.find("name");
        const json::Value* t = e.find("template");
        if (name && t && name->as_string() == "default") tmpl = std::string(t->as_string());
      }
    }
  }
  if (tmpl.empty() && fs::exists(dir / "chat_template.jinja", ec)) {
    auto m = MappedFile::open((dir / "chat_template.jinja").string());
    if (!m) return m.error();
    tmpl.assign(reinterpret_cast<const char*>(m->data()), m->size());
  }
  if (!tmpl.empty()) w.add_string("tokenizer.chat_template", tmpl);
  return Status::success();
}

}  // namespace

Expected<std::string> recognise_pre(const json::Value& tokenizer) {
  const json::Value* pre = tokenizer.find("pre_tokenizer");
  const std::vector<std::string> re = split_regexes(pre);
  bool deepseek_tokens = false;
  if (const json::Value* at = tokenizer.find("added_tokens"); at != nullptr) {
    for (const json::Value& t : at->items()) {
      const json::Value* c = t.find("content");
      if (c != nullptr && c->as_string() == "<｜begin▁of▁sentence｜>") deepseek_tokens = true;
    }
  }
  if (re.size() == 1 && re[0] == kRegexLlama3) return std::string("llama-bpe");
  if (re.size() == 1 && re[0] == kRegexQwen2) return std::string(deepseek_tokens ? "deepseek-r1-qwen" : "qwen2");
  // DeepSeek-V3: digits in groups of 3, a CJK run, then a punctuation-aware word regex.
  if (re.size() >= 3 && re[0] == R"(\p{N}{1,3})" && re[1].find("一-龥") != std::string::npos) {
    return std::string("deepseek-v3");
  }
  // DeepSeek LLM / V2: newlines split first, then a long list of letter ranges.
  if (re.size() >= 3 && re[0] == R"([\r\n])") return std::string("deepseek-llm");
  if (re.empty() && has_bytelevel_regex(pre)) return std::string("gpt-2");
  std::string seen;
  for (const std::string& r : re) seen += (seen.empty() ? "" : " | ") + r.substr(0, 60);
  return errorf("pre-tokenizer not recognised (split regexes: %s): pass --pre NAME with llama.cpp's name for it",
                seen.empty() ? "none" : seen.c_str());
}

// ============================================================================================
// The conversion
// ============================================================================================

Status convert_hf(const std::string& dir, const std::string& out_path, const ConvertOptions& options,
                  ConvertReport* report) {
  const fs::path root(dir);
  const fs::path cp = root / "config.json";
  auto cfg_doc = json::parse_file(cp.string());
  if (!cfg_doc) return cfg_doc.error();
  if (!cfg_doc->is_object()) return errorf("%s: not a JSON object", cp.c_str());
  Config cfg{&*cfg_doc, cp.string()};
  auto archs = json::get(*cfg_doc, "architectures", json::Kind::Array);
  if (!archs || (*archs)->size() == 0 || !(*archs)->items()[0].is_string()) {
    return errorf("%s: 'architectures' must be a non-empty array of strings", cp.c_str());
  }
  const std::string hf_arch((*archs)->items()[0].as_string());
  std::string arch;
  if (hf_arch == "LlamaForCausalLM") arch = "llama";
  else if (hf_arch == "Qwen2ForCausalLM") arch = "qwen2";
  else if (hf_arch == "DeepseekV2ForCausalLM" || hf_arch == "DeepseekV3ForCausalLM") arch = "deepseek2";
  else {
    return errorf("%s: architecture '%s' is not supported (LlamaForCausalLM, Qwen2ForCausalLM, "
                  "DeepseekV2ForCausalLM, DeepseekV3ForCausalLM)", cp.c_str(), hf_arch.c_str());
  }

  auto ckpt = safetensors::Checkpoint::open_dir(dir);
  if (!ckpt) return ckpt.error();

  DType outtype;
  if (options.outtype == "auto") {
    const st_Tensor* first = ckpt->find("model.embed_tokens.weight");
    outtype = first != nullptr && first->dtype == safetensors::DType::BF16 ? DType::BF16 : DType::F16;
  } else if (options.outtype == "F32" || options.outtype == "f32") {
    outtype = DType::F32;
  } else if (options.outtype == "F16" || options.outtype == "f16") {
    outtype = DType::F16;
  } else if (options.outtype == "BF16" || options.outtype == "bf16") {
    outtype = DType::BF16;
  } else {
    return errorf("--outtype '%s': expected auto, F32, F16 or BF16", options.outtype.c_str());
  }
  const uint32_t ftype = outtype == DType::F32 ? 0 : outtype == DType::F16 ? 1 : 32;

  SLM_ASSIGN(n_vocab_cfg, cfg.integer_or("vocab_size", 0));
  int64_t n_vocab = 0;
  auto vocab = load_vocab(root, n_vocab_cfg, options, &n_vocab);
  if (!vocab) return vocab.error();

  gguf::Writer w;
  w.add_string("general.architecture", arch);
  std::string name = options.name;
  if (name.empty()) {
    name = fs::absolute(root).lexically_normal().filename().string();
    if (name.empty()) name = fs::absolute(root).lexically_normal().parent_path().filename().string();
  }
  w.add_string("general.name", name);
  w.add_uint32("general.file_type", ftype);
  w.add_uint32("general.quantization_version", 2);

  Builder b(*ckpt, outtype);
  if (arch == "deepseek2") {
    SLM_TRY(convert_deepseek2(cfg, b, w, n_vocab, options.keep_kv_b));
  } else {
    SLM_TRY(convert_dense(cfg, arch, b, w, n_vocab));
  }
  SLM_TRY(write_vocab(w, root, cfg, *vocab));

  std::shared_ptr<ThreadPool> pool;
  if (options.n_threads > 1) {
    auto p = ThreadPool::create(options.n_threads);
    if (!p) return p.error();
    pool = std::move(*p);
  }
  ConvertReport rep;
  rep.arch = arch;
  rep.outtype = outtype;
  rep.pre = vocab->pre;
  rep.n_vocab = static_cast<uint64_t>(n_vocab);
  auto tensors = std::make_shared<std::vector<OutTensor>>(std::move(b.tensors()));
  const size_t total = tensors->size();
  auto done = std::make_shared<size_t>(0);
  const auto* progress = &options.progress;
  for (size_t k = 0; k < total; ++k) {
    const OutTensor& o = (*tensors)[k];
    uint64_t n_el = 1;
    for (int64_t d : o.ne) n_el *= static_cast<uint64_t>(d);
    rep.n_params += n_el;
    SLM_TRY(w.add_tensor(o.name, o.type, o.ne, [tensors, k, pool, done, total, progress](std::span<uint8_t> out) -> Status {
      const OutTensor& t = (*tensors)[k];
      const int64_t n0 = t.ne[0];
      auto rb = row_bytes(t.type, n0);
      if (!rb) return rb.error();
      const size_t ob = *rb;
      const FromFloatFn from = traits(t.type).from_float;
      const int n_parts = pool ? pool->size() : 1;
      std::vector<Status> status(static_cast<size_t>(n_parts));
      auto work = [&](int part, int parts) {
        long begin = 0, end = 0;
        split_range(static_cast<long>(t.rows), part, parts, &begin, &end);
        std::vector<float> buf(static_cast<size_t>(n0));
        for (long r = begin; r < end; ++r) {
          Status st = t.row(r, buf.data());
          if (!st) {
            status[static_cast<size_t>(part)] = st;
            return;
          }
          from(buf.data(), out.data() + static_cast<size_t>(r) * ob, n0);
        }
      };
      if (pool && t.rows > 1) {
        pool->run(work);
      } else {
        work(0, 1);
      }
      for (const Status& st : status) {
        if (!st) return errorf("%s: %s", t.name.c_str(), st.message().c_str());
      }
      ++*done;
      if (*progress) (*progress)(*done, total);
      return Status::success();
    }));
  }
  rep.n_tensors = total;
  SLM_TRY(w.write_file(out_path));
  if (report) *report = rep;
  return Status::success();
}

}  // namespace slm::convert
