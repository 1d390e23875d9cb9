// Shared by test_convert*.cpp, test_quantize.cpp and test_safetensors.cpp: a safetensors writer,
// a tiny byte-level BPE tokenizer, tiny random Hugging Face checkpoints (Llama / Qwen2 /
// DeepSeek-V3 layouts), a double-precision forward pass in Hugging Face's own conventions, and a
// runner for llama.cpp (node-llama-cpp) that loads GGUF files and returns next-token probabilities.
#pragma once

#include <sys/wait.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "slm/dtype.hpp"
#include "slm/json.hpp"

namespace testconv {

namespace fs = std::filesystem;

// ============================================================================================
// Random numbers and files
// ============================================================================================

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  float normal() {
    const double u1 = uniform() + 1e-12, u2 = uniform();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  std::vector<float> normals(size_t n, float scale) {
    std::vector<float> v(n);
    for (float& x : v) x = normal() * scale;
    return v;
  }
};

inline void write_file(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

inline fs::path temp_dir(const std::string& name) {
  const char* b = std::getenv("SLM_BUILD_DIR");
  fs::path base = b ? fs::path(b) / "test-tmp" : fs::temp_directory_path() / "slm-test-tmp";
  fs::path d = base / (name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// ============================================================================================
// safetensors writer
// ============================================================================================

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", or anything for bad-file tests
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Stores floats as F32 / F16 / BF16 (the values a checkpoint of that dtype holds).
inline StTensor st_tensor(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                          const std::vector<float>& v) {
  StTensor t{name, dtype, std::move(shape), {}};
  if (dtype == "F32") {
    t.bytes.resize(v.size() * 4);
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  } else {
    t.bytes.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = dtype == "F16" ? slm::f32_to_f16(v[i]) : slm::f32_to_bf16(v[i]);
      std::memcpy(t.bytes.data() + 2 * i, &h, 2);
    }
  }
  return t;
}

// The float values a tensor written as `dtype` reads back as.
inline std::vector<float> rounded(const std::vector<float>& v, const std::string& dtype) {
  std::vector<float> out(v);
  for (float& x : out) {
    if (dtype == "F16") x = slm::f16_to_f32(slm::f32_to_f16(x));
    if (dtype == "BF16") x = slm::bf16_to_f32(slm::f32_to_bf16(x));
  }
  return out;
}

inline std::string st_header(const std::vector<StTensor>& ts, const std::string& extra = "") {
  std::string h = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t off = 0;
  for (const StTensor& t : ts) {
    h += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
    h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t.bytes.size()) + "]}";
    off += t.bytes.size();
  }
  return h + extra + "}";
}

inline std::vector<uint8_t> st_bytes_from_header(const std::string& header, const std::vector<StTensor>& ts) {
  std::string h = header;
  while (h.size() % 8 != 0) h += ' ';
  std::vector<uint8_t> out(8);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), h.begin(), h.end());
  for (const StTensor& t : ts) out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  return out;
}

inline void write_safetensors(const fs::path& p, const std::vector<StTensor>& ts) {
  const std::vector<uint8_t> b = st_bytes_from_header(st_header(ts), ts);
  write_file(p, std::string(b.begin(), b.end()));
}

// ============================================================================================
// A tiny byte-level BPE tokenizer (GPT-2 byte map, Qwen2 pre-tokenizer, DeepSeek-R1 specials)
// ============================================================================================

inline std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's printable stand-in for each byte.
inline std::vector<std::string> byte_chars() {
  std::vector<std::string> out(256);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    out[static_cast<size_t>(b)] = utf8(keep ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + extra++));
  }
  return out;
}

struct TinyTokenizer {
  std::vector<std::string> tokens;                 // by id (vocab + added)
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::pair<std::string, bool>> added; // content, special (ids follow the vocab)
  int64_t n_base = 0;                               // ids below are vocab, the rest added
};

inline const std::string kBos = "<｜begin▁of▁sentence｜>";
inline const std::string kEos = "<｜end▁of▁sentence｜>";

inline TinyTokenizer tiny_tokenizer() {
  TinyTokenizer t;
  const std::vector<std::string> bc = byte_chars();
  t.tokens = bc;
  const std::string G = bc[' '];  // "Ġ"
  auto merge = [&](const std::string& a, const std::string& b) {
    t.merges.push_back({a, b});
    t.tokens.push_back(a + b);
  };
  merge("h", "e");
  merge(G, "t");
  merge(G + "t", "he");
  merge("i", "n");
  merge(G, "a");
  merge("e", "r");
  merge(G, "s");
  merge("o", "n");
  t.n_base = static_cast<int64_t>(t.tokens.size());
  t.added = {{kBos, true}, {kEos, true}, {"<｜User｜>", true}, {"<｜Assistant｜>", true}, {"<think>", false},
             {"</think>", false}};
  for (const auto& a : t.added) t.tokens.push_back(a.first);
  return t;
}

inline std::string tokenizer_json(const TinyTokenizer& t, const std::string& regex) {
  using slm::json::quote;
  std::string s = "{\"version\":\"1.0\",\"added_tokens\":[";
  for (size_t i = 0; i < t.added.size(); ++i) {
    s += (i ? "," : "") + std::string("{\"id\":") + std::to_string(t.n_base + static_cast<int64_t>(i)) +
         ",\"content\":" + quote(t.added[i].first) + ",\"special\":" + (t.added[i].second ? "true" : "false") + "}";
  }
  s += "],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
       "\"pattern\":{\"Regex\":" + quote(regex) + "},\"behavior\":\"Isolated\",\"invert\":false},"
       "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]},"
       "\"model\":{\"type\":\"BPE\",\"byte_fallback\":false,\"vocab\":{";
  for (int64_t i = 0; i < t.n_base; ++i) s += (i ? "," : "") + quote(t.tokens[static_cast<size_t>(i)]) + ":" + std::to_string(i);
  s += "},\"merges\":[";
  for (size_t i = 0; i < t.merges.size(); ++i) s += (i ? "," : "") + quote(t.merges[i].first + " " + t.merges[i].second);
  return s + "]}}";
}

inline std::string tokenizer_config_json() {
  using slm::json::quote;
  return "{\"add_bos_token\":true,\"add_eos_token\":false,\"bos_token\":{\"__type\":\"AddedToken\",\"content\":" +
         quote(kBos) + "},\"eos_token\":" + quote(kEos) + ",\"pad_token\":" + quote(kEos) +
         ",\"chat_template\":\"{% for m in messages %}{{ m['content'] }}{% endfor %}\"}";
}

// ============================================================================================
// Tiny HF checkpoints
// ============================================================================================

struct DenseSpec {
  std::string arch = "LlamaForCausalLM";  // or Qwen2ForCausalLM
  int64_t n_vocab = 0;                     // 0: tokenizer size + 4 padding ids
  int64_t n_embd = 256, n_layer = 2, n_ff = 512, n_head = 4, n_head_kv = 2;
  double theta = 10000.0, eps = 1e-5;
  std::string dtype = "F32";
  bool tied = false;
  uint64_t seed = 7;
  int shards = 1;
};

// The weights, by HF name (float values as the checkpoint stores them) and shapes.
struct Checkpoint {
  std::map<std::string, std::vector<float>> w;
  std::map<std::string, std::vector<int64_t>> shape;
  DenseSpec spec;
};

inline Checkpoint write_dense_checkpoint(const fs::path& dir, DenseSpec s) {
  const TinyTokenizer tok = tiny_tokenizer();
  if (s.n_vocab == 0) s.n_vocab = static_cast<int64_t>(tok.tokens.size()) + 4;
  Checkpoint c;
  c.spec = s;
  Rng rng(s.seed);
  const int64_t hd = s.n_embd / s.n_head;
  const bool qwen = s.arch == "Qwen2ForCausalLM";
  std::vector<std::string> order;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    std::vector<float> v = rng.normals(count, scale);
    for (float& x : v) x += offset;
    c.w[n] = rounded(v, s.dtype);
    c.shape[n] = shape;
    order.push_back(n);
  };
  // Scales: large enough that the next-token distribution is far from uniform.
  const float ws = 1.0f / std::sqrt(static_cast<float>(s.n_embd));
  add("model.embed_tokens.weight", {s.n_vocab, s.n_embd}, 1.0f);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    add(l + "input_layernorm.weight", {s.n_embd}, 0.1f, 1.0f);
    add(l + "self_attn.q_proj.weight", {s.n_head * hd, s.n_embd}, 2 * ws);
    add(l + "self_attn.k_proj.weight", {s.n_head_kv * hd, s.n_embd}, 2 * ws);
    add(l + "self_attn.v_proj.weight", {s.n_head_kv * hd, s.n_embd}, ws);
    if (qwen) {
      add(l + "self_attn.q_proj.bias", {s.n_head * hd}, 0.3f);
      add(l + "self_attn.k_proj.bias", {s.n_head_kv * hd}, 0.3f);
      add(l + "self_attn.v_proj.bias", {s.n_head_kv * hd}, 0.3f);
    }
    add(l + "self_attn.o_proj.weight", {s.n_embd, s.n_head * hd}, ws);
    add(l + "post_attention_layernorm.weight", {s.n_embd}, 0.1f, 1.0f);
    add(l + "mlp.gate_proj.weight", {s.n_ff, s.n_embd}, ws);
    add(l + "mlp.up_proj.weight", {s.n_ff, s.n_embd}, ws);
    add(l + "mlp.down_proj.weight", {s.n_embd, s.n_ff}, ws);
  }
  add("model.norm.weight", {s.n_embd}, 0.1f, 1.0f);
  if (!s.tied) add("lm_head.weight", {s.n_vocab, s.n_embd}, 4 * ws);

  fs::create_directories(dir);
  // Shards: tensors dealt round-robin, with an index when more than one.
  std::vector<std::vector<StTensor>> shards(static_cast<size_t>(s.shards));
  std::string index = "{\"metadata\":{},\"weight_map\":{";
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t sh = k % shards.size();
    shards[sh].push_back(st_tensor(order[k], s.dtype, c.shape[order[k]], c.w[order[k]]));
    const std::string fname = s.shards == 1 ? "model.safetensors"
                                            : "model-0000" + std::to_string(sh + 1) + "-of-0000" + std::to_string(s.shards) + ".safetensors";
    index += (k ? "," : "") + slm::json::quote(order[k]) + ":" + slm::json::quote(fname);
  }
  for (size_t sh = 0; sh < shards.size(); ++sh) {
    const std::string fname = s.shards == 1 ? "model.safetensors"
                                            : "model-0000" + std::to_string(sh + 1) + "-of-0000" + std::to_string(s.shards) + ".safetensors";
    write_safetensors(dir / fname, shards[sh]);
  }
  if (s.shards > 1) write_file(dir / "model.safetensors.index.json", index + "}}");
  char cfg[1024];
  std::snprintf(cfg, sizeof cfg,
                "{\"architectures\":[\"%s\"],\"model_type\":\"%s\",\"vocab_size\":%lld,\"hidden_size\":%lld,"
                "\"num_hidden_layers\":%lld,\"intermediate_size\":%lld,\"num_attention_heads\":%lld,"
                "\"num_key_value_heads\":%lld,\"rope_theta\":%.1f,\"rms_norm_eps\":%g,"
                "\"max_position_embeddings\":2048,\"tie_word_embeddings\":%s,\"bos_token_id\":%lld,"
                "\"eos_token_id\":%lld,\"torch_dtype\":\"float32\"}",
                s.arch.c_str(), qwen ? "qwen2" : "llama", static_cast<long long>(s.n_vocab),
                static_cast<long long>(s.n_embd), static_cast<long long>(s.n_layer), static_cast<long long>(s.n_ff),
                static_cast<long long>(s.n_head), static_cast<long long>(s.n_head_kv), s.theta, s.eps,
                s.tied ? "true" : "false", static_cast<long long>(tok.n_base), static_cast<long long>(tok.n_base + 1));
  write_file(dir / "config.json", cfg);
  write_file(dir / "tokenizer.json", tokenizer_json(tok, qwen ? std::string(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)")
      : std::string(R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)")));
  write_file(dir / "tokenizer_config.json", tokenizer_config_json());
  write_file(dir / "generation_config.json", "{\"bos_token_id\":1,\"eos_token_id\":[2,3]}");
  return c;
}

// A tiny DeepSeek-V3 checkpoint (MLA, sigmoid MoE with a selection bias, a dense first layer,
// optionally an MTP layer past num_hidden_layers).

struct DsSpec {
  int64_t n_embd = 256, n_layer = 2, n_ff = 512, n_head = 4, q_lora = 0, kv_lora = 64, nope = 32, rope = 16,
          v_dim = 32, n_expert = 4, n_shared = 1, moe_ff = 256, n_vocab = 0;
};

inline Checkpoint write_deepseek(const fs::path& dir, DsSpec d, bool with_mtp) {
  const TinyTokenizer tok = tiny_tokenizer();
  d.n_vocab = static_cast<int64_t>(tok.tokens.size());
  Checkpoint c;
  Rng rng(11);
  std::vector<StTensor> ts;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    size_t count = 1;
    for (int64_t x : shape) count *= static_cast<size_t>(x);
    std::vector<float> v = rng.normals(count, scale);
    for (float& x : v) x += offset;
    c.w[n] = v;
    c.shape[n] = shape;
    ts.push_back(st_tensor(n, "F32", shape, v));
  };
  const float ws = 1.0f / 16.0f;
  add("model.embed_tokens.weight", {d.n_vocab, d.n_embd}, 1.0f);
  const int64_t layers = d.n_layer + (with_mtp ? 1 : 0);
  for (int64_t i = 0; i < layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    add(l + "input_layernorm.weight", {d.n_embd}, 0.1f, 1.0f);
    if (d.q_lora > 0) {
      add(l + "self_attn.q_a_proj.weight", {d.q_lora, d.n_embd}, ws);
      add(l + "self_attn.q_a_layernorm.weight", {d.q_lora}, 0.1f, 1.0f);
      add(l + "self_attn.q_b_proj.weight", {d.n_head * (d.nope + d.rope), d.q_lora}, ws);
    } else {
      add(l + "self_attn.q_proj.weight", {d.n_head * (d.nope + d.rope), d.n_embd}, ws);
    }
    add(l + "self_attn.kv_a_proj_with_mqa.weight", {d.kv_lora + d.rope, d.n_embd}, ws);
    add(l + "self_attn.kv_a_layernorm.weight", {d.kv_lora}, 0.1f, 1.0f);
    add(l + "self_attn.kv_b_proj.weight", {d.n_head * (d.nope + d.v_dim), d.kv_lora}, ws);
    add(l + "self_attn.o_proj.weight", {d.n_embd, d.n_head * d.v_dim}, ws);
    add(l + "post_attention_layernorm.weight", {d.n_embd}, 0.1f, 1.0f);
    if (i == 0) {
      add(l + "mlp.gate_proj.weight", {d.n_ff, d.n_embd}, ws);
      add(l + "mlp.up_proj.weight", {d.n_ff, d.n_embd}, ws);
      add(l + "mlp.down_proj.weight", {d.n_embd, d.n_ff}, ws);
      continue;
    }
    add(l + "mlp.gate.weight", {d.n_expert, d.n_embd}, ws);
    add(l + "mlp.gate.e_score_correction_bias", {d.n_expert}, 0.01f);
    for (int64_t e = 0; e < d.n_expert; ++e) {
      const std::string x = l + "mlp.experts." + std::to_string(e) + ".";
      add(x + "gate_proj.weight", {d.moe_ff, d.n_embd}, ws);
      add(x + "up_proj.weight", {d.moe_ff, d.n_embd}, ws);
      add(x + "down_proj.weight", {d.n_embd, d.moe_ff}, ws);
    }
    add(l + "mlp.shared_experts.gate_proj.weight", {d.moe_ff, d.n_embd}, ws);
    add(l + "mlp.shared_experts.up_proj.weight", {d.moe_ff, d.n_embd}, ws);
    add(l + "mlp.shared_experts.down_proj.weight", {d.n_embd, d.moe_ff}, ws);
  }
  add("model.norm.weight", {d.n_embd}, 0.1f, 1.0f);
  add("lm_head.weight", {d.n_vocab, d.n_embd}, ws);
  fs::create_directories(dir);
  write_safetensors(dir / "model.safetensors", ts);
  char cfg[2048];
  std::snprintf(cfg, sizeof cfg,
                "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"model_type\":\"deepseek_v3\",\"vocab_size\":%lld,"
                "\"hidden_size\":%lld,\"num_hidden_layers\":%lld,\"intermediate_size\":%lld,"
                "\"num_attention_heads\":%lld,\"num_key_value_heads\":%lld,\"q_lora_rank\":%s,\"kv_lora_rank\":%lld,"
                "\"qk_nope_head_dim\":%lld,\"qk_rope_head_dim\":%lld,\"v_head_dim\":%lld,\"n_routed_experts\":%lld,"
                "\"n_shared_experts\":%lld,\"num_experts_per_tok\":2,\"moe_intermediate_size\":%lld,"
                "\"first_k_dense_replace\":1,\"moe_layer_freq\":1,\"routed_scaling_factor\":2.5,\"n_group\":1,"
                "\"topk_group\":1,\"norm_topk_prob\":true,\"scoring_func\":\"sigmoid\",\"topk_method\":\"noaux_tc\","
                "\"rope_theta\":10000,\"rms_norm_eps\":1e-6,\"max_position_embeddings\":4096,"
                "\"num_nextn_predict_layers\":%d,\"tie_word_embeddings\":false,\"rope_scaling\":null}",
                static_cast<long long>(d.n_vocab), static_cast<long long>(d.n_embd), static_cast<long long>(d.n_layer),
                static_cast<long long>(d.n_ff), static_cast<long long>(d.n_head), static_cast<long long>(d.n_head),
                d.q_lora > 0 ? std::to_string(d.q_lora).c_str() : "null", static_cast<long long>(d.kv_lora), static_cast<long long>(d.nope), static_cast<long long>(d.rope),
                static_cast<long long>(d.v_dim), static_cast<long long>(d.n_expert), static_cast<long long>(d.n_shared),
                static_cast<long long>(d.moe_ff), with_mtp ? 1 : 0);
  write_file(dir / "config.json", cfg);
  write_file(dir / "tokenizer.json", tokenizer_json(tok, std::string(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)")));
  write_file(dir / "tokenizer_config.json", tokenizer_config_json());
  return c;
}


// ============================================================================================
// Hugging Face's forward pass, in double (LlamaForCausalLM / Qwen2ForCausalLM semantics:
// rotate_half RoPE on the un-permuted projections)
// ============================================================================================

inline std::vector<std::vector<double>> hf_forward(const Checkpoint& c, const std::vector<int32_t>& ids) {
  const DenseSpec& s = c.spec;
  const int64_t E = s.n_embd, hd = E / s.n_head, T = static_cast<int64_t>(ids.size());
  auto W = [&](const std::string& n) -> const std::vector<float>& { return c.w.at(n); };
  auto has = [&](const std::string& n) { return c.w.count(n) > 0; };
  // y = M x (+ b), M [rows, cols] row-major.
  auto matvec = [](const std::vector<float>& m, const std::vector<double>& x, int64_t rows, const std::vector<float>* b) {
    std::vector<double> y(static_cast<size_t>(rows));
    const int64_t cols = static_cast<int64_t>(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double acc = b ? (*b)[static_cast<size_t>(r)] : 0.0;
      for (int64_t k = 0; k < cols; ++k) acc += static_cast<double>(m[static_cast<size_t>(r * cols + k)]) * x[static_cast<size_t>(k)];
      y[static_cast<size_t>(r)] = acc;
    }
    return y;
  };
  auto rmsnorm = [&](const std::vector<double>& x, const std::vector<float>& g) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + s.eps);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * g[i];
    return y;
  };
  auto rope = [&](std::vector<double>& v, int64_t n_heads, int64_t pos) {
    for (int64_t h = 0; h < n_heads; ++h) {
      double* q = v.data() + h * hd;
      for (int64_t i = 0; i < hd / 2; ++i) {
        const double ang = static_cast<double>(pos) * std::pow(s.theta, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
        const double a = q[i], b = q[i + hd / 2];
        q[i] = a * std::cos(ang) - b * std::sin(ang);
        q[i + hd / 2] = b * std::cos(ang) + a * std::sin(ang);
      }
    }
  };
  std::vector<std::vector<double>> x(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    const auto& e = W("model.embed_tokens.weight");
    x[static_cast<size_t>(t)].assign(e.begin() + ids[static_cast<size_t>(t)] * E, e.begin() + (ids[static_cast<size_t>(t)] + 1) * E);
  }
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    const bool bias = has(l + "self_attn.q_proj.bias");
    std::vector<std::vector<double>> q(static_cast<size_t>(T)), k(static_cast<size_t>(T)), v(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      const auto h = rmsnorm(x[static_cast<size_t>(t)], W(l + "input_layernorm.weight"));
      q[static_cast<size_t>(t)] = matvec(W(l + "self_attn.q_proj.weight"), h, s.n_head * hd, bias ? &W(l + "self_attn.q_proj.bias") : nullptr);
      k[static_cast<size_t>(t)] = matvec(W(l + "self_attn.k_proj.weight"), h, s.n_head_kv * hd, bias ? &W(l + "self_attn.k_proj.bias") : nullptr);
      v[static_cast<size_t>(t)] = matvec(W(l + "self_attn.v_proj.weight"), h, s.n_head_kv * hd, bias ? &W(l + "self_attn.v_proj.bias") : nullptr);
      rope(q[static_cast<size_t>(t)], s.n_head, t);
      rope(k[static_cast<size_t>(t)], s.n_head_kv, t);
    }
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> att(static_cast<size_t>(s.n_head * hd), 0.0);
      for (int64_t h = 0; h < s.n_head; ++h) {
        const int64_t kh = h / (s.n_head / s.n_head_kv);
        std::vector<double> sc(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int64_t u = 0; u <= t; ++u) {
          double d = 0;
          for (int64_t j = 0; j < hd; ++j) d += q[static_cast<size_t>(t)][static_cast<size_t>(h * hd + j)] * k[static_cast<size_t>(u)][static_cast<size_t>(kh * hd + j)];
          sc[static_cast<size_t>(u)] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, sc[static_cast<size_t>(u)]);
        }
        double sum = 0;
        for (double& z : sc) sum += (z = std::exp(z - mx));
        for (int64_t u = 0; u <= t; ++u) {
          for (int64_t j = 0; j < hd; ++j) att[static_cast<size_t>(h * hd + j)] += sc[static_cast<size_t>(u)] / sum * v[static_cast<size_t>(u)][static_cast<size_t>(kh * hd + j)];
        }
      }
      const auto o = matvec(W(l + "self_attn.o_proj.weight"), att, E, nullptr);
      for (int64_t j = 0; j < E; ++j) x[static_cast<size_t>(t)][static_cast<size_t>(j)] += o[static_cast<size_t>(j)];
      const auto h2 = rmsnorm(x[static_cast<size_t>(t)], W(l + "post_attention_layernorm.weight"));
      const auto g = matvec(W(l + "mlp.gate_proj.weight"), h2, s.n_ff, nullptr);
      const auto up = matvec(W(l + "mlp.up_proj.weight"), h2, s.n_ff, nullptr);
      std::vector<double> act(static_cast<size_t>(s.n_ff));
      for (size_t j = 0; j < act.size(); ++j) act[j] = g[j] / (1.0 + std::exp(-g[j])) * up[j];
      const auto d = matvec(W(l + "mlp.down_proj.weight"), act, E, nullptr);
      for (int64_t j = 0; j < E; ++j) x[static_cast<size_t>(t)][static_cast<size_t>(j)] += d[static_cast<size_t>(j)];
    }
  }
  std::vector<std::vector<double>> logits;
  const std::string head = s.tied ? "model.embed_tokens.weight" : "lm_head.weight";
  for (int64_t t = 0; t < T; ++t) {
    logits.push_back(matvec(W(head), rmsnorm(x[static_cast<size_t>(t)], W("model.norm.weight")), s.n_vocab, nullptr));
  }
  return logits;
}

inline std::vector<double> softmax(const std::vector<double>& z) {
  double mx = -1e300, sum = 0;
  for (double v : z) mx = std::max(mx, v);
  std::vector<double> p(z.size());
  for (size_t i = 0; i < z.size(); ++i) sum += (p[i] = std::exp(z[i] - mx));
  for (double& v : p) v /= sum;
  return p;
}

// ============================================================================================
// llama.cpp through node-llama-cpp
// ============================================================================================

inline fs::path node_dir() {
  const char* src = std::getenv("SLM_SOURCE_DIR");
  return fs::path(src ? src : SLM_TEST_SOURCE_DIR) / "tests" / "node";
}

// An Error message when node or node-llama-cpp is missing (a missing reference is a failure).
inline std::string node_missing() {
  if (std::system("node --version > /dev/null 2>&1") != 0) return "node is not installed (scripts/install-deps.sh)";
  if (!fs::exists(node_dir() / "node_modules" / "node-llama-cpp" / "dist" / "index.js")) {
    return "tests/node/node_modules/node-llama-cpp is missing: run `npm ci` in tests/node";
  }
  return "";
}

struct LlamaRun {
  bool ok = false;
  std::string error;
  int64_t n_vocab = 0;
  std::vector<std::vector<double>> probs;  // per evaluated position (after ids[0..t]): full distribution
};

// Loads each model with llama.cpp (CPU, prebuilt, offline), evaluates `ids` and returns the
// next-token distribution after the last id and after each of `n_gen` greedy steps.
inline std::vector<LlamaRun> run_llama(const std::vector<std::string>& models, const std::vector<int32_t>& ids,
                                       int n_gen, const fs::path& work) {
  static const char* kScript = R"JS(
import {pathToFileURL} from "node:url";
const [nlc, idsArg, nGenArg, ...models] = process.argv.slice(2);
const {getLlama} = await import(pathToFileURL(nlc).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", progressLogs: false});
const ids = idsArg.split(",").map(Number);
const nGen = Number(nGenArg);
for (const modelPath of models) {
  const out = {model: modelPath, ok: false};
  try {
    const model = await llama.loadModel({modelPath});
    const ctx = await model.createContext({contextSize: 64, threads: 1});
    const seq = ctx.getSequence();
    out.steps = [];
    let n = 0;
    for await (const r of seq.evaluateWithMetadata(ids, {probabilities: true}, {temperature: 0})) {
      out.steps.push(Array.from(r.probabilities.entries()));
      if (++n > nGen) break;
    }
    out.ok = true;
    await ctx.dispose();
    await model.dispose();
  } catch (e) {
    out.error = String(e && e.message || e);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
await llama.dispose();
)JS";
  const fs::path script = work / "load_models.mjs";
  write_file(script, kScript);
  std::string cmd = "node " + script.string() + " " +
                    (node_dir() / "node_modules" / "node-llama-cpp" / "dist" / "index.js").string() + " ";
  for (size_t i = 0; i < ids.size(); ++i) cmd += (i ? "," : "") + std::to_string(ids[i]);
  cmd += " " + std::to_string(n_gen);
  for (const std::string& m : models) cmd += " " + m;
  cmd += " 2>" + (work / "node.err").string();
  std::vector<LlamaRun> runs;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return runs;
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    auto doc = slm::json::parse(std::string_view(out).substr(start, end - start));
    start = end + 1;
    LlamaRun r;
    if (!doc) {
      r.error = "bad JSON from node";
      runs.push_back(r);
      continue;
    }
    r.ok = doc->find("ok") && doc->find("ok")->as_bool();
    if (const auto* e = doc->find("error")) r.error = std::string(e->as_string());
    if (const auto* steps = doc->find("steps")) {
      for (const auto& st : steps->items()) {
        std::vector<double> pr;
        for (const auto& e : st.items()) {
          const int64_t id = e.at(0)->as_int();
          if (id >= static_cast<int64_t>(pr.size())) pr.resize(static_cast<size_t>(id + 1), 0.0);
          pr[static_cast<size_t>(id)] = e.at(1)->as_double();
        }
        r.probs.push_back(pr);
      }
    }
    runs.push_back(r);
  }
  return runs;
}

}  // namespace testconv

namespace testconv {

// Tokenizes `texts` with llama.cpp using the vocabulary of `model` (no special-token parsing, no
// BOS, as llama.cpp's test-tokenizer-0); one id list per text, or an empty result on failure.
inline std::vector<std::vector<int64_t>> llama_tokenize(const std::string& model, const std::vector<std::string>& texts,
                                                         const fs::path& work) {
  static const char* kScript = R"JS(
import {pathToFileURL} from "node:url";
import {readFileSync} from "node:fs";
const [nlc, modelPath, textsPath] = process.argv.slice(2);
const {getLlama} = await import(pathToFileURL(nlc).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", progressLogs: false});
const model = await llama.loadModel({modelPath});
const out = JSON.parse(readFileSync(textsPath, "utf8")).map((t) => Array.from(model.tokenize(t, false)));
process.stdout.write(JSON.stringify(out) + "\n");
await model.dispose();
await llama.dispose();
)JS";
  write_file(work / "tokenize.mjs", kScript);
  std::string arr = "[";
  for (size_t i = 0; i < texts.size(); ++i) arr += (i ? "," : "") + slm::json::quote(texts[i]);
  write_file(work / "texts.json", arr + "]");
  const std::string cmd = "node " + (work / "tokenize.mjs").string() + " " +
                          (node_dir() / "node_modules" / "node-llama-cpp" / "dist" / "index.js").string() + " " + model +
                          " " + (work / "texts.json").string() + " 2>" + (work / "node-tok.err").string();
  std::vector<std::vector<int64_t>> result;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return result;
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  auto doc = slm::json::parse(out);
  if (!doc || !doc->is_array()) return result;
  for (const auto& a : doc->items()) {
    std::vector<int64_t> ids;
    for (const auto& x : a.items()) ids.push_back(x.as_int());
    result.push_back(ids);
  }
  return result;
}

}  // namespace testconv
