// A plain double-precision forward pass of `deepseek2` GGUF models, written from the papers'
// math (DeepSeek-V2 sec. 2.1 MLA, DeepSeek-V3 sec. 2.1 routing) for tests. Naive MLA: per head
// k_h = [W_UK_h c | k_rope], v_h = W_UV_h c, q.k / sqrt(d) attention -- no absorption, no latent
// cache. Routing from scores straight through top-k. Shares only the GGUF reader and the
// dequantization (traits to_float) with the engine. Every call recomputes all positions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "slm/gguf.hpp"
#include "slm/status.hpp"

namespace slm::ref {

class Deepseek2Reference {
 public:
  static Expected<Deepseek2Reference> load(const gguf::File& file);
  // logits[t] (n_vocab doubles) after tokens[0..t], for every t.
  //
  // `forced` (optional, laid out [token][MoE layer][n_expert_used] like
  // deepseek2::last_routing): another engine's expert choices. Where they differ from this
  // reference's own choice only within a near-tie -- every forced group and expert scores within
  // `tie` of the last one this reference keeps -- the forced choice is used (rounding in the
  // other engine may legitimately flip a near-tie, and one flipped expert changes the output by
  // O(1)); otherwise the reference keeps its own choice, so a real disagreement still shows.
  // `followed` counts the decisions taken from `forced`.
  std::vector<std::vector<double>> forward(const std::vector<int32_t>& tokens, std::span<const int32_t> forced = {},
                                           double tie = 0.0, int* followed = nullptr) const;
  int64_t n_vocab() const { return n_vocab_; }
  // The experts chosen for the last forward's token t in MoE layer l (in choice order).
  std::vector<int> chosen(size_t t, size_t l) const { return chosen_[t][l]; }

 private:
  struct Layer {
    std::vector<double> attn_norm, wq, wq_a, q_a_norm, wq_b, wkv_a, kv_a_norm;
    std::vector<std::vector<double>> w_uk, w_uv;  // per head: (qk_nope x kv_lora), (v_head x kv_lora)
    std::vector<double> wo, ffn_norm, w_gate, w_up, w_down;
    std::vector<double> router, bias;
    std::vector<std::vector<double>> e_gate, e_up, e_down;  // per expert
    std::vector<double> sh_gate, sh_up, sh_down;
  };
  int64_t n_vocab_ = 0, n_embd_ = 0, n_layer_ = 0, n_head_ = 0, n_ff_ = 0, n_dense_ = 0;
  int64_t q_lora_ = 0, kv_lora_ = 0, nope_ = 0, rope_ = 0, vdim_ = 0;
  int64_t n_expert_ = 0, n_used_ = 0, n_ff_exp_ = 0, n_shared_ = 0, n_group_ = 1, n_group_used_ = 1;
  bool sigmoid_ = false, norm_w_ = false;
  double scale_w_ = 1.0, eps_ = 0, scale_ = 0;
  std::vector<double> freq_;
  std::vector<double> embd_, out_norm_, out_;
  std::vector<Layer> layers_;
  mutable std::vector<std::vector<std::vector<int>>> chosen_;
};

}  // namespace slm::ref
