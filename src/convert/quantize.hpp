// Quantizing a GGUF model file to another weight type (slm-quantize): the per-tensor type recipe
// (llama.cpp's llama_tensor_get_type rules for the types we have, see docs/QUANTIZATION.md) and
// a streaming rewrite of the file through gguf::Writer producers, rows split over threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "slm/dtype.hpp"
#include "slm/gguf.hpp"
#include "slm/status.hpp"
#include "slm/thread_pool.hpp"

namespace slm::convert {

// A target as named on the command line: a base type plus, for the K mixes, the rules that
// give some tensors more bits.
enum class Mix { None, Q4_K_S, Q4_K_M, Q5_K_M };

struct Target {
  std::string name;    // "Q4_K_M", "Q8_0", ...
  DType base = DType::F32;
  Mix mix = Mix::None;
  uint32_t ftype = 0;  // llama.cpp's LLAMA_FTYPE value, written as general.file_type
};

// Looks a target up (case-insensitive). Accepted: Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K F16
// BF16 F32 Q4_K_S Q4_K_M Q5_K_M; Q4_K and Q5_K are llama-quantize's aliases of Q4_K_M / Q5_K_M.
Expected<Target> parse_target(std::string_view name);
std::vector<std::string> target_names();

// What the recipe needs to know about the model.
struct ModelFacts {
  int64_t n_layer = 0;     // {arch}.block_count
  int64_t n_expert = 0;    // {arch}.expert_count (0 or 1: dense)
  bool has_output = false; // an output.weight tensor (else token_embd is the LM head)
  bool is_70b = false;     // llama with 80 layers: llama.cpp's LLM_TYPE_70B attn_v rule
};
Expected<ModelFacts> model_facts(const gguf::File& file);

struct TensorDesc {
  std::string_view name;
  uint32_t n_dims = 0;
  const int64_t* ne = nullptr;  // ne[0] is the row length
  DType type = DType::F32;      // type in the input file
};

// Counters the recipe keeps across tensors (llama.cpp counts attn_v tensors in file order).
struct RecipeState {
  int i_attention_wv = 0;
  int i_ffn_down = 0;
  int n_attention_wv = 0;  // number of attn_v / attn_qkv / attn_kv_b tensors in the file
  int n_fallback = 0;
};

// Whether a tensor is quantized at all: a 2-D or 3-D "*.weight" that is not a norm, the MoE
// router (ffn_gate_inp) or a positional table. Others are copied unchanged.
bool is_quantizable(const TensorDesc& t);

// The type for one tensor (call for every tensor in file order; `fallback` is set when the row
// length forced a fallback type). `pure`: the base type for every quantizable tensor.
DType tensor_type(const Target& target, const ModelFacts& facts, const TensorDesc& t, bool pure,
                  RecipeState& state, bool* fallback);

struct QuantizeOptions {
  Target target;
  bool pure = false;
  int n_threads = 1;
  // Called after each tensor is written: (tensors done, total tensors, bytes in, bytes out).
  std::function<void(size_t, size_t, uint64_t, uint64_t)> progress;
  // Called once per warning (requantizing an already-quantized tensor, fallbacks).
  std::function<void(const std::string&)> warn;
};

struct TensorReport {
  std::string name;
  DType from = DType::F32, to = DType::F32;
  uint64_t n_elements = 0, bytes_in = 0, bytes_out = 0;
  bool fallback = false;
};

struct QuantizeReport {
  std::vector<TensorReport> tensors;
  uint64_t bytes_in = 0, bytes_out = 0;  // tensor data only
  uint64_t file_bytes_in = 0, file_bytes_out = 0;
  uint64_t n_elements = 0;
  int n_fallback = 0;
  double bpw_in() const { return n_elements ? 8.0 * bytes_in / n_elements : 0; }
  double bpw_out() const { return n_elements ? 8.0 * bytes_out / n_elements : 0; }
};

// Rewrites `in` as `out_path` with the options' types. Tensors are produced one at a time (the
// model is never held whole); rows are split over n_threads.
Status quantize_file(const gguf::File& in, const std::string& out_path, const QuantizeOptions& options,
                     QuantizeReport* report);

// Converts `rows` rows of `n_per_row` elements from type `from` to type `to` (both with
// reference conversions), rows split over the pool's threads (nullptr: this thread only).
Status convert_rows(DType from, const uint8_t* src, DType to, uint8_t* dst, int64_t rows, int64_t n_per_row,
                    ThreadPool* pool);

}  // namespace slm::convert
