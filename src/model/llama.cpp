// `llama` and `qwen2` dense decoders: config, weight binding, and the forward pass
//   x = embed(token)
//   for each layer:  x += Wo . attention(rope(Wq.norm(x) + bq), rope(Wk.norm(x) + bk), Wv.norm(x) + bv)
//                    x += Wdown . (silu(Wgate.norm(x)) * Wup.norm(x))
//   logits = Wout . norm(x)
#include "model/llama.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "model/context_base.hpp"
#include "model/context_memory.hpp"
#include "model/interleave_store.hpp"
#include "slm/thread_pool.hpp"
#include "slm/tokenizer.hpp"

namespace slm::llama {

// ---- Config ----------------------------------------------------------------------------------

namespace {

std::string key(const Config& c, const char* suffix) { return c.arch + "." + suffix; }

Status positive(const std::string& k, int64_t v) {
  if (v <= 0) return errorf("key '%s': expected a positive value, got %lld", k.c_str(), static_cast<long long>(v));
  return Status::success();
}

// Integers stored as any GGUF integer type; an error names the key when missing or negative.
Expected<int64_t> get_count(const gguf::File& f, const std::string& k) {
  auto v = f.get_uint(k);
  if (!v) return v.error();
  if (*v > (1ull << 40)) return errorf("key '%s': value %llu is implausibly large", k.c_str(), static_cast<unsigned long long>(*v));
  return static_cast<int64_t>(*v);
}

}  // namespace

Expected<Config> read_config(const gguf::File& f) {
  Config c;
  auto arch = f.get_string("general.architecture");
  if (!arch) return arch.error();
  c.arch = std::string(*arch);
  if (c.arch != "llama" && c.arch != "qwen2")
    return errorf("key 'general.architecture': expected 'llama' or 'qwen2', got '%s'", c.arch.c_str());
  c.rope_style = c.arch == "qwen2" ? ops::RopeStyle::NeoxHalves : ops::RopeStyle::AdjacentPairs;

  auto req = [&](const char* suffix, int64_t* out) -> Status {
    auto v = get_count(f, key(c, suffix));
    if (!v) return v.error();
    SLM_TRY(positive(key(c, suffix), *v));
    *out = *v;
    return Status::success();
  };
  SLM_TRY(req("context_length", &c.n_ctx_train));
  SLM_TRY(req("embedding_length", &c.n_embd));
  SLM_TRY(req("block_count", &c.n_layer));
  SLM_TRY(req("feed_forward_length", &c.n_ff));
  SLM_TRY(req("attention.head_count", &c.n_head));
  c.n_head_kv = c.n_head;
  if (f.find(key(c, "attention.head_count_kv"))) SLM_TRY(req("attention.head_count_kv", &c.n_head_kv));
  if (c.n_head % c.n_head_kv != 0)
    return errorf("key '%s': expected a divisor of %s (%lld), got %lld", key(c, "attention.head_count_kv").c_str(),
                  key(c, "attention.head_count").c_str(), static_cast<long long>(c.n_head),
                  static_cast<long long>(c.n_head_kv));
  if (c.n_embd % c.n_head != 0)
    return errorf("key '%s': expected a multiple of %s (%lld), got %lld", key(c, "embedding_length").c_str(),
                  key(c, "attention.head_count").c_str(), static_cast<long long>(c.n_head),
                  static_cast<long long>(c.n_embd));
  c.head_dim = c.n_embd / c.n_head;
  for (const char* k : {"attention.key_length", "attention.value_length"}) {
    if (!f.find(key(c, k))) continue;
    auto v = get_count(f, key(c, k));
    if (!v) return v.error();
    if (*v != c.head_dim)
      return errorf("key '%s': expected %lld (embedding_length / head_count), got %lld", key(c, k).c_str(),
                    static_cast<long long>(c.head_dim), static_cast<long long>(*v));
  }

  auto eps = f.get_float(key(c, "attention.layer_norm_rms_epsilon"));
  if (!eps) return eps.error();
  if (!(*eps > 0.0 && *eps < 1.0))
    return errorf("key '%s': expected a value in (0, 1), got %g", key(c, "attention.layer_norm_rms_epsilon").c_str(), *eps);
  c.rms_eps = static_cast<float>(*eps);

  auto base = f.get_float_or(key(c, "rope.freq_base"), 10000.0);
  if (!base) return base.error();
  if (!(*base > 1.0)) return errorf("key '%s': expected a value > 1, got %g", key(c, "rope.freq_base").c_str(), *base);
  c.rope_base = *base;
  c.n_rot = c.head_dim;
  if (f.find(key(c, "rope.dimension_count"))) {
    auto v = get_count(f, key(c, "rope.dimension_count"));
    if (!v) return v.error();
    if (*v <= 0 || *v > c.head_dim || *v % 2 != 0)
      return errorf("key '%s': expected an even value in [2, %lld] (head dim), got %lld",
                    key(c, "rope.dimension_count").c_str(), static_cast<long long>(c.head_dim), static_cast<long long>(*v));
    c.n_rot = *v;
  }

  // RoPE scaling keys (llama.cpp names them rope.scaling.*).
  if (const gguf::Value* t = f.find(key(c, "rope.scaling.type"))) {
    (void)t;
    auto type = f.get_string(key(c, "rope.scaling.type"));
    if (!type) return type.error();
    auto factor = f.get_float_or(key(c, "rope.scaling.factor"), 1.0);
    if (!factor) return factor.error();
    if (*type == "none") {
    } else if (*type == "linear") {
      if (!(*factor > 0.0)) return errorf("key '%s': expected > 0, got %g", key(c, "rope.scaling.factor").c_str(), *factor);
      c.rope_scaling = "linear";
      c.rope_linear_scale = *factor;
    } else if (*type == "llama3") {
      c.rope_scaling = "llama3";
      c.llama3_factor = *factor;
      auto lo = f.get_float_or(key(c, "rope.scaling.low_freq_factor"), 1.0);
      auto hi = f.get_float_or(key(c, "rope.scaling.high_freq_factor"), 4.0);
      auto orig = f.get_float_or(key(c, "rope.scaling.original_context_length"), 8192.0);
      if (!lo) return lo.error();
      if (!hi) return hi.error();
      if (!orig) {  // integer-typed in most files
        auto o = f.get_uint(key(c, "rope.scaling.original_context_length"));
        if (!o) return o.error();
        c.llama3_original_ctx = static_cast<double>(*o);
      } else {
        c.llama3_original_ctx = *orig;
      }
      c.llama3_low_freq_factor = *lo;
      c.llama3_high_freq_factor = *hi;
      if (!(c.llama3_factor > 0.0 && c.llama3_low_freq_factor > 0.0 &&
            c.llama3_high_freq_factor > c.llama3_low_freq_factor && c.llama3_original_ctx > 0.0))
        return errorf("keys '%s.*': expected factor > 0, 0 < low_freq_factor < high_freq_factor, "
                      "original_context_length > 0; got %g, %g, %g, %g",
                      key(c, "rope.scaling").c_str(), c.llama3_factor, c.llama3_low_freq_factor,
                      c.llama3_high_freq_factor, c.llama3_original_ctx);
    } else {
      return errorf("key '%s': expected 'none', 'linear' or 'llama3', got '%.*s' (not supported)",
                    key(c, "rope.scaling.type").c_str(), static_cast<int>(type->size()), type->data());
    }
  }

  // Vocabulary size: the arch key when present, else the tokenizer's token list, else the
  // embedding matrix (checked against token_embd in bind_weights either way).
  if (f.find(key(c, "vocab_size"))) {
    SLM_TRY(req("vocab_size", &c.n_vocab));
  } else if (f.find("tokenizer.ggml.tokens")) {
    auto toks = f.get_string_array("tokenizer.ggml.tokens");
    if (!toks) return toks.error();
    c.n_vocab = static_cast<int64_t>(toks->size());
  } else if (const gguf::TensorInfo* te = f.find_tensor("token_embd.weight")) {
    c.n_vocab = te->n_dims == 2 ? te->ne[1] : 0;
  }
  if (c.n_vocab <= 0) return errorf("vocabulary size: no '%s', 'tokenizer.ggml.tokens' or 2-D 'token_embd.weight'", key(c, "vocab_size").c_str());
  return c;
}

// ---- Weights ---------------------------------------------------------------------------------

namespace {

std::string shape_str(std::initializer_list<int64_t> s) {
  std::string out = "[";
  for (int64_t v : s) out += (out.size() > 1 ? ", " : "") + std::to_string(v);
  return out + "]";
}
std::string shape_str(const gguf::TensorInfo& t) {
  std::string out = "[";
  for (uint32_t i = 0; i < t.n_dims; ++i) out += (i ? ", " : "") + std::to_string(t.ne[i]);
  return out + "]";
}

class Binder {
 public:
  explicit Binder(const gguf::File& f) : f_(f) {}

  // A tensor with exactly this shape (ne[0] first); nullptr + error when `required`.
  Expected<const gguf::TensorInfo*> find(const std::string& name, std::initializer_list<int64_t> shape, bool required) {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (t == nullptr) {
      if (!required) return static_cast<const gguf::TensorInfo*>(nullptr);
      return errorf("tensor '%s': missing (expected shape %s)", name.c_str(), shape_str(shape).c_str());
    }
    bool same = t->n_dims == shape.size();
    size_t i = 0;
    for (int64_t v : shape) same = same && t->ne[i++] == v;
    if (!same)
      return errorf("tensor '%s': expected shape %s, got %s", name.c_str(), shape_str(shape).c_str(), shape_str(*t).c_str());
    bytes_ += t->n_bytes;
    return t;
  }

  Expected<const float*> vec(const std::string& name, int64_t n, bool required = true) {
    auto t = find(name, {n}, required);
    if (!t) return t.error();
    if (*t == nullptr) return static_cast<const float*>(nullptr);
    if ((*t)->type != DType::F32)
      return errorf("tensor '%s': expected type F32, got %s", name.c_str(), dtype_name((*t)->type));
    if (reinterpret_cast<uintptr_t>((*t)->data) % alignof(float) != 0)
      return errorf("tensor '%s': data not 4-byte aligned", name.c_str());
    return reinterpret_cast<const float*>((*t)->data);
  }

  // A weight matrix of n_rows rows of n_cols (GGUF shape [n_cols, n_rows]).
  Expected<kernels::Matrix> mat(const std::string& name, int64_t n_cols, int64_t n_rows, bool required = true) {
    auto t = find(name, {n_cols, n_rows}, required);
    if (!t) return t.error();
    kernels::Matrix m;
    if (*t == nullptr) return m;
    const TypeTraits* tt = type_traits(static_cast<uint32_t>((*t)->type));
    if (tt == nullptr || tt->to_float == nullptr)
      return errorf("tensor '%s': type %s is not supported for computation", name.c_str(),
                    tt ? tt->name : "unknown");
    auto rb = row_bytes((*t)->type, n_cols);
    if (!rb) return errorf("tensor '%s': %s", name.c_str(), rb.error().message.c_str());
    m.type = (*t)->type;
    m.data = (*t)->data;
    m.n_rows = n_rows;
    m.n_cols = n_cols;
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
  const int64_t E = c.n_embd, V = c.n_vocab;
  auto te = b.mat("token_embd.weight", E, V);
  if (!te) return te.error();
  w.token_embd = *te;
  auto on = b.vec("output_norm.weight", E);
  if (!on) return on.error();
  w.output_norm = *on;
  auto out = b.mat("output.weight", E, V, /*required=*/false);
  if (!out) return out.error();
  w.tied_output = out->data == nullptr;
  w.output = w.tied_output ? w.token_embd : *out;
  auto rf = b.vec("rope_freqs.weight", c.n_rot / 2, /*required=*/false);
  if (!rf) return rf.error();
  w.rope_freqs = *rf;

  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    Layer& L = w.layers[static_cast<size_t>(i)];
    const std::string p = "blk." + std::to_string(i) + ".";
    auto bind_vec = [&](const char* n, int64_t len, const float** dst, bool required) -> Status {
      auto v = b.vec(p + n, len, required);
      if (!v) return v.error();
      *dst = *v;
      return Status::success();
    };
    auto bind_mat = [&](const char* n, int64_t cols, int64_t rows, kernels::Matrix* dst) -> Status {
      auto m = b.mat(p + n, cols, rows);
      if (!m) return m.error();
      *dst = *m;
      return Status::success();
    };
    SLM_TRY(bind_vec("attn_norm.weight", E, &L.attn_norm, true));
    SLM_TRY(bind_mat("attn_q.weight", E, c.q_dim(), &L.wq));
    SLM_TRY(bind_mat("attn_k.weight", E, c.kv_dim(), &L.wk));
    SLM_TRY(bind_mat("attn_v.weight", E, c.kv_dim(), &L.wv));
    // QKV biases: qwen2 has them, llama files normally not; used wherever present.
    const bool need_bias = c.arch == "qwen2";
    SLM_TRY(bind_vec("attn_q.bias", c.q_dim(), &L.bq, need_bias));
    SLM_TRY(bind_vec("attn_k.bias", c.kv_dim(), &L.bk, need_bias));
    SLM_TRY(bind_vec("attn_v.bias", c.kv_dim(), &L.bv, need_bias));
    SLM_TRY(bind_mat("attn_output.weight", c.q_dim(), E, &L.wo));
    SLM_TRY(bind_vec("ffn_norm.weight", E, &L.ffn_norm, true));
    SLM_TRY(bind_mat("ffn_gate.weight", E, c.n_ff, &L.w_gate));
    SLM_TRY(bind_mat("ffn_up.weight", E, c.n_ff, &L.w_up));
    SLM_TRY(bind_mat("ffn_down.weight", c.n_ff, E, &L.w_down));
  }
  return w;
}

// ---- Model -----------------------------------------------------------------------------------

namespace {

// Sizes of everything a context allocates, computed once so that context_memory_required and
// memory_bytes agree.
struct ContextPlan {
  size_t kv_bytes = 0;
  size_t scratch_bytes = 0;   // matmul activation scratch
  size_t attn_scratch_bytes = 0;  // per thread: matmul scratch for attention scores
  int n_threads = 1;
  size_t total_bytes = 0;     // the whole block (carve() measures it): kv + run-state + scratch
  size_t total() const { return total_bytes; }
};

// Where a context's buffers live: all in one 64-byte-aligned block (the caller's arena or one
// allocation), laid out by carve(). Shapes are in the comments.
struct LlamaBuffers {
  uint8_t* kv_ = nullptr;                // (n_layer, {K, V}, n_ctx, kv_dim) F16 or F32
  std::span<ops::KvLayer> kv_layers_;    // (n_layer,) views into kv_ per layer
  std::span<uint8_t> scratch_;           // (scratch_bytes,) matmul's quantized activations
  uint8_t* attn_scratch_ = nullptr;      // (n_threads, attn_scratch_bytes) attention matmul scratch
  std::span<Status> thread_status_;      // (n_threads,) attention result of each thread (constructed in place)
  float* x_ = nullptr;       // (n_batch, n_embd) residual stream
  float* xb_ = nullptr;      // (n_batch, n_embd) normed input of a block / block output
  float* q_ = nullptr;       // (n_batch, n_head * head_dim) queries
  float* att_ = nullptr;     // (n_batch, n_head * head_dim) attention output (before Wo)
  float* k_ = nullptr;       // (n_batch, n_head_kv * head_dim) keys of the new tokens
  float* v_ = nullptr;       // (n_batch, n_head_kv * head_dim) values of the new tokens
  float* hb_ = nullptr;      // (n_batch, n_ff) gate, then silu(gate) * up
  float* hb2_ = nullptr;     // (n_batch, n_ff) up
  float* cos_ = nullptr;     // (n_batch, n_rot/2) RoPE cos per position
  float* sin_ = nullptr;     // (n_batch, n_rot/2) RoPE sin per position
  float* scores_ = nullptr;  // (n_threads, n_ctx) attention weights, one row per thread
  float* logits_one_ = nullptr;  // (n_vocab,) logits of the last token
};

// Lays the buffers out on `cv` (a measuring Carver gives null pointers and the total size).
// `p` has n_batch already capped at n_ctx.
void carve(model_memory::Carver& cv, const Config& c, const ContextParams& p, const ContextPlan& plan, LlamaBuffers& b) {
  const size_t B = static_cast<size_t>(p.n_batch), NT = static_cast<size_t>(p.n_threads);
  b.kv_ = cv.take<uint8_t>(plan.kv_bytes);
  b.kv_layers_ = {cv.take<ops::KvLayer>(static_cast<size_t>(c.n_layer)), static_cast<size_t>(c.n_layer)};
  b.scratch_ = {cv.take<uint8_t>(plan.scratch_bytes), plan.scratch_bytes};
  b.attn_scratch_ = cv.take<uint8_t>(plan.attn_scratch_bytes * NT);
  b.thread_status_ = {cv.take<Status>(NT), NT};
  b.x_ = cv.take<float>(B * c.n_embd);
  b.xb_ = cv.take<float>(B * c.n_embd);
  b.q_ = cv.take<float>(B * c.q_dim());
  b.att_ = cv.take<float>(B * c.q_dim());
  b.k_ = cv.take<float>(B * c.kv_dim());
  b.v_ = cv.take<float>(B * c.kv_dim());
  b.hb_ = cv.take<float>(B * c.n_ff);
  b.hb2_ = cv.take<float>(B * c.n_ff);
  b.cos_ = cv.take<float>(B * (c.n_rot / 2));
  b.sin_ = cv.take<float>(B * (c.n_rot / 2));
  b.scores_ = cv.take<float>(NT * static_cast<size_t>(p.n_ctx));
  b.logits_one_ = cv.take<float>(c.n_vocab);
}

class LlamaModel final : public Model {
 public:
  LlamaModel(gguf::File file, Config config, Weights weights)
      : file_(std::move(file)), config_(std::move(config)), weights_(std::move(weights)) {}

  Status init(size_t weight_bytes, const ModelParams& params) {
    const Config& c = config_;
    info_.arch = c.arch;
    if (auto name = file_.get_string("general.name")) info_.name = std::string(*name);
    info_.n_vocab = c.n_vocab;
    info_.n_ctx_train = c.n_ctx_train;
    info_.n_embd = c.n_embd;
    info_.n_layer = c.n_layer;
    info_.n_head = c.n_head;
    info_.n_head_kv = c.n_head_kv;
    info_.head_dim = c.head_dim;
    info_.n_ff = c.n_ff;
    info_.n_rot = c.n_rot;
    info_.rope_freq_base = c.rope_base;
    info_.rms_eps = c.rms_eps;
    info_.tied_output = weights_.tied_output;
    info_.weights_bytes = weight_bytes;
    std::map<std::string, int> counts;
    for (const gguf::TensorInfo& t : file_.tensors()) {
      info_.n_params += static_cast<int64_t>(t.n_elements);
      counts[dtype_name(t.type)]++;
    }
    for (const auto& [name, n] : counts)
      info_.type_summary += (info_.type_summary.empty() ? "" : ", ") + name + ": " + std::to_string(n);

    // RoPE frequencies, with llama3 scaling from the tensor (preferred, as llama.cpp) or keys.
    inv_freq_.resize(static_cast<size_t>(c.n_rot / 2));
    std::vector<float> factors;
    const float* ff = weights_.rope_freqs;
    info_.rope_scaling = c.rope_scaling;
    if (ff != nullptr) {
      info_.rope_scaling = "llama3";
    } else if (c.rope_scaling == "llama3") {
      factors.resize(inv_freq_.size());
      ops::llama3_freq_factors(factors.data(), c.n_rot, c.rope_base, c.llama3_factor,
                               c.llama3_low_freq_factor, c.llama3_high_freq_factor, c.llama3_original_ctx);
      ff = factors.data();
    }
    ops::rope_inv_freqs(inv_freq_.data(), c.n_rot, c.rope_base, ff, c.rope_linear_scale);

    // The tokenizer, when the file has one the tokenizer component can build; otherwise nullptr
    // (ids-only use still works; Tokenizer::from_gguf(file()) reports why).
    if (file_.find("tokenizer.ggml.model")) {
      auto tok = Tokenizer::from_gguf(file_);
      if (tok) tokenizer_.emplace(std::move(*tok));
    }

    info_.interleavable_bytes = model_interleave::bytes_for(interleave_candidates());
    if (params.interleave_weights && !params.use_mlock) SLM_TRY(interleaved_.interleave(interleave_candidates(), file_));
    info_.interleaved_bytes = interleaved_.bytes();

    if (params.use_mlock && file_.size() > 0) {
      if (mlock(file_.bytes(), file_.size()) != 0)
        return errorf("mlock of %zu bytes of weights failed (raise RLIMIT_MEMLOCK or drop --mlock)", file_.size());
    }
    return Status::success();
  }

  const ModelInfo& info() const override { return info_; }
  const Tokenizer* tokenizer() const override { return tokenizer_ ? &*tokenizer_ : nullptr; }
  const gguf::File& file() const override { return file_; }

  std::string summary() const override {
    const ModelInfo& i = info_;
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "arch: %s%s%s\nparams: %.3f M, weights %.1f MiB (mapped; %.1f MiB of it interleaved at load)\ntypes: %s\n"
                  "shape: n_embd %lld, n_layer %lld, n_head %lld, n_head_kv %lld, head_dim %lld, n_ff %lld, "
                  "n_vocab %lld\nrope: %s, base %g, dims %lld, scaling %s; rms eps %g; output %s\n"
                  "training context: %lld\n",
                  i.arch.c_str(), i.name.empty() ? "" : " - ", i.name.c_str(), static_cast<double>(i.n_params) / 1e6,
                  static_cast<double>(i.weights_bytes) / (1024.0 * 1024.0),
                  static_cast<double>(i.interleaved_bytes) / (1024.0 * 1024.0), i.type_summary.c_str(),
                  static_cast<long long>(i.n_embd), static_cast<long long>(i.n_layer),
                  static_cast<long long>(i.n_head), static_cast<long long>(i.n_head_kv),
                  static_cast<long long>(i.head_dim), static_cast<long long>(i.n_ff),
                  static_cast<long long>(i.n_vocab),
                  config_.rope_style == ops::RopeStyle::NeoxHalves ? "neox halves" : "adjacent pairs",
                  i.rope_freq_base, static_cast<long long>(i.n_rot), i.rope_scaling.c_str(), i.rms_eps,
                  i.tied_output ? "tied to token_embd" : "separate", static_cast<long long>(i.n_ctx_train));
    return buf;
  }

  // No step needs more rows than the context holds.
  static ContextParams effective(ContextParams p) {
    p.n_batch = std::min(p.n_batch, p.n_ctx);
    return p;
  }

  Expected<ContextPlan> plan(const ContextParams& params) const {
    const ContextParams p = effective(params);
    SLM_TRY(model_memory::validate(p));
    const Config& c = config_;
    const size_t T = static_cast<size_t>(p.n_ctx);
    ContextPlan plan;
    const size_t elem = p.kv_type == KvType::F16 ? 2 : 4;
    plan.kv_bytes = 2 * static_cast<size_t>(c.n_layer) * T * static_cast<size_t>(c.kv_dim()) * elem;
    auto need = [&](const kernels::Matrix& m) {
      plan.scratch_bytes = std::max(plan.scratch_bytes, kernels::matmul_scratch_bytes(m.type, m.n_cols, p.n_batch));
    };
    need(weights_.output);
    plan.n_threads = p.n_threads;
    plan.attn_scratch_bytes = (ops::attention_scratch_bytes(p.kv_type == KvType::F16, c.head_dim) + 63) / 64 * 64;
    for (const Layer& L : weights_.layers) {
      for (const kernels::Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) need(*m);
    }
    model_memory::Carver measure;  // the layout the context will use, measured
    LlamaBuffers unused;
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
  // The Q4_0 and Q8_0 matrices worth copying into the kernels' interleaved layout at load
  // (model_interleave::wanted). The token embedding stays as mapped: rows are looked up from
  // it, and a tied output reads it too.
  std::vector<kernels::Matrix*> interleave_candidates() {
    std::vector<kernels::Matrix*> mats;
    for (Layer& L : weights_.layers)
      for (kernels::Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
        if (model_interleave::wanted(*m)) mats.push_back(m);
    if (!weights_.tied_output && model_interleave::wanted(weights_.output)) mats.push_back(&weights_.output);
    return mats;
  }

  model_interleave::Store interleaved_;  // the interleaved copies
  std::vector<float> inv_freq_;  // (n_rot/2,) RoPE frequency of each rotated pair
  std::optional<Tokenizer> tokenizer_;
};

// ---- Context: run state and forward pass ---------------------------------------------------

class LlamaContext final : public model_memory::ContextBase, private LlamaBuffers {
 public:
  LlamaContext(const LlamaModel& model, const ContextParams& params, const ContextPlan& plan)
      : ContextBase(params, model.config().n_vocab), model_(model), c_(model.config()), w_(model.weights()), plan_(plan) {}

  ~LlamaContext() override { std::destroy(thread_status_.begin(), thread_status_.end()); }

  // All buffers from one block (params_.arena or one allocation): no other allocation here
  // but the thread pool's, made after the arena is known to fit.
  Status init() {
    SLM_TRY(block_.init(params_, plan_.total_bytes));
    model_memory::Carver cv(block_.data());
    carve(cv, c_, params_, plan_, *this);
    std::uninitialized_default_construct(thread_status_.begin(), thread_status_.end());  // the destructor's pair
    auto pool = ThreadPool::create(params_.n_threads);
    if (!pool) return pool.error();
    pool_ = std::move(*pool);

    const size_t elem = params_.kv_type == KvType::F16 ? 2 : 4;
    const size_t layer_bytes = static_cast<size_t>(params_.n_ctx) * c_.kv_dim() * elem;
    for (size_t l = 0; l < kv_layers_.size(); ++l) {
      ops::KvLayer& kl = *new (&kv_layers_[l]) ops::KvLayer;  // the block is raw memory
      kl.f16 = params_.kv_type == KvType::F16;
      kl.k = kv_ + (2 * l) * layer_bytes;
      kl.v = kv_ + (2 * l + 1) * layer_bytes;
      kl.kv_dim = c_.kv_dim();
    }
    return Status::success();
  }

  const Model& model() const override { return model_; }
  const float* last_token_logits() const override { return logits_one_; }
  size_t kv_cache_bytes() const override { return plan_.kv_bytes; }
  size_t memory_bytes() const override { return plan_.total(); }

 private:
  Status matmul(const kernels::Matrix& w, const float* x, int64_t ldx, int64_t n, float* y, int64_t ldy) {
    return kernels::matmul(isa(), w, x, ldx, n, y, ldy, scratch_.data(), scratch_.size(), pool_.get());
  }

  // One step over `tokens` (<= n_batch) at positions n_past_.. ; `first` is the index of
  // tokens[0] in the eval call (for all_logits); `last_chunk` computes logits.
  Status forward(std::span<const int32_t> tokens, int64_t first, bool last_chunk) override {
    const Config& c = c_;
    const int64_t T = static_cast<int64_t>(tokens.size());
    const int64_t E = c.n_embd, Q = c.q_dim(), KV = c.kv_dim(), F = c.n_ff, half = c.n_rot / 2;
    const int64_t pos0 = n_past_;

    // Embedding and the RoPE angles of each position (shared by all layers).
    for (int64_t t = 0; t < T; ++t) {
      const kernels::Matrix& te = w_.token_embd;
      SLM_TRY(ops::get_row(te.type, te.data, te.row_stride, te.n_rows, E, tokens[t], x_ + t * E));
      ops::rope_cos_sin(cos_ + t * half, sin_ + t * half, model_.inv_freq().data(), c.n_rot, pos0 + t);
    }

    const ops::AttentionShape shape{c.n_head, c.n_head_kv, c.head_dim,
                                    static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)))};
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const Layer& L = w_.layers[static_cast<size_t>(l)];
      const ops::KvLayer& kv = kv_layers_[static_cast<size_t>(l)];

      // Attention block.
      for (int64_t t = 0; t < T; ++t) ops::rmsnorm(isa(), xb_ + t * E, x_ + t * E, L.attn_norm, E, c.rms_eps);
      SLM_TRY(matmul(L.wq, xb_, E, T, q_, Q));
      SLM_TRY(matmul(L.wk, xb_, E, T, k_, KV));
      SLM_TRY(matmul(L.wv, xb_, E, T, v_, KV));
      for (int64_t t = 0; t < T; ++t) {
        if (L.bq) ops::add(isa(), q_ + t * Q, L.bq, Q);
        if (L.bk) ops::add(isa(), k_ + t * KV, L.bk, KV);
        if (L.bv) ops::add(isa(), v_ + t * KV, L.bv, KV);
        ops::rope(isa(), q_ + t * Q, c.n_head, c.head_dim, c.n_rot, cos_ + t * half, sin_ + t * half, c.rope_style);
        ops::rope(isa(), k_ + t * KV, c.n_head_kv, c.head_dim, c.n_rot, cos_ + t * half, sin_ + t * half, c.rope_style);
        ops::kv_store(isa(), kv, pos0 + t, k_ + t * KV, v_ + t * KV);
      }
      const int64_t items = T * c.n_head;
      auto attend = [&](int i, int n) {
        long b, e;
        split_range(static_cast<long>(items), i, n, &b, &e);
        thread_status_[static_cast<size_t>(i)] =
            ops::attention(isa(), shape, kv, q_, Q, att_, Q, pos0, T, b, e, scores_ + static_cast<size_t>(i) * params_.n_ctx,
                           attn_scratch_ + static_cast<size_t>(i) * plan_.attn_scratch_bytes,
                           plan_.attn_scratch_bytes);
      };
      if (pool_) pool_->run(attend); else attend(0, 1);
      for (const Status& st : thread_status_) SLM_TRY(st);
      SLM_TRY(matmul(L.wo, att_, Q, T, xb_, E));
      for (int64_t t = 0; t < T; ++t) ops::add(isa(), x_ + t * E, xb_ + t * E, E);

      // SwiGLU feed-forward block.
      for (int64_t t = 0; t < T; ++t) ops::rmsnorm(isa(), xb_ + t * E, x_ + t * E, L.ffn_norm, E, c.rms_eps);
      SLM_TRY(matmul(L.w_gate, xb_, E, T, hb_, F));
      SLM_TRY(matmul(L.w_up, xb_, E, T, hb2_, F));
      for (int64_t t = 0; t < T; ++t) ops::silu_mul(isa(), hb_ + t * F, hb2_ + t * F, F);
      SLM_TRY(matmul(L.w_down, hb_, F, T, xb_, E));
      for (int64_t t = 0; t < T; ++t) ops::add(isa(), x_ + t * E, xb_ + t * E, E);
    }
    n_past_ += static_cast<int>(T);
    last_eval_size_ = static_cast<int>(first + T);

    // Final norm and LM head: every token with all_logits, else only the last one.
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

  const LlamaModel& model_;
  const Config& c_;
  const Weights& w_;
  ContextPlan plan_;
  std::unique_ptr<ThreadPool> pool_;
  model_memory::Block block_;  // holds every buffer of LlamaBuffers
};

Expected<std::unique_ptr<Context>> LlamaModel::create_context(const ContextParams& requested) const {
  auto p = plan(requested);
  const ContextParams params = effective(requested);
  if (!p) return p.error();
  auto ctx = std::make_unique<LlamaContext>(*this, params, *p);
  SLM_TRY(ctx->init());
  return std::unique_ptr<Context>(std::move(ctx));
}

}  // namespace

Expected<std::unique_ptr<Model>> load(gguf::File file, const ModelParams& params) {
  auto config = read_config(file);
  if (!config) return config.error();
  auto weights = bind_weights(file, *config);
  if (!weights) return weights.error();
  size_t bytes = 0;
  for (const gguf::TensorInfo& t : file.tensors()) bytes += t.n_bytes;
  auto model = std::make_unique<LlamaModel>(std::move(file), std::move(*config), std::move(*weights));
  SLM_TRY(model->init(bytes, params));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace slm::llama
