// The dense decoder family `llama` and `qwen2`: config from GGUF keys, weight binding with shape
// checks, and the model/context objects. The two archs differ only in QKV biases (qwen2), RoPE
// pair layout (llama: adjacent pairs, qwen2: NEOX halves) and how often the LM head is tied.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.hpp"
#include "ops/ops.hpp"
#include "slm/gguf.hpp"
#include "slm/model.hpp"

namespace slm::llama {

// Plain hyper-parameters, validated at load (see read_config).
struct Config {
  std::string arch;           // "llama" or "qwen2": the GGUF key prefix
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;       // n_embd / n_head
  int64_t n_rot = 0;          // rope.dimension_count (even, <= head_dim)
  float rms_eps = 1e-5f;
  double rope_base = 10000.0;
  ops::RopeStyle rope_style = ops::RopeStyle::AdjacentPairs;
  // RoPE scaling: "none", "linear" (positions / rope_linear_scale) or "llama3" (factors from the
  // rope_freqs tensor when present, otherwise computed from the rope.scaling.* keys).
  std::string rope_scaling = "none";
  double rope_linear_scale = 1.0;
  double llama3_factor = 1.0, llama3_low_freq_factor = 1.0, llama3_high_freq_factor = 4.0;
  double llama3_original_ctx = 8192.0;

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

Expected<Config> read_config(const gguf::File& file);

struct Layer {
  const float* attn_norm = nullptr;              // (n_embd,)
  kernels::Matrix wq, wk, wv;                    // (q_dim | kv_dim rows, n_embd cols)
  const float* bq = nullptr;                     // (q_dim,)  qwen2 only
  const float* bk = nullptr;                     // (kv_dim,) qwen2 only
  const float* bv = nullptr;                     // (kv_dim,) qwen2 only
  kernels::Matrix wo;                            // (n_embd rows, q_dim cols)
  const float* ffn_norm = nullptr;               // (n_embd,)
  kernels::Matrix w_gate, w_up;                  // (n_ff rows, n_embd cols)
  kernels::Matrix w_down;                        // (n_embd rows, n_ff cols)
};

// Pointers into the mapped file: nothing is copied.
struct Weights {
  kernels::Matrix token_embd;                    // (n_vocab rows, n_embd cols)
  const float* output_norm = nullptr;            // (n_embd,)
  kernels::Matrix output;                        // (n_vocab rows, n_embd cols); token_embd if tied
  bool tied_output = false;
  const float* rope_freqs = nullptr;             // (n_rot/2,) llama3 frequency factors, optional
  std::vector<Layer> layers;
};

// Checks presence, type and shape of every tensor against the config.
Expected<Weights> bind_weights(const gguf::File& file, const Config& config);

// Loads a file whose general.architecture is llama or qwen2.
Expected<std::unique_ptr<Model>> load(gguf::File file, const ModelParams& params);

}  // namespace slm::llama
