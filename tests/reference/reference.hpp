// A plain double-precision forward pass of `llama` / `qwen2` GGUF models, written from the math
// for tests: it shares only the dequantization (traits to_float) and the GGUF reader with the
// engine. No KV cache, no batching, no threads: every call recomputes all positions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slm/gguf.hpp"
#include "slm/status.hpp"

namespace slm::ref {

// A whole tensor as doubles, row-major (rows of ne[0]), through the engine's dequantization only.
// A missing tensor is an error when required, else an empty vector.
Expected<std::vector<double>> dequant(const gguf::File& f, const std::string& name, bool required = true);

class Reference {
 public:
  static Expected<Reference> load(const gguf::File& file);
  // logits[t] (n_vocab doubles) after tokens[0..t], for every t.
  std::vector<std::vector<double>> forward(const std::vector<int32_t>& tokens) const;
  int64_t n_vocab() const { return n_vocab_; }

 private:
  struct Layer {
    std::vector<double> attn_norm, wq, wk, wv, bq, bk, bv, wo, ffn_norm, w_gate, w_up, w_down;
  };
  std::string arch_;
  int64_t n_vocab_ = 0, n_embd_ = 0, n_layer_ = 0, n_ff_ = 0, n_head_ = 0, n_head_kv_ = 0;
  int64_t head_dim_ = 0, n_rot_ = 0;
  double eps_ = 0, base_ = 0;
  std::vector<double> freq_;  // (n_rot/2,) angle per position of each rotated pair
  std::vector<double> embd_, out_norm_, out_;  // out_ is embd_ when tied
  std::vector<Layer> layers_;
};

}  // namespace slm::ref
