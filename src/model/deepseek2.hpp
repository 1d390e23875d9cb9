// The DeepSeek-V2 / V3 / R1 architecture (GGUF arch `deepseek2`): multi-head latent attention
// (MLA) computed in the absorbed form against a cache of compressed latents, and a mixture of
// experts with shared experts, softmax (V2) or sigmoid + correction bias (V3/R1) routing and
// group-limited expert selection.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/kernels.hpp"
#include "slm/gguf.hpp"
#include "slm/model.hpp"

namespace slm::deepseek2 {

// llama.cpp's llama_expert_gating_func_type values (key expert_gating_func). 0 ("none") is what
// V2 files converted before the key existed carry: it means softmax.
enum class Gating { Softmax = 1, Sigmoid = 2 };

// Hyper-parameters from the `deepseek2.*` keys, validated at load (see read_config).
struct Config {
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;          // layers the forward pass runs (block_count - nextn_predict_layers)
  int64_t n_nextn = 0;          // multi-token-prediction layers in the file (ignored)
  int64_t n_head = 0;
  int64_t n_ff = 0;             // FFN width of the leading dense layers (feed_forward_length)
  int64_t n_dense_lead = 0;     // leading_dense_block_count: layers [0, n) are dense
  // Mixture of experts.
  int64_t n_expert = 0, n_expert_used = 0, n_expert_shared = 0, n_ff_exp = 0;
  int64_t n_group = 1, n_group_used = 1;  // expert_group_count / expert_group_used_count
  Gating gating = Gating::Softmax;
  bool weights_norm = false;    // renormalise the selected experts' weights to sum 1
  double weights_scale = 1.0;   // then multiply them by this (routed_scaling_factor)
  // Multi-head latent attention.
  int64_t q_lora_rank = 0;      // 0: direct attn_q (V2-Lite); else attn_q_a -> norm -> attn_q_b
  int64_t kv_lora_rank = 0;     // latent width d_c (512)
  int64_t qk_nope = 0;          // per-head query/key dims without position (128)
  int64_t qk_rope = 0;          // per-head decoupled RoPE dims, rope.dimension_count (64)
  int64_t v_head = 0;           // per-head value dims (128)
  float rms_eps = 1e-6f;
  double rope_base = 10000.0;
  // YaRN (rope.scaling.type = yarn): frequencies interpolated by `yarn_factor` below the
  // correction range [beta_slow, beta_fast] rotations over yarn_orig_ctx, extrapolated above.
  bool yarn = false;
  double yarn_factor = 1.0, yarn_orig_ctx = 4096.0, yarn_beta_fast = 32.0, yarn_beta_slow = 1.0;
  double yarn_log_mul = 0.0;    // rope.scaling.yarn_log_multiplier (= 0.1 * mscale_all_dim)
  float kq_scale = 1.0f;        // softmax scale: mscale^2 / sqrt(qk_nope + qk_rope)

  int64_t qk_head() const { return qk_nope + qk_rope; }
  int64_t cache_row() const { return kv_lora_rank + qk_rope; }  // cached floats per token per layer
  bool is_moe_layer(int64_t l) const { return l >= n_dense_lead; }
};

Expected<Config> read_config(const gguf::File& file);

// Softmax scale of the absorbed attention: with YaRN, mscale = 1 + yarn_log_mul * ln(factor)
// (DeepSeek's yarn_get_mscale(factor, mscale_all_dim), the key being 0.1 * mscale_all_dim), and
// the scale is mscale^2 / sqrt(qk_head); without YaRN 1 / sqrt(qk_head).
double softmax_scale(const Config& c);

// YaRN frequency factors f[i] (new inverse frequency = old / f[i]) for the n_rot/2 rotated pairs,
// as ggml's rope_yarn computes them (ramp between the correction dims of beta_fast / beta_slow).
void yarn_freq_factors(float* factors, const Config& c);

struct Layer {
  const float* attn_norm = nullptr;   // (n_embd,)
  kernels::Matrix wq;                 // (n_head * qk_head, n_embd)  when q_lora_rank == 0
  kernels::Matrix wq_a;               // (q_lora_rank, n_embd)
  const float* q_a_norm = nullptr;    // (q_lora_rank,)
  kernels::Matrix wq_b;               // (n_head * qk_head, q_lora_rank)
  kernels::Matrix wkv_a;              // (kv_lora_rank + qk_rope, n_embd): latent | shared rope key
  const float* kv_a_norm = nullptr;   // (kv_lora_rank,)
  // K and V up-projections. Split files: k_b holds W_UK_h^T per head (rows h*kv_lora ..,
  // qk_nope cols), v_b holds W_UV_h (rows h*v_head .., kv_lora cols). Older files: kv_b with
  // rows h*(qk_nope+v_head) + [0, qk_nope) = W_UK_h and + [qk_nope, +v_head) = W_UV_h.
  bool fused_kv_b = false;
  kernels::Matrix k_b, v_b, kv_b;
  kernels::Matrix wo;                 // (n_embd, n_head * v_head)
  const float* ffn_norm = nullptr;    // (n_embd,)
  kernels::Matrix w_gate, w_up, w_down;  // dense layers: (n_ff, n_embd) x2, (n_embd, n_ff)
  kernels::Matrix gate_inp;           // router: (n_expert, n_embd)
  const float* exp_probs_b = nullptr; // (n_expert,) V3 score-correction bias, optional
  // Routed experts, all experts stacked: expert e is rows [e * n, (e+1) * n).
  kernels::Matrix gate_exps, up_exps; // (n_expert * n_ff_exp, n_embd)
  kernels::Matrix down_exps;          // (n_expert * n_embd, n_ff_exp)
  kernels::Matrix gate_sh, up_sh;     // (n_expert_shared * n_ff_exp, n_embd)
  kernels::Matrix down_sh;            // (n_embd, n_expert_shared * n_ff_exp)
};

struct Weights {
  kernels::Matrix token_embd;         // (n_vocab, n_embd)
  const float* output_norm = nullptr; // (n_embd,)
  kernels::Matrix output;             // (n_vocab, n_embd); token_embd when tied
  bool tied_output = false;
  std::vector<Layer> layers;
  size_t bytes = 0;                   // tensor bytes the forward pass uses
  size_t ignored_tensors = 0;         // tensors of the nextn (MTP) layers, not used
};

Expected<Weights> bind_weights(const gguf::File& file, const Config& config);

// Expert selection of one token (exposed for tests): `logits` (n_expert) router outputs; writes
// the chosen expert ids (n_expert_used, in descending selection score) and their weights.
// scratch: 3 * n_expert floats.
void route(const Config& c, const float* logits, const float* bias, int32_t* ids, float* weights,
           float* scratch);
// The same with the softmax gating at kernel level `isa` (the context's; the overload above uses
// default_isa_level()).
void route(IsaLevel isa, const Config& c, const float* logits, const float* bias, int32_t* ids, float* weights,
           float* scratch);

Expected<std::unique_ptr<Model>> load(gguf::File file, const ModelParams& params);

// Test hook: the experts the last eval() of a deepseek2 context chose, laid out
// [token][MoE layer][n_expert_used] for the tokens of its last forward step: the whole eval when
// it had at most n_batch tokens, else its last chunk (the record is sized for n_batch tokens at
// context creation, so eval never allocates for it). Empty for other contexts. Tests give these to
// the reference where its own choice is a near-tie that rounding may flip.
std::span<const int32_t> last_routing(const Context& ctx);

}  // namespace slm::deepseek2
