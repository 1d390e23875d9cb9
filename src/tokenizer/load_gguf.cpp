// Loading a tokenizer from GGUF metadata (the tokenizer.ggml.* keys llama.cpp's converter writes).
#include "slm/gguf.hpp"
#include "tokenizer/tokenizer_impl.hpp"

namespace slm {

using tokenizer_internal::Vocabulary;

namespace {

// An optional token id key: -1 when absent; an Error on a wrong type or an absurd value.
Expected<int32_t> optional_id(const gguf::File& f, const char* key) {
  if (!f.find(key)) return -1;
  auto v = f.get_uint(key);
  if (!v) return v.error();
  if (*v == 0xFFFFFFFFull) return -1;  // llama.cpp writes -1 ("none") as a u32
  if (*v > 0x7FFFFFFF) return errorf("GGUF: %s = %llu is not a token id", key, (unsigned long long)*v);
  return int32_t(*v);
}

}  // namespace

Expected<Tokenizer> Tokenizer::from_gguf(const gguf::File& f) {
  Vocabulary v;
  v.source = "GGUF tokenizer";
  auto model = f.get_string("tokenizer.ggml.model");
  if (!model) return errorf("GGUF: %s", model.error().message.c_str());
  if (*model == "gpt2") {
    v.kind = TokenizerKind::kByteLevelBpe;
  } else if (*model == "llama") {
    v.kind = TokenizerKind::kSentencePiece;
    v.rank_by_score = true;
  } else {
    return errorf("GGUF: tokenizer.ggml.model \"%.*s\" is not supported (gpt2 and llama are)",
                  int(model->size()), model->data());
  }

  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) return errorf("GGUF: %s", tokens.error().message.c_str());
  const size_t n = tokens->size();
  v.pieces.reserve(n);
  for (std::string_view t : *tokens) v.pieces.emplace_back(t);

  if (f.find("tokenizer.ggml.token_type")) {
    auto types = f.get_int_array("tokenizer.ggml.token_type");
    if (!types) return errorf("GGUF: %s", types.error().message.c_str());
    if (types->size() != n)
      return errorf("GGUF: tokenizer.ggml.token_type has %zu entries for %zu tokens", types->size(), n);
    v.types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = (*types)[i];
      if (t < 0 || t > 6) return errorf("GGUF: tokenizer.ggml.token_type[%zu] = %lld is not a token type", i, (long long)t);
      v.types.push_back(TokenType(t));
    }
  }
  if (f.find("tokenizer.ggml.scores")) {
    auto scores = f.get_float_array("tokenizer.ggml.scores");
    if (!scores) return errorf("GGUF: %s", scores.error().message.c_str());
    if (scores->size() != n)
      return errorf("GGUF: tokenizer.ggml.scores has %zu entries for %zu tokens", scores->size(), n);
    v.scores.assign(scores->begin(), scores->end());
  }
  if (v.kind == TokenizerKind::kByteLevelBpe) {
    auto merges = f.get_string_array("tokenizer.ggml.merges");
    if (!merges) return errorf("GGUF: %s (byte-level BPE needs its merges)", merges.error().message.c_str());
    v.merges.reserve(merges->size());
    for (size_t r = 0; r < merges->size(); ++r) {
      std::string_view s = (*merges)[r];
      const size_t sp = s.find(' ', 1);
      if (sp == std::string_view::npos || sp + 1 == s.size())
        return errorf("GGUF: tokenizer.ggml.merges[%zu] \"%.*s\" is not two tokens", r, int(s.size()), s.data());
      v.merges.emplace_back(std::string(s.substr(0, sp)), std::string(s.substr(sp + 1)));
    }
    std::string pre = "default";
    if (f.find("tokenizer.ggml.pre")) {
      auto p = f.get_string("tokenizer.ggml.pre");
      if (!p) return errorf("GGUF: %s", p.error().message.c_str());
      pre = std::string(*p);
    }
    if (!tokenizer_internal::preset_patterns(pre, v.split_patterns, v.nfc, v.ignore_merges))
      return errorf("GGUF: tokenizer.ggml.pre \"%s\" is not a supported pre-tokenizer (supported: "
                    "deepseek-r1-qwen, qwen2, deepseek-v3, llama-bpe, deepseek-llm, deepseek-coder, "
                    "gpt-2, default)", pre.c_str());
    v.pre_type = pre;
  } else {
    v.pre_type = "sentencepiece";
    v.byte_fallback = true;
    auto prefix = f.get_bool_or("tokenizer.ggml.add_space_prefix", true);
    if (!prefix) return errorf("GGUF: %s", prefix.error().message.c_str());
    v.add_space_prefix = *prefix;
  }

  struct IdKey { const char* key; int32_t* out; };
  for (IdKey k : {IdKey{"tokenizer.ggml.bos_token_id", &v.bos}, IdKey{"tokenizer.ggml.eos_token_id", &v.eos},
                  IdKey{"tokenizer.ggml.eot_token_id", &v.eot}, IdKey{"tokenizer.ggml.eom_token_id", &v.eom},
                  IdKey{"tokenizer.ggml.padding_token_id", &v.pad},
                  IdKey{"tokenizer.ggml.unknown_token_id", &v.unk}}) {
    auto id = optional_id(f, k.key);
    if (!id) return id.error();
    *k.out = *id;
  }
  const bool spm = v.kind == TokenizerKind::kSentencePiece;
  auto add_bos = f.get_bool_or("tokenizer.ggml.add_bos_token", spm);
  if (!add_bos) return errorf("GGUF: %s", add_bos.error().message.c_str());
  auto add_eos = f.get_bool_or("tokenizer.ggml.add_eos_token", false);
  if (!add_eos) return errorf("GGUF: %s", add_eos.error().message.c_str());
  v.add_bos = *add_bos;
  v.add_eos = *add_eos;
  if (f.find("tokenizer.chat_template")) {
    auto t = f.get_string("tokenizer.chat_template");
    if (!t) return errorf("GGUF: %s", t.error().message.c_str());
    v.chat_template = std::string(*t);
  }
  return build_tokenizer(std::move(v));
}

}  // namespace slm
