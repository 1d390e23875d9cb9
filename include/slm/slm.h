/* libslm's stable C ABI: load a GGUF model, create contexts, tokenize, apply the chat template,
 * prefill, decode, sample and generate -- from C or any language with a C FFI.
 *
 * Conventions
 *   - Every call that can fail returns an slm_status (SLM_OK = 0). Nothing reachable from a file,
 *     a prompt or an argument throws, asserts, aborts or exits; out-of-memory is SLM_ERR_NO_MEMORY.
 *   - The message of a failure: slm_context_error(ctx) for calls that take a context (kept until
 *     the next failing call on that context), slm_last_error() for the others (thread-local: the
 *     last failure of a context-less call on the calling thread).
 *   - Parameter structs are filled by their *_default_params() function, then changed field by
 *     field; their first member `struct_size` lets later versions add fields at the end without
 *     breaking callers compiled against this header.
 *   - Output buffers: the caller passes a buffer and its capacity; *n_out always receives the
 *     size needed. When the capacity is too small nothing past it is written and the call returns
 *     SLM_ERR_BUFFER_TOO_SMALL (call again with a buffer of *n_out). Text is UTF-8, not
 *     NUL-terminated unless stated.
 *
 * Thread safety
 *   - A model is immutable once loaded: any number of threads may call the slm_model_*, tokenize,
 *     detokenize and chat functions on one model at the same time, and create contexts on it.
 *     Free a model only after every context created on it has been freed.
 *   - A context is used by one thread at a time (the library takes no lock; use one context per
 *     thread). Several contexts on one model run in parallel, each with its own threads.
 *   - slm_context_cancel may be called from any thread, and from a signal handler (it is one
 *     atomic store).
 *   - The log callback of a context is called on the thread that made the call, never from the
 *     context's worker threads. There is no global logger and no global mutable state, except the
 *     CPU feature table filled once on first use (SLM_ISA read at that moment).
 *
 * Memory
 *   - Weights stay in a read-only map of the file (or in the caller's buffer), never copied.
 *   - All context memory (KV cache, activations, matmul scratch, sampler and generation buffers)
 *     is allocated by slm_context_create; prefill, decode, sample and generate allocate nothing.
 *     slm_memory_required tells what a model and a context will need before anything is loaded.
 */
#ifndef SLM_SLM_H
#define SLM_SLM_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define SLM_API
#elif defined(__GNUC__)
#define SLM_API __attribute__((visibility("default")))
#else
#define SLM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions and status ------------------------------------------------------------------ */

/* Incremented on any incompatible change of this header (removed or changed call or struct
 * field). Adding calls, or fields at the end of a parameter struct, keeps the version. */
#define SLM_ABI_VERSION 1

SLM_API uint32_t slm_abi_version(void);       /* SLM_ABI_VERSION of the library in use */
SLM_API const char* slm_version_string(void); /* e.g. "0.1.0" */

typedef enum slm_status {
  SLM_OK = 0,
  SLM_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, a bad size, a token outside the vocabulary */
  SLM_ERR_IO = 2,               /* a file could not be opened or mapped */
  SLM_ERR_FORMAT = 3,           /* a malformed or unsupported model file */
  SLM_ERR_NO_MEMORY = 4,        /* an allocation failed, or mlock was refused */
  SLM_ERR_BUFFER_TOO_SMALL = 5, /* *n_out says how much is needed */
  SLM_ERR_CONTEXT_FULL = 6,     /* the tokens do not fit in n_ctx (nothing was evaluated) */
  SLM_ERR_CANCELLED = 7,        /* slm_context_cancel was called */
  SLM_ERR_INTERNAL = 8          /* a bug: please report the message */
} slm_status;

SLM_API const char* slm_status_name(slm_status status); /* "ok", "invalid argument", ... */

/* Message of the last failing call without a context on this thread ("" when none). The
 * pointer stays valid until the next libslm call on this thread. */
SLM_API const char* slm_last_error(void);

/* ISA level the matmul kernels use: "scalar", "avx2", "avxvnni", "avx512", "avx512vnni", "amx",
 * "neon", "neon-dotprod" (the best this CPU and build support, lowered by the environment variable
 * SLM_ISA=<name> as read on first use). */
SLM_API const char* slm_isa_level(void);

/* ---- Logging ------------------------------------------------------------------------------ */

typedef enum slm_log_level { SLM_LOG_ERROR = 0, SLM_LOG_WARN = 1, SLM_LOG_INFO = 2, SLM_LOG_DEBUG = 3 } slm_log_level;

/* One line of text without a trailing newline, valid during the call only. */
typedef void (*slm_log_fn)(void* user_data, slm_log_level level, const char* message);

/* ---- Models ------------------------------------------------------------------------------- */

typedef struct slm_model slm_model;

typedef struct slm_model_params {
  uint32_t struct_size; /* sizeof(slm_model_params), set by slm_model_default_params */
  int32_t use_mlock;    /* lock the weights in RAM; SLM_ERR_NO_MEMORY when the OS refuses */
  /* 1 (default): copy Q4_0 and Q8_0 matrices (llama, qwen2 and deepseek2 models, experts included)
   * into the kernels' interleaved layout at load when this CPU's kernels have one and the copies
   * fit in 3/4 of physical memory (faster decoding; those bytes become private memory and their
   * mapped pages are released); 0, or use_mlock: use every tensor in place. */
  int32_t interleave_weights;
} slm_model_params;

SLM_API slm_model_params slm_model_default_params(void);

/* Maps the GGUF file at `path` read-only and validates it. */
SLM_API slm_status slm_model_load_file(const char* path, const slm_model_params* params, slm_model** out);
/* The same from a GGUF image in the caller's memory, used in place (not copied): the buffer
 * must stay valid and unchanged until slm_model_free. */
SLM_API slm_status slm_model_load_buffer(const void* data, size_t size, const slm_model_params* params,
                                         slm_model** out);
SLM_API void slm_model_free(slm_model* model); /* NULL is ignored */

typedef struct slm_model_info {
  const char* arch;       /* "llama", "qwen2", "deepseek2"; valid while the model lives */
  const char* name;       /* general.name, "" when absent */
  int64_t n_params;
  int64_t n_vocab;
  int64_t n_ctx_train;
  int64_t n_embd;
  int64_t n_layer;
  size_t weights_bytes;   /* tensor data used in place from the map */
  int32_t bos;            /* -1 when the vocabulary has none */
  int32_t eos;
  const char* chat_template; /* name of the template slm_chat_* use by default ("" when none) */
} slm_model_info;

SLM_API slm_status slm_model_get_info(const slm_model* model, slm_model_info* out);

/* ---- Contexts ----------------------------------------------------------------------------- */

typedef struct slm_context slm_context;

typedef enum slm_kv_type { SLM_KV_F16 = 0, SLM_KV_F32 = 2 } slm_kv_type;

typedef struct slm_sampler_params {
  float temperature;     /* <= 0: greedy (argmax, lowest id on ties) */
  int32_t top_k;         /* 0 = off */
  float top_p;           /* 1 = off */
  float min_p;           /* 0 = off */
  float repeat_penalty;  /* 1 = off */
  int32_t repeat_last_n;
  float presence_penalty;
  uint64_t seed;
} slm_sampler_params;

typedef struct slm_context_params {
  uint32_t struct_size; /* sizeof(slm_context_params), set by slm_context_default_params */
  int32_t n_ctx;        /* KV cache length in tokens (default 4096) */
  int32_t n_batch;      /* most tokens one forward step computes (default 512) */
  int32_t n_threads;    /* threads of this context, the caller's included (default 1) */
  int32_t kv_type;      /* slm_kv_type (default F16) */
  slm_sampler_params sampler; /* used by slm_sample and slm_generate */
  slm_log_fn log_fn;    /* NULL: silent */
  void* log_user_data;
  int32_t log_level;    /* messages up to this slm_log_level are passed (default WARN) */
  /* Optional caller memory for the context's KV cache, activations and scratch (default NULL:
   * the library allocates it). At least slm_context_arena_bytes() bytes, 64-byte aligned (e.g.
   * aligned_alloc(64, n)), owned by the caller and untouched by it until slm_context_free; bytes
   * past that size are never written. Too small or misaligned: slm_context_create fails and
   * says how many bytes are needed. The C layer's sampler, text stream and error string
   * (slm_memory_estimate.context_bytes minus the arena size) stay on the heap. */
  void* arena;
  size_t arena_bytes;
  /* Kernel level of this context's matrix products, by name as slm_isa_level() prints it
   * ("scalar", "avx2", "avxvnni", "avx512", "avx512vnni", "amx", "neon", "neon-dotprod"); NULL:
   * the best this CPU runs, or what the SLM_ISA environment variable asked for. A level this CPU
   * or build cannot run makes slm_context_create fail. */
  const char* isa;
} slm_context_params;

SLM_API slm_context_params slm_context_default_params(void);
SLM_API slm_sampler_params slm_sampler_default_params(void);

/* Memory a model and one context on it will need, computed from the file's header before
 * anything is allocated (the file is mapped to read the header, nothing else). */
typedef struct slm_memory_estimate {
  size_t weights_bytes;  /* mapped read-only (page cache, shared between processes) */
  size_t model_bytes;    /* heap of the model: tokenizer tables, RoPE tables (an upper bound), and
                          * the weights interleaved at load (slm_model_params.interleave_weights:
                          * counted here instead of in weights_bytes, their pages are released) */
  size_t kv_bytes;       /* KV cache of the context (deepseek2: the latent cache) */
  size_t context_bytes;  /* everything the context allocates, kv_bytes included */
  size_t total_bytes;    /* weights + model + context */
} slm_memory_estimate;

SLM_API slm_status slm_memory_required(const char* path, const slm_model_params* model_params,
                                       const slm_context_params* context_params, slm_memory_estimate* out);
SLM_API slm_status slm_memory_required_buffer(const void* data, size_t size, const slm_model_params* model_params,
                                              const slm_context_params* context_params, slm_memory_estimate* out);
/* The same for a loaded model (context figures only; weights/model as loaded). */
SLM_API slm_status slm_model_memory_required(const slm_model* model, const slm_context_params* context_params,
                                             slm_memory_estimate* out);

/* Size slm_context_params.arena must have for these params (0 when they are invalid): the
 * part of the context that the arena holds. */
SLM_API size_t slm_context_arena_bytes(const slm_model* model, const slm_context_params* context_params);

/* Allocates everything the context will use (see Memory above). Any number of contexts may be
 * created on one model. */
SLM_API slm_status slm_context_create(const slm_model* model, const slm_context_params* params, slm_context** out);
SLM_API void slm_context_free(slm_context* ctx); /* NULL is ignored */

/* Message of the last failing call on this context ("" when none); valid until the next call on
 * the context. */
SLM_API const char* slm_context_error(const slm_context* ctx);

SLM_API int32_t slm_context_n_past(const slm_context* ctx);    /* tokens in the KV cache */
SLM_API int32_t slm_context_n_ctx(const slm_context* ctx);
SLM_API int32_t slm_context_n_threads(const slm_context* ctx);
SLM_API size_t slm_context_memory_bytes(const slm_context* ctx); /* what create allocated */
SLM_API const slm_model* slm_context_model(const slm_context* ctx);

/* Forgets the KV cache (n_past = 0) and resets the sampler (history and seed). */
SLM_API slm_status slm_context_reset(slm_context* ctx);
/* Replaces the sampler settings (history kept; RNG reseeded). */
SLM_API slm_status slm_context_set_sampler(slm_context* ctx, const slm_sampler_params* params);

/* Asks the running (or next) prefill/decode/generate of this context to stop at the next token
 * or batch boundary; it returns SLM_ERR_CANCELLED. The flag stays set until
 * slm_context_clear_cancel. Safe from any thread and from signal handlers. */
SLM_API void slm_context_cancel(slm_context* ctx);
SLM_API void slm_context_clear_cancel(slm_context* ctx);

/* ---- Tokens and text ---------------------------------------------------------------------- */

/* Encodes UTF-8 (any bytes are accepted). add_bos: prepend BOS when the model asks for it;
 * parse_special: recognise control tokens written in the text (never do this for untrusted
 * text). */
SLM_API slm_status slm_tokenize(const slm_model* model, const char* text, size_t text_len, int32_t add_bos,
                                int32_t parse_special, int32_t* tokens, size_t capacity, size_t* n_out);
/* The bytes the tokens stand for (may be invalid UTF-8 for arbitrary ids). */
SLM_API slm_status slm_detokenize(const slm_model* model, const int32_t* tokens, size_t n_tokens,
                                  int32_t skip_special, char* text, size_t capacity, size_t* n_out);
/* 1 when the token ends generation (EOS, EOT and the family's end tokens). */
SLM_API int32_t slm_token_is_eog(const slm_model* model, int32_t token);

typedef struct slm_chat_message {
  const char* role;    /* "system", "user" or "assistant" (NUL-terminated) */
  const char* content; /* UTF-8, NUL-terminated */
} slm_chat_message;

/* Renders a conversation with a chat template: `template_name` NULL or "" uses the model's own
 * (from tokenizer.chat_template); otherwise "deepseek-r1", "deepseek-r1-nothink", "deepseek-v3",
 * "llama3", "llama2", "chatml", "qwen3". add_generation_prompt appends the assistant prefix
 * (for deepseek-r1: "<｜Assistant｜><think>\n"). */
SLM_API slm_status slm_chat_apply(const slm_model* model, const char* template_name, const slm_chat_message* messages,
                                  size_t n_messages, int32_t add_generation_prompt, char* text, size_t capacity,
                                  size_t* n_out);
/* The same, encoded: template markup may hold control tokens, message text never does. */
SLM_API slm_status slm_chat_tokenize(const slm_model* model, const char* template_name,
                                     const slm_chat_message* messages, size_t n_messages,
                                     int32_t add_generation_prompt, int32_t* tokens, size_t capacity, size_t* n_out);
/* 1 when the generation prompt of that template opens the reasoning block ("<think>\n"). */
SLM_API int32_t slm_chat_opens_reasoning(const slm_model* model, const char* template_name);

/* ---- Evaluation and sampling -------------------------------------------------------------- */

/* Evaluates tokens at positions n_past .. n_past+n-1 (split into n_batch steps; the cancel flag
 * is checked between steps). Logits of the last token are kept. */
SLM_API slm_status slm_prefill(slm_context* ctx, const int32_t* tokens, size_t n_tokens);
/* One token (the same as slm_prefill with n_tokens = 1). */
SLM_API slm_status slm_decode(slm_context* ctx, int32_t token);
/* Logits (n_vocab floats) of the last evaluated token; valid until the next call on ctx. */
SLM_API slm_status slm_logits(const slm_context* ctx, const float** logits, size_t* n_vocab);
/* Draws a token from the last logits with the context's sampler and records it in the
 * sampler's history (penalties). */
SLM_API slm_status slm_sample(slm_context* ctx, int32_t* token);

/* ---- Generation --------------------------------------------------------------------------- */

typedef enum slm_channel { SLM_CHANNEL_ANSWER = 0, SLM_CHANNEL_REASONING = 1 } slm_channel;

/* Called for each generated token with the text it completes: always whole UTF-8 characters
 * (bytes of a character split over tokens are held until it completes; invalid bytes become
 * U+FFFD), possibly empty. With split_reasoning the <think>...</think> tags are removed and
 * `channel` says where the text belongs. The text is valid during the call only. Return
 * nonzero to stop generation (stop reason SLM_STOP_CALLBACK). */
typedef int32_t (*slm_token_fn)(void* user_data, int32_t token, const char* text, size_t text_len,
                                slm_channel channel);

typedef enum slm_stop_reason {
  SLM_STOP_NONE = 0,
  SLM_STOP_EOG = 1,        /* the model produced an end-of-generation token (not passed on) */
  SLM_STOP_MAX_TOKENS = 2,
  SLM_STOP_CALLBACK = 3,
  SLM_STOP_CANCELLED = 4,  /* the call then returns SLM_ERR_CANCELLED */
  SLM_STOP_CONTEXT_FULL = 5
} slm_stop_reason;

typedef struct slm_generate_params {
  uint32_t struct_size;    /* sizeof(slm_generate_params), set by slm_generate_default_params */
  int32_t max_tokens;      /* most tokens to generate (default 256) */
  slm_token_fn on_token;   /* may be NULL */
  void* user_data;
  int32_t split_reasoning; /* route <think>...</think> text to SLM_CHANNEL_REASONING (default 1) */
  int32_t starts_in_reasoning; /* the prompt ends inside <think> (slm_chat_opens_reasoning) */
  int32_t skip_special;    /* pass no text for control tokens (default 1) */
} slm_generate_params;

typedef struct slm_generate_result {
  int32_t n_prompt;        /* tokens prefilled */
  int32_t n_generated;     /* tokens sampled (an end-of-generation token included) */
  int32_t stop_reason;     /* slm_stop_reason */
  double prefill_seconds;
  double decode_seconds;
} slm_generate_result;

SLM_API slm_generate_params slm_generate_default_params(void);

/* Prefills `prompt` (may be empty to continue from the last logits), then samples, reports and
 * decodes tokens until a stop condition. A context that fills up stops with
 * SLM_STOP_CONTEXT_FULL and SLM_OK. `result` may be NULL. */
SLM_API slm_status slm_generate(slm_context* ctx, const int32_t* prompt, size_t n_prompt,
                                const slm_generate_params* params, slm_generate_result* result);

#ifdef __cplusplus
}
#endif

#endif /* SLM_SLM_H */
