// Models and contexts: load a GGUF model (weights used in place from a read-only map), create
// contexts (KV cache, scratch, thread pool), evaluate tokens, read logits, sample.
//
// Typical use:
//   auto model = slm::Model::load("m.gguf");                 // Expected<unique_ptr<Model>>
//   slm::ContextParams cp; cp.n_ctx = 2048; cp.n_threads = 4;
//   size_t need = (*model)->context_memory_required(cp);    // know before allocating
//   auto ctx = slm::Context::create(**model, cp);
//   SLM_TRY((*ctx)->eval(prompt_ids));                        // prefill (one batched call)
//   slm::Sampler sampler(sp, (*model)->info().n_vocab);
//   int32_t tok = sampler.sample((*ctx)->logits()); sampler.accept(tok);
//   SLM_TRY((*ctx)->eval({&tok, 1}));                         // decode
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "slm/cpu.hpp"
#include "slm/status.hpp"

namespace slm {

class Tokenizer;
class Context;
namespace gguf { class File; }

// Storage of the KV cache. F16 is the default (as llama.cpp); F32 exists for exactness checks.
// Q8_0 is reserved: Context::create returns an error for it for now.
enum class KvType { F16, Q8_0, F32 };
const char* kv_type_name(KvType t);

struct ModelParams {
  bool use_mlock = false;  // mlock the weights' map; an error when the OS refuses
  // Copy the Q4_0 and Q8_0 matrices (llama, qwen2 and deepseek2 models, stacked experts
  // included) at load into the kernels' interleaved layout (16 rows per 64-byte line: the decode
  // GEMV does a third of the work per byte) when the CPU's kernel level has native kernels for
  // it; their mapped pages are then released, so the resident total stays about the same for a
  // dense model, but those bytes are private to the process instead of shared page cache
  // (ModelInfo::interleaved_bytes). A MoE model copies every expert, touched or not. Skipped
  // when the copies would exceed 3/4 of physical memory (a model near the RAM size only runs
  // paged from the map). Off, or with use_mlock: every tensor is used in place from the map.
  bool interleave_weights = true;
};

struct ContextParams {
  int n_ctx = 4096;    // KV cache length in tokens (never the training context unless asked)
  int n_batch = 512;   // most tokens one forward step computes at once (eval() splits larger
                       // calls); capped at n_ctx
  int n_threads = 1;
  KvType kv_type = KvType::F16;
  // Optional caller-provided memory for the whole context (KV cache, activations, scratch,
  // logits, per-thread bookkeeping): at least context_memory_required(params) bytes, 64-byte
  // aligned, untouched past that size, and alive and unused by anything else until the context
  // is destroyed. nullptr: the context allocates one block of that size itself. Either way
  // Context::create makes no other heap allocation except the Context object and its thread
  // pool (docs/EMBEDDING.md lists them); eval with all_logits still allocates its rows.
  void* arena = nullptr;
  size_t arena_bytes = 0;
  // Kernel level of this context's matrix products (a lower one than the CPU's best, to compare
  // or to work around a problem). Unset: default_isa_level() (the best this CPU and build run,
  // or what SLM_ISA asked for). Context::create fails when this CPU or build cannot run it.
  std::optional<IsaLevel> isa;
};

// Architecture-independent facts about a loaded model (filled and validated from GGUF keys).
struct ModelInfo {
  std::string arch;       // "llama", "qwen2", "deepseek2"
  std::string name;       // general.name when present
  int64_t n_params = 0;
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ff = 0;
  int64_t n_rot = 0;          // dimensions rotated by RoPE (<= head_dim)
  double rope_freq_base = 10000.0;
  std::string rope_scaling;   // "none", "linear", "llama3" (from rope_freqs or rope.scaling.*)
  double rms_eps = 1e-5;
  bool tied_output = false;   // LM head is token_embd (no output.weight)
  size_t weights_bytes = 0;   // bytes of tensor data the model uses
  size_t interleaved_bytes = 0;    // of which copied at load into the interleaved layout (heap)
  size_t interleavable_bytes = 0;  // what interleave_weights would copy on this CPU and RAM (whether or not it did)
  std::string type_summary;   // e.g. "Q4_K: 169, Q6_K: 29, F32: 141"
};

class Model {
 public:
  // Maps `path` read-only, reads and validates the config and every tensor.
  static Expected<std::unique_ptr<Model>> load(const std::string& path, const ModelParams& params = {});
  // The same from an already-parsed file (e.g. gguf::File::from_buffer in tests); the model owns it.
  static Expected<std::unique_ptr<Model>> from_file(gguf::File file, const ModelParams& params = {});
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;
  // The model's tokenizer (built from the file's tokenizer.* keys at load), or nullptr when the
  // file has none or the tokenizer component cannot build it (Tokenizer::from_gguf(file()) then
  // returns the reason). Loading never fails because of the tokenizer: ids-only use works.
  virtual const Tokenizer* tokenizer() const = 0;
  virtual const gguf::File& file() const = 0;
  // Multi-line human summary for --verbose: arch, params, types, memory.
  virtual std::string summary() const = 0;
  // Memory a context with these params will allocate (KV cache + scratch), before creating it:
  // the size its arena must have (ContextParams::arena; arena/arena_bytes themselves do not
  // change it); 0 when the params are invalid (Context::create says why). Not included: with
  // all_logits, eval keeps n_tokens x n_vocab floats (heap, allocated on first use, then reused).
  virtual size_t context_memory_required(const ContextParams& params) const = 0;
  // Same as Context::create(*this, params).
  virtual Expected<std::unique_ptr<Context>> create_context(const ContextParams& params) const = 0;
};

// One sequence's state: KV cache, activations, logits, thread pool. A context refers to its
// model (which must outlive it); two contexts on one model may run in two threads.
class Context {
 public:
  static Expected<std::unique_ptr<Context>> create(const Model& model, const ContextParams& params);
  virtual ~Context() = default;

  // Evaluates `tokens` at positions n_past() .. n_past()+size-1 (prefill when size > 1, decode
  // when 1), appending to the KV cache. Overflowing n_ctx is an error (nothing is evaluated),
  // never a silent wrap; so is a token id outside [0, n_vocab).
  // With all_logits, logits of every token are kept; otherwise only of the last.
  virtual Status eval(std::span<const int32_t> tokens, bool all_logits = false) = 0;
  // Logits (n_vocab) of token i of the last eval (-1 = the last token). Without all_logits only
  // i = -1 (or size-1) is valid; an invalid i gives an empty span.
  virtual std::span<const float> logits(int i = -1) const = 0;
  virtual int n_past() const = 0;
  virtual int n_ctx() const = 0;
  virtual const Model& model() const = 0;
  virtual void reset() = 0;                  // forget the KV cache (n_past = 0)
  virtual size_t kv_cache_bytes() const = 0;
  virtual size_t memory_bytes() const = 0;   // everything the context allocated (or used of its arena)
};

struct SamplerParams {
  float temperature = 0.8f;  // <= 0 = greedy (exact argmax, lowest id on ties; other filters unused)
  int top_k = 40;            // 0 = off
  float top_p = 0.95f;       // 1 = off
  float min_p = 0.05f;       // 0 = off
  float repeat_penalty = 1.0f;  // 1 = off; logit > 0 divided by it, logit < 0 multiplied
  int repeat_last_n = 64;       // window of accepted tokens the penalties look at
  float presence_penalty = 0.0f;  // subtracted once from each token present in the window
  uint64_t seed = 0;
};

// Turns logits into a token. Order: penalties -> (greedy: argmax) -> temperature -> top-k ->
// softmax -> top-p -> min-p -> draw. Same seed and settings give the same tokens. All buffers
// are sized at construction: no allocation per token.
class Sampler {
 public:
  Sampler(const SamplerParams& params, int64_t n_vocab);
  // logits.size() must be n_vocab (fewer: only those ids are considered).
  int32_t sample(std::span<const float> logits);
  void accept(int32_t token);  // history for the penalties
  void reset();                // clears the history and reseeds the RNG
  const SamplerParams& params() const { return params_; }

 private:
  double next_uniform();  // [0, 1) from the xoroshiro128** state

  SamplerParams params_;
  int64_t n_vocab_ = 0;
  std::vector<int32_t> history_;   // ring of the last repeat_last_n accepted tokens
  size_t history_next_ = 0;
  size_t history_size_ = 0;
  std::vector<std::pair<float, int32_t>> candidates_;  // sized once: no allocation per token
  std::vector<float> penalized_;   // logits after penalties (n_vocab)
  std::vector<uint8_t> seen_;      // n_vocab flags, cleared after each use
  uint64_t rng_state_[2];
};

// Index of the largest value, the lowest index on ties; -1 for an empty span. NaN never wins.
int32_t argmax(std::span<const float> values);

}  // namespace slm
