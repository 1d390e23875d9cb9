// Deterministic random-weight GGUF models of the `llama` and `qwen2` architectures, any size:
// tiny ones for tests, real shapes for benchmarks. Used by tools/slm-mkmodel and the tests.
//
// Weights: every tensor row is drawn from its own counter-based stream keyed by (seed, tensor
// name, row), as floats, and only then quantized with the type's reference quantizer
// (traits from_float) -- so the same seed gives the same underlying model in every type, and a
// 1.5B model is streamed tensor by tensor through gguf::Writer producers, never held whole.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/random_deepseek2.hpp"
#include "slm/gguf.hpp"
#include "slm/status.hpp"

namespace slm::mkmodel {

struct Spec {
  std::string arch = "qwen2";     // "qwen2" or "llama"
  std::string name = "random";    // general.name
  int64_t n_vocab = 0;            // 0: the vocabulary's size (minimal one: 261 tokens)
  int64_t n_embd = 256;
  int64_t n_layer = 2;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t n_ff = 512;
  int64_t n_rot = 0;              // 0: head dim
  int64_t n_ctx_train = 2048;
  double rope_base = 10000.0;
  double rms_eps = 1e-6;
  bool qkv_bias = true;           // qwen2 style
  bool tied_output = false;       // no output.weight: the LM head is token_embd
  // Llama 3.1 RoPE frequency scaling, written as a rope_freqs tensor (as convert_hf_to_gguf
  // does) or, with llama3_as_keys, as rope.scaling.{type=llama3,factor,...} keys only. The keys
  // form exercises libslm's other path; llama.cpp (3.21.1's build) rejects it (it knows no
  // rope.scaling.type "llama3"), so files for llama.cpp comparisons use the tensor.
  bool llama3_rope = false;
  bool llama3_as_keys = false;
  double llama3_factor = 8.0, llama3_low_freq_factor = 1.0, llama3_high_freq_factor = 4.0;
  int64_t llama3_original_ctx = 8192;
  // Weight type of every matrix: F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K (any type with a reference
  // quantizer), or "Q4_K_M" (see tensor_type). Norms, biases and rope_freqs are always F32.
  std::string type = "F32";
  uint64_t seed = 1;
  // Standard deviation of the logits over the vocabulary for a typical hidden state: ~15 makes
  // the next-token distribution peaked (top token typically > 0.3 even over 152k tokens) where
  // plain small random weights would give every token ~1/n_vocab.
  double logit_std = 15.0;
  std::string vocab_from;         // copy tokenizer.* keys from this GGUF (n_vocab follows it)
  Deepseek2Spec ds;               // arch deepseek2 only (random_deepseek2.hpp)
};

// Presets: "tiny" (both archs; llama tiny also has llama3 RoPE scaling), "qwen-1.5b"
// (R1-Distill-Qwen-1.5B shape), "llama-8b" (R1-Distill-Llama-8B / Llama 3.1 8B shape),
// "llama-1b" (Llama 3.2 1B shape: tied output, llama3 scaling factor 32).
Expected<Spec> preset(std::string_view name, std::string_view arch);

// The type a tensor gets under spec.type. For "Q4_K_M" (llama.cpp's recipe): Q4_K everywhere
// except output.weight (Q6_K; token_embd too when tied) and attn_v / ffn_down of the layers i
// with i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (Q6_K): with 28 layers, 0-2, 5, 8, 11, 14, 17,
// 20, 23, 24-27.
Expected<DType> tensor_type(const Spec& spec, std::string_view tensor_name, int64_t layer);
bool q4_k_m_more_bits(int64_t layer, int64_t n_layer);

// Adds the whole model (metadata, vocabulary, tensors as producers) to `writer`. With
// spec.vocab_from, `vocab_file` must be that file, open until the writer has written.
Status build(const Spec& spec, gguf::Writer& writer, const gguf::File* vocab_file);

Status write_file(const Spec& spec, const std::string& path);
Expected<std::vector<uint8_t>> write_buffer(const Spec& spec);

}  // namespace slm::mkmodel
