// Deterministic random-weight GGUF models (see random_model.hpp).
#include "model/random_model.hpp"

#include <cmath>
#include <memory>

#include "ops/ops.hpp"
#include "slm/dtype.hpp"

namespace slm::mkmodel {

// ---- Presets and types -----------------------------------------------------------------------

Expected<Spec> preset(std::string_view name, std::string_view arch) {
  Spec s;
  if (arch == "deepseek2") return deepseek2_preset(name);  // random_deepseek2.cpp
  if (arch != "qwen2" && arch != "llama")
    return errorf("--arch: expected qwen2 or llama, got '%.*s'", static_cast<int>(arch.size()), arch.data());
  s.arch = std::string(arch);
  s.name = "random-" + std::string(name);
  const bool llama = arch == "llama";
  s.qkv_bias = !llama;
  if (name == "tiny") {
    // Q4_K / Q6_K need rows that are multiples of 256: the smallest model every type can hold.
    s.n_embd = 256, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 512, s.n_ctx_train = 2048;
    s.rms_eps = llama ? 1e-5 : 1e-6;
    if (llama) {
      // llama3 scaling with a short original context so the tiny head dim has all three bands.
      s.rope_base = 500000.0, s.llama3_rope = true, s.llama3_original_ctx = 256;
    }
  } else if (name == "qwen-1.5b") {
    s.n_embd = 1536, s.n_layer = 28, s.n_head = 12, s.n_head_kv = 2, s.n_ff = 8960, s.n_vocab = 151936;
    s.n_ctx_train = 131072, s.rope_base = 10000.0, s.rms_eps = 1e-6;
  } else if (name == "llama-8b") {
    s.n_embd = 4096, s.n_layer = 32, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 14336, s.n_vocab = 128256;
    s.n_ctx_train = 131072, s.rope_base = 500000.0, s.rms_eps = 1e-5, s.llama3_rope = true;
  } else if (name == "llama-1b") {
    s.n_embd = 2048, s.n_layer = 16, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 8192, s.n_vocab = 128256;
    s.n_ctx_train = 131072, s.rope_base = 500000.0, s.rms_eps = 1e-5, s.llama3_rope = true;
    s.llama3_factor = 32.0, s.tied_output = true;
  } else {
    return errorf("--preset: expected tiny, qwen-1.5b, llama-8b or llama-1b, got '%.*s'",
                  static_cast<int>(name.size()), name.data());
  }
  return s;
}

bool q4_k_m_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

Expected<DType> tensor_type(const Spec& spec, std::string_view tensor_name, int64_t layer) {
  const bool vec = tensor_name.ends_with("norm.weight") || tensor_name.ends_with(".bias") ||
                   tensor_name == "rope_freqs.weight";
  if (vec) return DType::F32;
  if (spec.type == "Q4_K_M" || spec.type == "q4_k_m") {
    if (tensor_name == "output.weight") return DType::Q6_K;
    if (tensor_name == "token_embd.weight") return spec.tied_output ? DType::Q6_K : DType::Q4_K;
    if ((tensor_name.ends_with("attn_v.weight") || tensor_name.ends_with("ffn_down.weight")) &&
        q4_k_m_more_bits(layer, spec.n_layer))
      return DType::Q6_K;
    return DType::Q4_K;
  }
  const TypeTraits* t = type_traits_by_name(spec.type);
  if (t == nullptr) return errorf("--type: unknown type '%s'", spec.type.c_str());
  if (t->from_float == nullptr) return errorf("--type: %s has no quantizer", t->name);
  return t->type;
}

namespace {

uint32_t file_type_id(const std::string& type) {
  // llama_ftype values (general.file_type), for tools that print them.
  if (type == "F32") return 0;
  if (type == "F16") return 1;
  if (type == "Q4_0") return 2;
  if (type == "Q8_0") return 7;
  if (type == "Q4_K_M" || type == "q4_k_m") return 15;
  if (type == "Q4_K") return 14;  // Q4_K_S: all Q4_K
  if (type == "Q6_K") return 18;
  if (type == "BF16") return 32;
  return 0;
}

// ---- Deterministic values --------------------------------------------------------------------

uint64_t splitmix64(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

// Row r of a tensor: n values uniform with the given mean and standard deviation.
void random_row(uint64_t tensor_key, int64_t r, double mean, double std, float* out, int64_t n) {
  uint64_t state = tensor_key ^ (static_cast<uint64_t>(r) * 0xd1b54a32d192ed03ull);
  splitmix64(&state);
  const double half_width = std * std::sqrt(3.0);  // uniform on [-a, a] has std a/sqrt(3)
  for (int64_t i = 0; i < n; ++i) {
    const double u = static_cast<double>(splitmix64(&state) >> 11) * 0x1.0p-53;  // [0, 1)
    out[i] = static_cast<float>(mean + (2.0 * u - 1.0) * half_width);
  }
}

// The minimal byte-level BPE vocabulary: the 256 byte tokens in GPT-2's byte-to-unicode
// spelling, three merges, bos and eos, then unused padding tokens up to n_vocab.
struct MiniVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  uint32_t bos = 0, eos = 0;
};

std::string utf8(uint32_t cp) {
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

Expected<MiniVocab> mini_vocab(int64_t n_vocab) {
  MiniVocab v;
  // GPT-2: printable bytes (33-126, 161-172, 174-255) stand for themselves; the others map in
  // order to code points 256, 257, ...
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    v.tokens.push_back(utf8(printable ? b : next++));
    v.types.push_back(1);  // normal
  }
  const std::string space = utf8(256 + 32);  // "Ġ": the byte 0x20
  for (const auto& [a, b] : {std::pair<std::string, std::string>{space, "t"}, {"h", "e"}, {"t", "h"}}) {
    v.merges.push_back(a + " " + b);
    v.tokens.push_back(a + b);
    v.types.push_back(1);
  }
  v.bos = static_cast<uint32_t>(v.tokens.size());
  v.tokens.push_back("<|begin_of_text|>");
  v.types.push_back(3);  // control
  v.eos = static_cast<uint32_t>(v.tokens.size());
  v.tokens.push_back("<|end_of_text|>");
  v.types.push_back(3);
  if (n_vocab != 0 && n_vocab < static_cast<int64_t>(v.tokens.size()))
    return errorf("--n-vocab: the minimal vocabulary has %zu tokens, got %lld (use --vocab-from for others)",
                  v.tokens.size(), static_cast<long long>(n_vocab));
  for (int64_t i = static_cast<int64_t>(v.tokens.size()); i < n_vocab; ++i) {
    v.tokens.push_back("<|pad_" + std::to_string(i) + "|>");
    v.types.push_back(5);  // unused
  }
  return v;
}

Status check_spec(const Spec& s) {
  auto pos = [](const char* what, int64_t v) -> Status {
    if (v <= 0) return errorf("%s must be positive, got %lld", what, static_cast<long long>(v));
    return Status::success();
  };
  SLM_TRY(pos("--n-embd", s.n_embd));
  SLM_TRY(pos("--n-layer", s.n_layer));
  SLM_TRY(pos("--n-head", s.n_head));
  SLM_TRY(pos("--n-head-kv", s.n_head_kv));
  SLM_TRY(pos("--n-ff", s.n_ff));
  SLM_TRY(pos("--n-ctx-train", s.n_ctx_train));
  if (s.arch != "qwen2" && s.arch != "llama" && s.arch != "deepseek2") return errorf("--arch: expected qwen2 or llama, got '%s'", s.arch.c_str());
  if (s.n_embd % s.n_head != 0) return errorf("--n-embd %lld is not a multiple of --n-head %lld", static_cast<long long>(s.n_embd), static_cast<long long>(s.n_head));
  if (s.n_head % s.n_head_kv != 0) return errorf("--n-head %lld is not a multiple of --n-head-kv %lld", static_cast<long long>(s.n_head), static_cast<long long>(s.n_head_kv));
  const int64_t hd = s.n_embd / s.n_head;
  if (s.n_rot < 0 || s.n_rot > hd || s.n_rot % 2 != 0) return errorf("--n-rot must be even and <= head dim %lld, got %lld", static_cast<long long>(hd), static_cast<long long>(s.n_rot));
  return Status::success();
}

struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;  // ne[0] first
  int64_t layer = -1;
  double mean = 0.0, std = 0.0;
};

}  // namespace

// ---- Building --------------------------------------------------------------------------------

Status build(const Spec& spec_in, gguf::Writer& w, const gguf::File* vocab_file) {
  Spec spec = spec_in;
  if (spec.arch == "deepseek2") deepseek2_normalize(&spec);
  SLM_TRY(check_spec(spec));
  const std::string& a = spec.arch;
  const int64_t E = spec.n_embd, hd = E / spec.n_head, Q = spec.n_head * hd, KV = spec.n_head_kv * hd;
  const int64_t n_rot = spec.n_rot == 0 ? hd : spec.n_rot;

  // Vocabulary first: it fixes n_vocab.
  if (!spec.vocab_from.empty()) {
    if (vocab_file == nullptr) return errorf("--vocab-from %s: file not open", spec.vocab_from.c_str());
    auto toks = vocab_file->get_string_array("tokenizer.ggml.tokens");
    if (!toks) return errorf("--vocab-from %s: %s", spec.vocab_from.c_str(), toks.error().message.c_str());
    spec.n_vocab = static_cast<int64_t>(toks->size());
  }

  w.add_string("general.architecture", a);
  w.add_string("general.name", spec.name);
  w.add_uint32("general.file_type", file_type_id(spec.type));
  w.add_uint32(a + ".context_length", static_cast<uint32_t>(spec.n_ctx_train));
  w.add_uint32(a + ".embedding_length", static_cast<uint32_t>(E));
  w.add_uint32(a + ".block_count", static_cast<uint32_t>(spec.n_layer));
  w.add_uint32(a + ".feed_forward_length", static_cast<uint32_t>(spec.n_ff));
  w.add_uint32(a + ".attention.head_count", static_cast<uint32_t>(spec.n_head));
  w.add_uint32(a + ".attention.head_count_kv", static_cast<uint32_t>(spec.n_head_kv));
  w.add_float32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(spec.rms_eps));
  w.add_float32(a + ".rope.freq_base", static_cast<float>(spec.rope_base));
  w.add_uint32(a + ".rope.dimension_count", static_cast<uint32_t>(n_rot));
  if (spec.llama3_rope && spec.llama3_as_keys) {
    w.add_string(a + ".rope.scaling.type", "llama3");
    w.add_float32(a + ".rope.scaling.factor", static_cast<float>(spec.llama3_factor));
    w.add_float32(a + ".rope.scaling.low_freq_factor", static_cast<float>(spec.llama3_low_freq_factor));
    w.add_float32(a + ".rope.scaling.high_freq_factor", static_cast<float>(spec.llama3_high_freq_factor));
    w.add_uint32(a + ".rope.scaling.original_context_length", static_cast<uint32_t>(spec.llama3_original_ctx));
  }

  if (vocab_file != nullptr) {
    for (const gguf::KeyValue& kv : vocab_file->metadata())
      if (kv.key.starts_with("tokenizer.")) w.add_value(kv.key, kv.value);
  } else {
    auto v = mini_vocab(spec.n_vocab);
    if (!v) return v.error();
    spec.n_vocab = static_cast<int64_t>(v->tokens.size());
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "default");
    w.add_string_array("tokenizer.ggml.tokens", std::span<const std::string>(v->tokens));
    w.add_int32_array("tokenizer.ggml.token_type", v->types);
    w.add_string_array("tokenizer.ggml.merges", std::span<const std::string>(v->merges));
    w.add_uint32("tokenizer.ggml.bos_token_id", v->bos);
    w.add_uint32("tokenizer.ggml.eos_token_id", v->eos);
  }
  w.add_uint32(a + ".vocab_size", static_cast<uint32_t>(spec.n_vocab));
  const int64_t V = spec.n_vocab;
  if (a == "deepseek2") return build_deepseek2_tensors(spec, w);  // random_deepseek2.cpp

  // Scales: projections keep unit-variance activations (std 1/sqrt(fan_in)); the LM head gives
  // logits of std logit_std for a unit-RMS normed state.
  const double head_std = spec.logit_std / std::sqrt(static_cast<double>(E));
  // With a tied LM head the input embedding e_v stays in the residual h, and e_v . norm(h) =
  // |e_v|^2 / rms(h) = logit_std * sqrt(E) * head_std / rms(h): unless rms(h) is well above
  // logit_std, every token predicts itself. So tied models' blocks write larger outputs
  // (attn_output and ffn_down scaled) so that rms(h) ~ 2 logit_std after 2 n_layer blocks.
  const double out_gain =
      spec.tied_output ? 2.0 * spec.logit_std / std::sqrt(2.0 * static_cast<double>(spec.n_layer)) : 1.0;
  std::vector<TensorPlan> plan;
  plan.push_back({"token_embd.weight", {E, V}, -1, 0.0, spec.tied_output ? head_std : 1.0});
  plan.push_back({"output_norm.weight", {E}, -1, 1.0, 0.05});
  if (!spec.tied_output) plan.push_back({"output.weight", {E, V}, -1, 0.0, head_std});
  if (spec.llama3_rope && !spec.llama3_as_keys) plan.push_back({"rope_freqs.weight", {n_rot / 2}, -1, 0.0, 0.0});
  for (int64_t l = 0; l < spec.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const double in_e = 1.0 / std::sqrt(static_cast<double>(E));
    plan.push_back({p + "attn_norm.weight", {E}, l, 1.0, 0.05});
    plan.push_back({p + "attn_q.weight", {E, Q}, l, 0.0, in_e});
    plan.push_back({p + "attn_k.weight", {E, KV}, l, 0.0, in_e});
    plan.push_back({p + "attn_v.weight", {E, KV}, l, 0.0, in_e});
    if (spec.qkv_bias) {
      plan.push_back({p + "attn_q.bias", {Q}, l, 0.0, 0.1});
      plan.push_back({p + "attn_k.bias", {KV}, l, 0.0, 0.1});
      plan.push_back({p + "attn_v.bias", {KV}, l, 0.0, 0.1});
    }
    plan.push_back({p + "attn_output.weight", {Q, E}, l, 0.0, out_gain / std::sqrt(static_cast<double>(Q))});
    plan.push_back({p + "ffn_norm.weight", {E}, l, 1.0, 0.05});
    plan.push_back({p + "ffn_gate.weight", {E, spec.n_ff}, l, 0.0, in_e});
    plan.push_back({p + "ffn_up.weight", {E, spec.n_ff}, l, 0.0, in_e});
    plan.push_back({p + "ffn_down.weight", {spec.n_ff, E}, l, 0.0, out_gain / std::sqrt(static_cast<double>(spec.n_ff))});
  }

  for (const TensorPlan& t : plan) {
    auto type = tensor_type(spec, t.name, t.layer);
    if (!type) return type.error();
    const int64_t n_cols = t.shape[0];
    const int64_t n_rows = t.shape.size() > 1 ? t.shape[1] : 1;
    auto rb = row_bytes(*type, n_cols);
    if (!rb) return errorf("tensor '%s' as %s: %s", t.name.c_str(), dtype_name(*type), rb.error().message.c_str());
    const size_t row_bytes_v = *rb;
    const TypeTraits& tt = traits(*type);
    if (tt.from_float == nullptr) return errorf("tensor '%s': type %s has no quantizer", t.name.c_str(), tt.name);
    uint64_t seed_state = spec.seed;
    const uint64_t key = fnv1a(t.name) ^ splitmix64(&seed_state);  // the stream of (seed, name)
    const bool is_rope_freqs = t.name == "rope_freqs.weight";
    const Spec s = spec;
    gguf::Writer::Producer produce = [=, &tt](std::span<uint8_t> out) -> Status {
      if (out.size() != row_bytes_v * static_cast<size_t>(n_rows))
        return errorf("tensor '%s': writer asked for %zu bytes, expected %zu", t.name.c_str(), out.size(),
                      row_bytes_v * static_cast<size_t>(n_rows));
      std::vector<float> row(static_cast<size_t>(n_cols));
      for (int64_t r = 0; r < n_rows; ++r) {
        if (is_rope_freqs)
          ops::llama3_freq_factors(row.data(), n_rot, s.rope_base, s.llama3_factor, s.llama3_low_freq_factor,
                                   s.llama3_high_freq_factor, static_cast<double>(s.llama3_original_ctx));
        else
          random_row(key, r, t.mean, t.std, row.data(), n_cols);
        tt.from_float(row.data(), out.data() + static_cast<size_t>(r) * row_bytes_v, n_cols);
      }
      return Status::success();
    };
    SLM_TRY(w.add_tensor(t.name, *type, t.shape, std::move(produce)));
  }
  return Status::success();
}

Status write_file(const Spec& spec, const std::string& path) {
  std::unique_ptr<gguf::File> vocab;
  if (!spec.vocab_from.empty()) {
    auto f = gguf::File::open(spec.vocab_from);
    if (!f) return errorf("--vocab-from %s: %s", spec.vocab_from.c_str(), f.error().message.c_str());
    vocab = std::make_unique<gguf::File>(std::move(*f));
  }
  gguf::Writer w;
  SLM_TRY(build(spec, w, vocab.get()));
  return w.write_file(path);
}

Expected<std::vector<uint8_t>> write_buffer(const Spec& spec) {
  std::unique_ptr<gguf::File> vocab;
  if (!spec.vocab_from.empty()) {
    auto f = gguf::File::open(spec.vocab_from);
    if (!f) return errorf("--vocab-from %s: %s", spec.vocab_from.c_str(), f.error().message.c_str());
    vocab = std::make_unique<gguf::File>(std::move(*f));
  }
  gguf::Writer w;
  SLM_TRY(build(spec, w, vocab.get()));
  return w.write_buffer();
}

}  // namespace slm::mkmodel
