// The C ABI (include/slm/slm.h) over the C++ library: handles, status codes and messages, and the
// generation loop. Every exported function catches everything at the boundary; nothing thrown
// inside the library (std::bad_alloc included) crosses into C.
#include "slm/slm.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "capi/text_stream.hpp"
#include "slm/chat.hpp"
#include "slm/cpu.hpp"
#include "slm/gguf.hpp"
#include "slm/model.hpp"
#include "slm/tokenizer.hpp"

// ---- Handles ---------------------------------------------------------------------------------

struct slm_model {
  std::unique_ptr<slm::Model> model;
  std::optional<slm::Tokenizer> tokenizer;  // absent when the file has no vocabulary
  std::string tokenizer_error;              // why it is absent
  std::optional<slm::ChatTemplate> chat;    // the model's own template, when recognised
  std::string info_name;
  size_t max_token_bytes = 0;               // longest token text: sizes the generation buffers
  size_t heap_estimate = 0;
};

struct slm_context {
  const slm_model* owner = nullptr;
  std::unique_ptr<slm::Context> ctx;
  std::unique_ptr<slm::Sampler> sampler;
  slm_context_params params{};
  std::atomic<bool> cancel{false};
  std::string error;  // reserved at creation; message of the last failure
  slm::capi::TextStream stream;
  size_t memory_bytes = 0;
  bool have_logits = false;
};

namespace {

using slm::capi::TextStream;

thread_local std::string g_last_error;

// ---- Status and messages ---------------------------------------------------------------------

slm_status fail(slm_status s, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
slm_status fail(slm_status s, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  try {
    g_last_error = buf;
  } catch (...) {
  }
  return s;
}

void log_to(const slm_context* c, slm_log_level level, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void log_to(const slm_context* c, slm_log_level level, const char* fmt, ...) {
  if (c == nullptr || c->params.log_fn == nullptr || level > c->params.log_level) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  c->params.log_fn(c->params.log_user_data, level, buf);
}

slm_status ctx_fail(slm_context* c, slm_status s, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
slm_status ctx_fail(slm_context* c, slm_status s, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  try {
    c->error = buf;  // capacity reserved at creation: short messages do not allocate
  } catch (...) {
  }
  log_to(c, SLM_LOG_ERROR, "%s", buf);
  return s;
}

// Runs `body` and turns anything thrown into a status: the boundary no exception crosses.
template <class Fn>
slm_status guarded(slm_context* c, const char* what, Fn&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    if (c) return ctx_fail(c, SLM_ERR_NO_MEMORY, "%s: out of memory", what);
    return fail(SLM_ERR_NO_MEMORY, "%s: out of memory", what);
  } catch (const std::exception& e) {
    if (c) return ctx_fail(c, SLM_ERR_INTERNAL, "%s: internal error: %s", what, e.what());
    return fail(SLM_ERR_INTERNAL, "%s: internal error: %s", what, e.what());
  } catch (...) {
    if (c) return ctx_fail(c, SLM_ERR_INTERNAL, "%s: internal error", what);
    return fail(SLM_ERR_INTERNAL, "%s: internal error", what);
  }
}

// A parameter struct from a caller compiled against this header or an older one: fields past
// the caller's struct_size keep their defaults.
template <class T>
bool read_params(const T* in, T* out, const T& defaults) {
  *out = defaults;
  if (in == nullptr) return true;
  if (in->struct_size < sizeof(uint32_t) || in->struct_size > sizeof(T)) return false;
  std::memcpy(static_cast<void*>(out), in, in->struct_size);
  out->struct_size = sizeof(T);
  return true;
}

slm::ContextParams to_cpp(const slm_context_params& p) {
  slm::ContextParams cp;
  cp.n_ctx = p.n_ctx;
  cp.n_batch = p.n_batch;
  cp.n_threads = p.n_threads;
  cp.kv_type = p.kv_type == SLM_KV_F32 ? slm::KvType::F32 : slm::KvType::F16;
  cp.arena = p.arena;  // NULL (and arena_bytes 0) for callers built before the fields existed
  cp.arena_bytes = p.arena_bytes;
  if (p.isa != nullptr) {
    if (auto level = slm::parse_isa_level(p.isa)) cp.isa = *level;  // checked by check_context_params
  }
  return cp;
}

slm::SamplerParams to_cpp(const slm_sampler_params& p) {
  slm::SamplerParams sp;
  sp.temperature = p.temperature;
  sp.top_k = p.top_k;
  sp.top_p = p.top_p;
  sp.min_p = p.min_p;
  sp.repeat_penalty = p.repeat_penalty;
  sp.repeat_last_n = p.repeat_last_n;
  sp.presence_penalty = p.presence_penalty;
  sp.seed = p.seed;
  return sp;
}

const char* check_sampler(const slm_sampler_params& p) {
  if (!(p.temperature == p.temperature)) return "sampler.temperature is NaN";
  if (p.top_k < 0) return "sampler.top_k must be >= 0";
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return "sampler.top_p must be in (0, 1]";
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return "sampler.min_p must be in [0, 1]";
  if (!(p.repeat_penalty > 0.0f)) return "sampler.repeat_penalty must be > 0";
  if (p.repeat_last_n < 0 || p.repeat_last_n > (1 << 20)) return "sampler.repeat_last_n must be in [0, 2^20]";
  if (!(p.presence_penalty == p.presence_penalty)) return "sampler.presence_penalty is NaN";
  return nullptr;
}

const char* check_context_params(const slm_context_params& p) {
  if (p.n_ctx <= 0) return "n_ctx must be positive";
  if (p.n_batch <= 0) return "n_batch must be positive";
  if (p.n_threads <= 0 || p.n_threads > 1024) return "n_threads must be in [1, 1024]";
  if (p.kv_type != SLM_KV_F16 && p.kv_type != SLM_KV_F32) return "kv_type must be SLM_KV_F16 or SLM_KV_F32";
  if (p.log_level < SLM_LOG_ERROR || p.log_level > SLM_LOG_DEBUG) return "log_level must be an slm_log_level";
  if (p.isa != nullptr && !slm::parse_isa_level(p.isa).ok())
    return "isa must be NULL or a kernel level name (scalar, avx2, avx512, avx512vnni, amx, neon, neon-dotprod)";
  return check_sampler(p.sampler);
}

// ---- Memory estimates ------------------------------------------------------------------------

// Heap a loaded tokenizer and chat template take, bounded from the vocabulary's metadata: each
// token is held as its vocabulary string, its bytes and hash-map entries (~10x the text and
// ~200 bytes of node/bucket overhead, measured ~6x / ~130 B on the test vocabularies), merges
// likewise; plus a fixed allowance for tables and the template.
size_t model_heap_estimate(const slm::gguf::File& f) {
  size_t text = 0, items = 0;
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"}) {
    auto arr = f.get_string_array(key);
    if (!arr) continue;
    items += arr->size();
    for (std::string_view s : *arr) text += s.size();
  }
  size_t tmpl = 0;
  if (auto t = f.get_string("tokenizer.chat_template")) tmpl = t->size();
  return 10 * text + 200 * items + 2 * tmpl + (256u << 10);
}

// What the C layer adds to a context: the sampler's n_vocab buffers and the text stream.
size_t capi_context_bytes(int64_t n_vocab, const slm_context_params& p, size_t max_token_bytes) {
  const size_t V = static_cast<size_t>(n_vocab);
  return V * (sizeof(std::pair<float, int32_t>) + sizeof(float) + 1) +
         static_cast<size_t>(p.sampler.repeat_last_n) * sizeof(int32_t) + TextStream::bytes_for(max_token_bytes) +
         1024 /* error message */ + sizeof(slm_context);
}

size_t max_token_bytes_of(const slm::gguf::File& f) {
  size_t m = 16;
  if (auto arr = f.get_string_array("tokenizer.ggml.tokens"))
    for (std::string_view s : *arr) m = std::max(m, s.size());
  return m;
}

// interleaved: bytes of weights the model copies (or would copy) into the kernels' interleaved
// layout at load: heap instead of mapped pages (ModelParams::interleave_weights).
slm_status estimate(const slm::gguf::File& file, const slm::Model& model, const slm_context_params& cp,
                    size_t heap, size_t max_token_bytes, size_t interleaved, slm_memory_estimate* out) {
  const slm::ContextParams p = to_cpp(cp);
  const size_t ctx_bytes = model.context_memory_required(p);
  if (ctx_bytes == 0) return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: context parameters rejected by the model");
  const slm::ModelInfo& info = model.info();
  const size_t elem = p.kv_type == slm::KvType::F32 ? 4 : 2;
  out->weights_bytes = file.size() - std::min(file.size(), interleaved);
  out->model_bytes = heap + interleaved;
  out->kv_bytes = 2 * static_cast<size_t>(info.n_layer) * static_cast<size_t>(p.n_ctx) *
                  static_cast<size_t>(info.n_head_kv * info.head_dim) * elem;
  if (info.arch == "deepseek2") {
    // MLA caches one compressed latent + the shared RoPE key per token per layer (issue 9: this
    // was reported as 0). Key names as in deepseek2::read_config.
    const auto& f = model.file();
    const auto lora = f.get_uint("deepseek2.attention.kv_lora_rank");
    const auto rope = f.get_uint("deepseek2.rope.dimension_count");
    out->kv_bytes = lora && rope ? static_cast<size_t>(info.n_layer) * static_cast<size_t>(*lora + *rope) *
                                       static_cast<size_t>(p.n_ctx) * elem
                                 : 0;
  } else if (info.arch != "llama" && info.arch != "qwen2") {
    out->kv_bytes = 0;  // other layouts: in context_bytes only
  }
  out->context_bytes = ctx_bytes + capi_context_bytes(info.n_vocab, cp, max_token_bytes);
  out->total_bytes = out->weights_bytes + out->model_bytes + out->context_bytes;
  return SLM_OK;
}

// What loading with these params would copy into the interleaved layout (see estimate).
size_t would_interleave(const slm_model_params& mp, const slm::Model& model) {
  return mp.interleave_weights != 0 && mp.use_mlock == 0 ? model.info().interleavable_bytes : 0;
}

bool file_readable(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

slm_status open_file(const char* path, const void* data, size_t size, std::optional<slm::gguf::File>* out) {
  if (path != nullptr) {
    if (!file_readable(path)) return fail(SLM_ERR_IO, "%s: cannot open: %s", path, std::strerror(errno));
    auto f = slm::gguf::File::open(path);
    if (!f) return fail(SLM_ERR_FORMAT, "%s: %s", path, f.error().message.c_str());
    out->emplace(std::move(*f));
    return SLM_OK;
  }
  if (data == nullptr || size == 0) return fail(SLM_ERR_INVALID_ARGUMENT, "model buffer: data is NULL or size is 0");
  auto f = slm::gguf::File::from_buffer(data, size);
  if (!f) return fail(SLM_ERR_FORMAT, "model buffer: %s", f.error().message.c_str());
  out->emplace(std::move(*f));
  return SLM_OK;
}

slm_status load(const char* path, const void* data, size_t size, const slm_model_params* params, slm_model** out) {
  if (out == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "load: out is NULL");
  *out = nullptr;
  slm_model_params mp;
  if (!read_params(params, &mp, slm_model_default_params()))
    return fail(SLM_ERR_INVALID_ARGUMENT, "load: params->struct_size %u is not a valid slm_model_params size",
                params->struct_size);
  std::optional<slm::gguf::File> file;
  if (slm_status s = open_file(path, data, size, &file); s != SLM_OK) return s;
  const char* where = path ? path : "model buffer";
  auto m = std::make_unique<slm_model>();
  m->heap_estimate = model_heap_estimate(*file);
  m->max_token_bytes = max_token_bytes_of(*file);
  slm::ModelParams cpp;
  cpp.use_mlock = mp.use_mlock != 0;
  cpp.interleave_weights = mp.interleave_weights != 0;
  auto model = slm::Model::from_file(std::move(*file), cpp);
  if (!model) {
    const bool mlock_failed = model.error().message.find("mlock") != std::string::npos;
    return fail(mlock_failed ? SLM_ERR_NO_MEMORY : SLM_ERR_FORMAT, "%s: %s", where, model.error().message.c_str());
  }
  m->model = std::move(*model);
  if (m->model->file().find("tokenizer.ggml.tokens") != nullptr) {
    auto tok = slm::Tokenizer::from_gguf(m->model->file());
    if (!tok) return fail(SLM_ERR_FORMAT, "%s: tokenizer: %s", where, tok.error().message.c_str());
    m->tokenizer.emplace(std::move(*tok));
    if (!m->tokenizer->chat_template().empty()) {
      auto t = slm::ChatTemplate::for_tokenizer(*m->tokenizer);
      if (t) m->chat.emplace(std::move(*t));
    }
  } else {
    m->tokenizer_error = "the model file has no vocabulary (tokenizer.ggml.tokens)";
  }
  *out = m.release();
  return SLM_OK;
}

const slm::Tokenizer* need_tokenizer(const slm_model* m, const char* what) {
  if (m == nullptr) {
    fail(SLM_ERR_INVALID_ARGUMENT, "%s: model is NULL", what);
    return nullptr;
  }
  if (!m->tokenizer) {
    fail(SLM_ERR_INVALID_ARGUMENT, "%s: %s", what, m->tokenizer_error.c_str());
    return nullptr;
  }
  return &*m->tokenizer;
}

slm_status write_out(const void* src, size_t n, size_t elem, void* dst, size_t capacity, size_t* n_out,
                     const char* what) {
  if (n_out != nullptr) *n_out = n;
  if (n > capacity) return fail(SLM_ERR_BUFFER_TOO_SMALL, "%s: %zu items needed, capacity %zu", what, n, capacity);
  if (n > 0) {
    if (dst == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "%s: output buffer is NULL", what);
    std::memcpy(dst, src, n * elem);
  }
  return SLM_OK;
}

slm_status chat_template(const slm_model* m, const char* name, std::optional<slm::ChatTemplate>* out,
                         const char* what) {
  if (name == nullptr || name[0] == '\0') {
    if (!m->chat)
      return fail(SLM_ERR_INVALID_ARGUMENT, "%s: the model has no recognised chat template; name one", what);
    out->emplace(*m->chat);
    return SLM_OK;
  }
  auto t = slm::ChatTemplate::for_tokenizer(*m->tokenizer, name);
  if (!t) return fail(SLM_ERR_INVALID_ARGUMENT, "%s: %s", what, t.error().message.c_str());
  out->emplace(std::move(*t));
  return SLM_OK;
}

slm_status messages_of(const slm_chat_message* msgs, size_t n, std::vector<slm::ChatMessage>* out, const char* what) {
  if (msgs == nullptr && n > 0) return fail(SLM_ERR_INVALID_ARGUMENT, "%s: messages is NULL", what);
  for (size_t i = 0; i < n; ++i) {
    if (msgs[i].role == nullptr || msgs[i].content == nullptr)
      return fail(SLM_ERR_INVALID_ARGUMENT, "%s: message %zu has a NULL role or content", what, i);
    out->push_back({msgs[i].role, msgs[i].content});
  }
  return SLM_OK;
}

// One evaluation of up to n_batch tokens per step, checking the cancel flag between steps.
slm_status eval_tokens(slm_context* c, const int32_t* tokens, size_t n, const char* what) {
  if (tokens == nullptr && n > 0) return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "%s: tokens is NULL", what);
  if (n == 0) return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "%s: no tokens", what);
  const int64_t n_vocab = c->owner->model->info().n_vocab;
  for (size_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= n_vocab)
      return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "%s: token %d (index %zu) outside the vocabulary [0, %lld)", what,
                      tokens[i], i, static_cast<long long>(n_vocab));
  if (static_cast<size_t>(c->ctx->n_past()) + n > static_cast<size_t>(c->ctx->n_ctx()))
    return ctx_fail(c, SLM_ERR_CONTEXT_FULL, "%s: %zu tokens at position %d exceed n_ctx %d", what, n,
                    c->ctx->n_past(), c->ctx->n_ctx());
  const size_t step = static_cast<size_t>(c->params.n_batch);
  for (size_t start = 0; start < n; start += step) {
    if (c->cancel.load(std::memory_order_relaxed)) {
      c->have_logits = false;
      return ctx_fail(c, SLM_ERR_CANCELLED, "%s: cancelled after %zu of %zu tokens", what, start, n);
    }
    const size_t len = std::min(step, n - start);
    slm::Status s = c->ctx->eval({tokens + start, len});
    if (!s) {
      c->have_logits = false;
      return ctx_fail(c, SLM_ERR_INTERNAL, "%s: %s", what, s.message().c_str());
    }
  }
  c->have_logits = true;
  return SLM_OK;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ---- Versions, status, ISA -------------------------------------------------------------------

extern "C" {

uint32_t slm_abi_version(void) { return SLM_ABI_VERSION; }
const char* slm_version_string(void) { return SLM_VERSION_STRING; }

const char* slm_status_name(slm_status s) {
  switch (s) {
    case SLM_OK: return "ok";
    case SLM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case SLM_ERR_IO: return "i/o error";
    case SLM_ERR_FORMAT: return "bad model file";
    case SLM_ERR_NO_MEMORY: return "out of memory";
    case SLM_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case SLM_ERR_CONTEXT_FULL: return "context full";
    case SLM_ERR_CANCELLED: return "cancelled";
    case SLM_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* slm_last_error(void) { return g_last_error.c_str(); }

const char* slm_isa_level(void) {
  try {
    return slm::isa_level_name(slm::default_isa_level());
  } catch (...) {
    return "scalar";
  }
}

// ---- Models ----------------------------------------------------------------------------------

slm_model_params slm_model_default_params(void) {
  slm_model_params p{};
  p.struct_size = sizeof p;
  p.interleave_weights = 1;
  return p;
}

slm_status slm_model_load_file(const char* path, const slm_model_params* params, slm_model** out) {
  return guarded(nullptr, "load", [&] {
    if (path == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "load: path is NULL");
    return load(path, nullptr, 0, params, out);
  });
}

slm_status slm_model_load_buffer(const void* data, size_t size, const slm_model_params* params, slm_model** out) {
  return guarded(nullptr, "load", [&] { return load(nullptr, data, size, params, out); });
}

void slm_model_free(slm_model* model) { delete model; }

slm_status slm_model_get_info(const slm_model* m, slm_model_info* out) {
  return guarded(nullptr, "model info", [&] {
    if (m == nullptr || out == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "model info: NULL argument");
    const slm::ModelInfo& i = m->model->info();
    *out = slm_model_info{};
    out->arch = i.arch.c_str();
    out->name = i.name.c_str();
    out->n_params = i.n_params;
    out->n_vocab = i.n_vocab;
    out->n_ctx_train = i.n_ctx_train;
    out->n_embd = i.n_embd;
    out->n_layer = i.n_layer;
    out->weights_bytes = i.weights_bytes;
    out->bos = m->tokenizer ? m->tokenizer->bos() : -1;
    out->eos = m->tokenizer ? m->tokenizer->eos() : -1;
    out->chat_template = m->chat ? m->chat->name().c_str() : "";
    return SLM_OK;
  });
}

// ---- Contexts --------------------------------------------------------------------------------

slm_sampler_params slm_sampler_default_params(void) {
  const slm::SamplerParams d;
  slm_sampler_params p{};
  p.temperature = d.temperature;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.min_p = d.min_p;
  p.repeat_penalty = d.repeat_penalty;
  p.repeat_last_n = d.repeat_last_n;
  p.presence_penalty = d.presence_penalty;
  p.seed = d.seed;
  return p;
}

slm_context_params slm_context_default_params(void) {
  const slm::ContextParams d;
  slm_context_params p{};
  p.struct_size = sizeof p;
  p.n_ctx = d.n_ctx;
  p.n_batch = d.n_batch;
  p.n_threads = d.n_threads;
  p.kv_type = SLM_KV_F16;
  p.sampler = slm_sampler_default_params();
  p.log_level = SLM_LOG_WARN;
  return p;
}

slm_status slm_memory_required(const char* path, const slm_model_params* model_params,
                               const slm_context_params* context_params, slm_memory_estimate* out) {
  return guarded(nullptr, "memory required", [&] {
    if (path == nullptr || out == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: NULL argument");
    slm_context_params cp;
    if (!read_params(context_params, &cp, slm_context_default_params()))
      return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: bad context_params->struct_size");
    if (const char* bad = check_context_params(cp)) return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: %s", bad);
    slm_model_params mp;
    if (!read_params(model_params, &mp, slm_model_default_params()))
      return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: bad model_params->struct_size");
    std::optional<slm::gguf::File> file;
    if (slm_status s = open_file(path, nullptr, 0, &file); s != SLM_OK) return s;
    const size_t heap = model_heap_estimate(*file), mtb = max_token_bytes_of(*file);
    slm::ModelParams no_copy;
    no_copy.interleave_weights = false;
    auto model = slm::Model::from_file(std::move(*file), no_copy);  // binds pointers only: nothing copied
    if (!model) return fail(SLM_ERR_FORMAT, "%s: %s", path, model.error().message.c_str());
    return estimate((*model)->file(), **model, cp, heap, mtb, would_interleave(mp, **model), out);
  });
}

slm_status slm_memory_required_buffer(const void* data, size_t size, const slm_model_params* model_params,
                                      const slm_context_params* context_params, slm_memory_estimate* out) {
  return guarded(nullptr, "memory required", [&] {
    if (out == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: out is NULL");
    slm_context_params cp;
    if (!read_params(context_params, &cp, slm_context_default_params()))
      return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: bad context_params->struct_size");
    if (const char* bad = check_context_params(cp)) return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: %s", bad);
    slm_model_params mp;
    if (!read_params(model_params, &mp, slm_model_default_params()))
      return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: bad model_params->struct_size");
    std::optional<slm::gguf::File> file;
    if (slm_status s = open_file(nullptr, data, size, &file); s != SLM_OK) return s;
    const size_t heap = model_heap_estimate(*file), mtb = max_token_bytes_of(*file);
    slm::ModelParams no_copy;
    no_copy.interleave_weights = false;
    auto model = slm::Model::from_file(std::move(*file), no_copy);
    if (!model) return fail(SLM_ERR_FORMAT, "model buffer: %s", model.error().message.c_str());
    return estimate((*model)->file(), **model, cp, heap, mtb, would_interleave(mp, **model), out);
  });
}

slm_status slm_model_memory_required(const slm_model* m, const slm_context_params* context_params,
                                     slm_memory_estimate* out) {
  return guarded(nullptr, "memory required", [&] {
    if (m == nullptr || out == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: NULL argument");
    slm_context_params cp;
    if (!read_params(context_params, &cp, slm_context_default_params()))
      return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: bad context_params->struct_size");
    if (const char* bad = check_context_params(cp)) return fail(SLM_ERR_INVALID_ARGUMENT, "memory required: %s", bad);
    return estimate(m->model->file(), *m->model, cp, m->heap_estimate, m->max_token_bytes,
                    m->model->info().interleaved_bytes, out);
  });
}

size_t slm_context_arena_bytes(const slm_model* m, const slm_context_params* context_params) {
  if (m == nullptr) return 0;
  slm_context_params cp;
  if (!read_params(context_params, &cp, slm_context_default_params())) return 0;
  if (check_context_params(cp) != nullptr) return 0;
  try {
    return m->model->context_memory_required(to_cpp(cp));
  } catch (...) {
    return 0;
  }
}

slm_status slm_context_create(const slm_model* m, const slm_context_params* params, slm_context** out) {
  return guarded(nullptr, "context create", [&] {
    if (m == nullptr || out == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "context create: NULL argument");
    *out = nullptr;
    auto c = std::make_unique<slm_context>();
    if (!read_params(params, &c->params, slm_context_default_params()))
      return fail(SLM_ERR_INVALID_ARGUMENT, "context create: params->struct_size %u is not a valid size",
                  params->struct_size);
    if (const char* bad = check_context_params(c->params)) return fail(SLM_ERR_INVALID_ARGUMENT, "context create: %s", bad);
    c->owner = m;
    c->error.reserve(1024);
    const slm::ContextParams cpp_params = to_cpp(c->params);
    auto ctx = m->model->create_context(cpp_params);
    if (!ctx) return fail(SLM_ERR_INVALID_ARGUMENT, "context create: %s", ctx.error().message.c_str());
    // The caller's isa string need not outlive this call: keep the library's own name for it.
    const char* isa_name = slm::isa_level_name(cpp_params.isa ? *cpp_params.isa : slm::default_isa_level());
    c->params.isa = cpp_params.isa ? isa_name : nullptr;
    c->ctx = std::move(*ctx);
    c->sampler = std::make_unique<slm::Sampler>(to_cpp(c->params.sampler), m->model->info().n_vocab);
    c->stream.init(m->max_token_bytes);
    c->memory_bytes = c->ctx->memory_bytes() + capi_context_bytes(m->model->info().n_vocab, c->params, m->max_token_bytes);
    log_to(c.get(), SLM_LOG_INFO, "context: n_ctx %d, n_batch %d, %d threads, isa %s, %.1f MiB (KV %.1f MiB)",
           c->params.n_ctx, c->params.n_batch, c->params.n_threads, isa_name,
           static_cast<double>(c->memory_bytes) / 1048576.0, static_cast<double>(c->ctx->kv_cache_bytes()) / 1048576.0);
    *out = c.release();
    return SLM_OK;
  });
}

void slm_context_free(slm_context* ctx) { delete ctx; }

const char* slm_context_error(const slm_context* ctx) { return ctx ? ctx->error.c_str() : "context is NULL"; }
int32_t slm_context_n_past(const slm_context* ctx) { return ctx ? ctx->ctx->n_past() : 0; }
int32_t slm_context_n_ctx(const slm_context* ctx) { return ctx ? ctx->ctx->n_ctx() : 0; }
int32_t slm_context_n_threads(const slm_context* ctx) { return ctx ? ctx->params.n_threads : 0; }
size_t slm_context_memory_bytes(const slm_context* ctx) { return ctx ? ctx->memory_bytes : 0; }
const slm_model* slm_context_model(const slm_context* ctx) { return ctx ? ctx->owner : nullptr; }

slm_status slm_context_reset(slm_context* c) {
  if (c == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "reset: context is NULL");
  return guarded(c, "reset", [&] {
    c->ctx->reset();
    c->sampler->reset();
    c->have_logits = false;
    c->error.clear();
    return SLM_OK;
  });
}

slm_status slm_context_set_sampler(slm_context* c, const slm_sampler_params* params) {
  if (c == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "set sampler: context is NULL");
  return guarded(c, "set sampler", [&] {
    if (params == nullptr) return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "set sampler: params is NULL");
    if (const char* bad = check_sampler(*params)) return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "set sampler: %s", bad);
    c->sampler = std::make_unique<slm::Sampler>(to_cpp(*params), c->owner->model->info().n_vocab);
    c->params.sampler = *params;
    return SLM_OK;
  });
}

void slm_context_cancel(slm_context* ctx) {
  if (ctx) ctx->cancel.store(true, std::memory_order_relaxed);
}
void slm_context_clear_cancel(slm_context* ctx) {
  if (ctx) ctx->cancel.store(false, std::memory_order_relaxed);
}

// ---- Tokens and text -------------------------------------------------------------------------

slm_status slm_tokenize(const slm_model* m, const char* text, size_t text_len, int32_t add_bos, int32_t parse_special,
                        int32_t* tokens, size_t capacity, size_t* n_out) {
  return guarded(nullptr, "tokenize", [&] {
    const slm::Tokenizer* tok = need_tokenizer(m, "tokenize");
    if (tok == nullptr) return SLM_ERR_INVALID_ARGUMENT;
    if (text == nullptr && text_len > 0) return fail(SLM_ERR_INVALID_ARGUMENT, "tokenize: text is NULL");
    slm::EncodeOptions o;
    o.add_bos = add_bos != 0;
    o.parse_special = parse_special != 0;
    auto ids = tok->encode(std::string_view(text ? text : "", text_len), o);
    if (!ids) return fail(SLM_ERR_INVALID_ARGUMENT, "tokenize: %s", ids.error().message.c_str());
    return write_out(ids->data(), ids->size(), sizeof(int32_t), tokens, capacity, n_out, "tokenize");
  });
}

slm_status slm_detokenize(const slm_model* m, const int32_t* tokens, size_t n_tokens, int32_t skip_special, char* text,
                          size_t capacity, size_t* n_out) {
  return guarded(nullptr, "detokenize", [&] {
    const slm::Tokenizer* tok = need_tokenizer(m, "detokenize");
    if (tok == nullptr) return SLM_ERR_INVALID_ARGUMENT;
    if (tokens == nullptr && n_tokens > 0) return fail(SLM_ERR_INVALID_ARGUMENT, "detokenize: tokens is NULL");
    for (size_t i = 0; i < n_tokens; ++i)
      if (tokens[i] < 0 || tokens[i] >= tok->n_vocab())
        return fail(SLM_ERR_INVALID_ARGUMENT, "detokenize: token %d (index %zu) outside the vocabulary [0, %d)",
                    tokens[i], i, tok->n_vocab());
    slm::DecodeOptions o;
    o.skip_special = skip_special != 0;
    const std::string s = tok->decode({tokens, n_tokens}, o);
    return write_out(s.data(), s.size(), 1, text, capacity, n_out, "detokenize");
  });
}

int32_t slm_token_is_eog(const slm_model* m, int32_t token) {
  if (m == nullptr || !m->tokenizer) return 0;
  return m->tokenizer->is_end_of_generation(token) ? 1 : 0;
}

slm_status slm_chat_apply(const slm_model* m, const char* template_name, const slm_chat_message* messages,
                          size_t n_messages, int32_t add_generation_prompt, char* text, size_t capacity, size_t* n_out) {
  return guarded(nullptr, "chat", [&] {
    if (need_tokenizer(m, "chat") == nullptr) return SLM_ERR_INVALID_ARGUMENT;
    std::optional<slm::ChatTemplate> t;
    if (slm_status s = chat_template(m, template_name, &t, "chat"); s != SLM_OK) return s;
    std::vector<slm::ChatMessage> msgs;
    if (slm_status s = messages_of(messages, n_messages, &msgs, "chat"); s != SLM_OK) return s;
    auto r = t->render(msgs, add_generation_prompt != 0);
    if (!r) return fail(SLM_ERR_INVALID_ARGUMENT, "chat: %s", r.error().message.c_str());
    return write_out(r->data(), r->size(), 1, text, capacity, n_out, "chat");
  });
}

slm_status slm_chat_tokenize(const slm_model* m, const char* template_name, const slm_chat_message* messages,
                             size_t n_messages, int32_t add_generation_prompt, int32_t* tokens, size_t capacity,
                             size_t* n_out) {
  return guarded(nullptr, "chat", [&] {
    const slm::Tokenizer* tok = need_tokenizer(m, "chat");
    if (tok == nullptr) return SLM_ERR_INVALID_ARGUMENT;
    std::optional<slm::ChatTemplate> t;
    if (slm_status s = chat_template(m, template_name, &t, "chat"); s != SLM_OK) return s;
    std::vector<slm::ChatMessage> msgs;
    if (slm_status s = messages_of(messages, n_messages, &msgs, "chat"); s != SLM_OK) return s;
    auto ids = t->render_ids(*tok, msgs, add_generation_prompt != 0);
    if (!ids) return fail(SLM_ERR_INVALID_ARGUMENT, "chat: %s", ids.error().message.c_str());
    return write_out(ids->data(), ids->size(), sizeof(int32_t), tokens, capacity, n_out, "chat");
  });
}

int32_t slm_chat_opens_reasoning(const slm_model* m, const char* template_name) {
  try {
    if (m == nullptr || !m->tokenizer) return 0;
    std::optional<slm::ChatTemplate> t;
    if (chat_template(m, template_name, &t, "chat") != SLM_OK) return 0;
    return t->prompt_opens_reasoning() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

// ---- Evaluation and sampling -----------------------------------------------------------------

slm_status slm_prefill(slm_context* c, const int32_t* tokens, size_t n_tokens) {
  if (c == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "prefill: context is NULL");
  return guarded(c, "prefill", [&] { return eval_tokens(c, tokens, n_tokens, "prefill"); });
}

slm_status slm_decode(slm_context* c, int32_t token) {
  if (c == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "decode: context is NULL");
  return guarded(c, "decode", [&] { return eval_tokens(c, &token, 1, "decode"); });
}

slm_status slm_logits(const slm_context* c, const float** logits, size_t* n_vocab) {
  if (c == nullptr || logits == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "logits: NULL argument");
  if (!c->have_logits) return fail(SLM_ERR_INVALID_ARGUMENT, "logits: nothing evaluated since the last reset");
  std::span<const float> l = c->ctx->logits(-1);
  *logits = l.data();
  if (n_vocab) *n_vocab = l.size();
  return SLM_OK;
}

slm_status slm_sample(slm_context* c, int32_t* token) {
  if (c == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "sample: context is NULL");
  return guarded(c, "sample", [&] {
    if (token == nullptr) return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "sample: token is NULL");
    if (!c->have_logits) return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "sample: no logits (evaluate tokens first)");
    *token = c->sampler->sample(c->ctx->logits(-1));
    c->sampler->accept(*token);
    return SLM_OK;
  });
}

// ---- Generation ------------------------------------------------------------------------------

slm_generate_params slm_generate_default_params(void) {
  slm_generate_params p{};
  p.struct_size = sizeof p;
  p.max_tokens = 256;
  p.split_reasoning = 1;
  p.skip_special = 1;
  return p;
}

slm_status slm_generate(slm_context* c, const int32_t* prompt, size_t n_prompt, const slm_generate_params* params,
                        slm_generate_result* result) {
  if (c == nullptr) return fail(SLM_ERR_INVALID_ARGUMENT, "generate: context is NULL");
  return guarded(c, "generate", [&] {
    slm_generate_result r{};
    slm_generate_params gp;
    if (!read_params(params, &gp, slm_generate_default_params()))
      return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "generate: params->struct_size is not a valid size");
    if (gp.max_tokens < 0) return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "generate: max_tokens must be >= 0");
    const slm::Tokenizer* tok = c->owner->tokenizer ? &*c->owner->tokenizer : nullptr;
    auto finish = [&](slm_status s) {
      if (result) *result = r;
      log_to(c, SLM_LOG_INFO, "generate: prompt %d tokens in %.3f s, %d tokens in %.3f s (%.2f tok/s), stop %d",
             r.n_prompt, r.prefill_seconds, r.n_generated, r.decode_seconds,
             r.decode_seconds > 0 ? r.n_generated / r.decode_seconds : 0.0, r.stop_reason);
      return s;
    };

    auto t0 = std::chrono::steady_clock::now();
    if (n_prompt > 0) {
      slm_status s = eval_tokens(c, prompt, n_prompt, "generate: prompt");
      r.prefill_seconds = seconds_since(t0);
      if (s != SLM_OK) {
        if (s == SLM_ERR_CANCELLED) r.stop_reason = SLM_STOP_CANCELLED;
        return finish(s);
      }
      r.n_prompt = static_cast<int32_t>(n_prompt);
    } else if (!c->have_logits) {
      return ctx_fail(c, SLM_ERR_INVALID_ARGUMENT, "generate: empty prompt and nothing evaluated before");
    }

    TextStream& ts = c->stream;
    ts.start(gp.split_reasoning != 0, gp.starts_in_reasoning != 0);
    int32_t token = -1;
    bool stop_by_callback = false;
    auto emit = [&](const char* text, size_t len, slm_channel ch) {
      if (gp.on_token && !stop_by_callback && gp.on_token(gp.user_data, token, text, len, ch) != 0)
        stop_by_callback = true;
    };
    t0 = std::chrono::steady_clock::now();
    slm_status status = SLM_OK;
    while (true) {
      if (r.n_generated >= gp.max_tokens) { r.stop_reason = SLM_STOP_MAX_TOKENS; break; }
      if (c->cancel.load(std::memory_order_relaxed)) {
        r.stop_reason = SLM_STOP_CANCELLED;
        status = ctx_fail(c, SLM_ERR_CANCELLED, "generate: cancelled after %d tokens", r.n_generated);
        break;
      }
      token = c->sampler->sample(c->ctx->logits(-1));
      c->sampler->accept(token);
      ++r.n_generated;
      if (tok && tok->is_end_of_generation(token)) { r.stop_reason = SLM_STOP_EOG; break; }
      std::string_view piece;
      if (tok && !(gp.skip_special && tok->is_control(token))) piece = tok->token_bytes(token);
      const int n_emitted = ts.push(piece, emit);
      if (n_emitted == 0) emit("", 0, ts.channel());
      if (stop_by_callback) { r.stop_reason = SLM_STOP_CALLBACK; break; }
      if (r.n_generated >= gp.max_tokens) { r.stop_reason = SLM_STOP_MAX_TOKENS; break; }
      if (c->ctx->n_past() >= c->ctx->n_ctx()) { r.stop_reason = SLM_STOP_CONTEXT_FULL; break; }
      status = eval_tokens(c, &token, 1, "generate");
      if (status != SLM_OK) {
        if (status == SLM_ERR_CANCELLED) r.stop_reason = SLM_STOP_CANCELLED;
        break;
      }
    }
    ts.finish(emit);  // held-back text (a partial tag, an incomplete character) goes out last
    r.decode_seconds = seconds_since(t0);
    return finish(status);
  });
}

}  // extern "C"
