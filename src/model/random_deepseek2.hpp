// Deterministic random-weight GGUF models of the `deepseek2` architecture (DeepSeek-V2/V3/R1
// shapes): the MLA and MoE hyper-parameters beside slm::mkmodel::Spec, presets, the slm-mkmodel
// options (--ds-*), and the tensor writer that random_model.cpp's build() hands over to.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "slm/gguf.hpp"
#include "slm/status.hpp"

namespace slm::mkmodel {

struct Spec;

// Everything about a deepseek2 model that Spec's dense fields do not say. Spec.n_ff is the
// dense FFN width of the leading layers, Spec.n_rot the decoupled RoPE dims (qk_rope).
struct Deepseek2Spec {
  int64_t q_lora_rank = 0;        // 0: direct attn_q (V2-Lite)
  int64_t kv_lora_rank = 128;
  int64_t qk_nope = 32;
  int64_t v_head = 32;
  int64_t n_dense_lead = 1;
  int64_t n_expert = 8, n_expert_used = 2, n_expert_shared = 1, n_ff_exp = 128;
  int64_t n_group = 1, n_group_used = 1;
  int gating = 2;                 // 1 softmax (V2), 2 sigmoid (V3/R1)
  bool probs_bias = true;         // exp_probs_b (V3 correction bias); sigmoid models only
  bool weights_norm = true;
  double weights_scale = 2.5;
  bool split_kv_b = true;         // attn_k_b + attn_v_b (newer files) or attn_kv_b (older)
  double yarn_factor = 1.0;       // > 1: rope.scaling.type yarn
  int64_t yarn_orig_ctx = 64;
  double yarn_log_mul = 0.1;      // rope.scaling.yarn_log_multiplier (0.1 * mscale_all_dim)
  std::string kb_type = "F16";    // type of attn_k_b / attn_v_b / attn_kv_b ("" = the model type)
  double expert_std = 1.0;        // scale of the routed experts' down projections
  double router_std = 2.0;        // router logits' standard deviation
  // > 0: only the first fill_period rows of each matrix are drawn; row r repeats row
  // r % fill_period byte for byte. For speed benchmarks of real shapes (V2-Lite: 15.7B weights
  // drawn one by one take over an hour on a busy 2-core box; repeated rows write at disk speed).
  int64_t fill_period = 0;
};

// Presets for --arch deepseek2: "tiny" (q_lora, sigmoid + bias, 2 groups of 4, split k_b/v_b,
// YaRN), "tiny-lite" (no q_lora, softmax, no groups, fused kv_b), "v2-lite" (DeepSeek-V2-Lite
// shape, 15.7B params).
Expected<Spec> deepseek2_preset(std::string_view name);

// Fixes the dense fields deepseek2 implies (head_count_kv: 1 for the MLA layout, n_head with a
// fused kv_b). Called by build() before it writes the common keys.
void deepseek2_normalize(Spec* spec);

// Parses one slm-mkmodel --ds-* option into spec.ds; an error names the option.
Status deepseek2_option(Spec& spec, std::string_view flag, const char* value);
extern const char* const kDeepseek2Usage;

// The deepseek2 keys and all tensors (build() has written the common keys and the vocabulary).
Status build_deepseek2_tensors(const Spec& spec, gguf::Writer& writer);

// The type a deepseek2 tensor gets: spec.type (Q4_K_M: llama.cpp's recipe, attn_kv_b / ffn_down*
// like attn_v / ffn_down), kb_type for the K/V up-projections, F32 for norms, biases and the
// router; a K-quant on rows that are not a multiple of 256 falls back to Q8_0 (F16 below 32).
Expected<DType> deepseek2_tensor_type(const Spec& spec, std::string_view name, int64_t layer, int64_t n_cols);

}  // namespace slm::mkmodel
