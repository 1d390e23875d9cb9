// Hugging Face checkpoint directory -> GGUF (slm-convert): Qwen2ForCausalLM, LlamaForCausalLM and
// DeepseekV2/V3ForCausalLM, with llama.cpp's metadata keys, tensor names and layouts, and the
// tokenizer (gpt2 BPE or llama SentencePiece-style BPE) with its pre-tokenizer tag.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "slm/dtype.hpp"
#include "slm/json.hpp"
#include "slm/status.hpp"

namespace slm::gguf {
class Writer;
}

namespace slm::convert {

struct ConvertOptions {
  std::string outtype = "auto";  // auto (F16, or BF16 for a BF16 checkpoint), F32, F16, BF16
  std::string pre;               // tokenizer.ggml.pre override (else recognised from the regex)
  bool keep_kv_b = false;        // deepseek2: write attn_kv_b instead of attn_k_b + attn_v_b
  std::string name;              // general.name (else the directory's name)
  int n_threads = 1;
  std::function<void(const std::string&)> warn;
  std::function<void(size_t done, size_t total)> progress;
};

struct ConvertReport {
  std::string arch;        // "llama", "qwen2", "deepseek2"
  DType outtype = DType::F16;
  std::string pre;         // tokenizer.ggml.pre written
  size_t n_tensors = 0;
  uint64_t n_params = 0;
  uint64_t n_vocab = 0;
};

Status convert_hf(const std::string& dir, const std::string& out_path, const ConvertOptions& options,
                  ConvertReport* report);

// The pre-tokenizer name llama.cpp uses for a tokenizer.json (parsed), recognised from its
// pre_tokenizer regexes (see docs/QUANTIZATION.md, "slm-convert"); an Error when unknown.
Expected<std::string> recognise_pre(const json::Value& tokenizer);

// The regexes recognised (the literal pattern strings as they appear in tokenizer.json).
extern const char* const kRegexLlama3;
extern const char* const kRegexQwen2;

}  // namespace slm::convert
