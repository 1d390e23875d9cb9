// Models and contexts: load a GGUF model (weights used in place from a read-only map), create
// contexts (KV cache, scratch, thread pool), evaluate tokens, read logits, sample.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "slm/status.hpp"

namespace slm {

class Tokenizer;
namespace gguf { class File; }

enum class KvType { F16, Q8_0, F32 };

struct ModelParams {
  bool use_mlock = false;
};

struct ContextParams {
  int n_ctx = 4096;       // KV cache length in tokens (never the training context unless asked)
  int n_threads = 1;
  KvType kv_type = KvType::F16;
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
  size_t weights_bytes = 0;  // bytes of tensor data the model uses (mapped, not copied)
  std::string type_summary;  // e.g. "Q4_K: 169, Q6_K: 29, F32: 141"
};

class Model {
 public:
  static Expected<std::unique_ptr<Model>> load(const std::string& path, const ModelParams& params = {});
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;
  virtual const Tokenizer& tokenizer() const = 0;
  virtual const gguf::File& file() const = 0;
  // Multi-line human summary for --verbose: arch, params, types, memory.
  virtual std::string summary() const = 0;
  // Memory a context with these params will allocate (KV cache + scratch), before creating it.
  virtual size_t context_memory_required(const ContextParams& params) const = 0;
};

class Context {
 public:
  static Expected<std::unique_ptr<Context>> create(const Model& model, const ContextParams& params);
  virtual ~Context() = default;

  // Evaluates `tokens` at positions n_past() .. n_past()+size-1 (prefill when size > 1, decode
  // when 1), appending to the KV cache. Overflowing n_ctx is an error, never a silent wrap.
  // With all_logits, logits of every token are kept; otherwise only of the last.
  virtual Status eval(std::span<const int32_t> tokens, bool all_logits = false) = 0;
  // Logits (n_vocab) of token i of the last eval (-1 = the last token).
  virtual std::span<const float> logits(int i = -1) const = 0;
  virtual int n_past() const = 0;
  virtual int n_ctx() const = 0;
  virtual void reset() = 0;                  // forget the KV cache
  virtual size_t kv_cache_bytes() const = 0;
  virtual size_t memory_bytes() const = 0;   // everything the context allocated
};

struct SamplerParams {
  float temperature = 0.8f;  // 0 = greedy (exact argmax, lowest id on ties)
  int top_k = 40;            // 0 = off
  float top_p = 0.95f;       // 1 = off
  float min_p = 0.05f;       // 0 = off
  float repeat_penalty = 1.0f;  // 1 = off
  int repeat_last_n = 64;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;
};

class Sampler {
 public:
  Sampler(const SamplerParams& params, int64_t n_vocab);
  int32_t sample(std::span<const float> logits);
  void accept(int32_t token);  // history for the penalties
  void reset();

 private:
  SamplerParams params_;
  std::vector<int32_t> history_;
  std::vector<std::pair<float, int32_t>> candidates_;  // sized once: no allocation per token
  uint64_t rng_state_[2];
};

}  // namespace slm
