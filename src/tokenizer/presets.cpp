// Pre-tokenizer presets: the split patterns behind llama.cpp's `tokenizer.ggml.pre` names, as
// the Hugging Face tokenizer.json files of those families define them.
#include <cstring>

#include "tokenizer/tokenizer_impl.hpp"

namespace slm::tokenizer_internal {

namespace {

// GPT-2 (also what a ByteLevel pre-tokenizer with use_regex=true applies).
const char* const kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 and DeepSeek-R1-Distill-Llama: digits in groups of up to three.
const char* const kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2 and DeepSeek-R1-Distill-Qwen: single digits.
const char* const kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek-V3 / R1: digits 1-3, runs of CJK ideographs and kana, then words and punctuation.
const char* const kDeepSeekV3[] = {
    R"(\p{N}{1,3})",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};
// DeepSeek LLM (7B/67B).
const char* const kDeepSeekLlm[] = {
    "[\r\n]",
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
    "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
    "\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
    "\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
    "\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe"
    "\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc"
    "\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3"
    "\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06"
    "\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3"
    "\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
    "\U0001e900-\U0001e943]+",
    "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
    "\\s+$",
    "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
    "\\p{N}+",
};
// DeepSeek Coder.
const char* const kDeepSeekCoder[] = {
    "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", "\\p{N}",
};
// llama.cpp's "default" BPE pre-tokenizer.
const char* const kDefault[] = {
    R"([\p{P}\$\+<=>\^~\|]+)",
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
    R"(\p{N}+)",
    "[0-9][0-9][0-9]",
};

struct Preset {
  const char* names[6];
  const char* const* patterns;
  size_t count;
  bool nfc;            // the family's tokenizer.json normalizes to NFC (Qwen2)
  bool ignore_merges;  // its BPE model keeps a pre-token that is a whole token (Llama 3)
};

const Preset kPresets[] = {
    {{"deepseek-r1-qwen", "qwen2"}, &kQwen2, 1, true, false},
    {{"deepseek-v3"}, kDeepSeekV3, std::size(kDeepSeekV3), false, false},
    {{"llama-bpe", "llama3", "llama-v3", "falcon3", "smaug-bpe", "dbrx"}, &kLlama3, 1, false, true},
    {{"deepseek-llm"}, kDeepSeekLlm, std::size(kDeepSeekLlm), false, false},
    {{"deepseek-coder"}, kDeepSeekCoder, std::size(kDeepSeekCoder), false, false},
    {{"gpt-2", "gpt2", "phi-2", "roberta-bpe"}, &kGpt2, 1, false, false},
    {{"default"}, kDefault, std::size(kDefault), false, false},
};

}  // namespace

bool preset_patterns(std::string_view pre, std::vector<std::string>& patterns, bool& nfc, bool& ignore_merges) {
  for (const auto& p : kPresets) {
    for (const char* name : p.names) {
      if (name && pre == name) {
        patterns.assign(p.patterns, p.patterns + p.count);
        nfc = p.nfc;
        ignore_merges = p.ignore_merges;
        return true;
      }
    }
  }
  return false;
}

// Patterns compare equal whether line breaks are written as escapes or as raw characters.
static std::string canonical_pattern(std::string_view p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size() && (p[i + 1] == 'r' || p[i + 1] == 'n')) {
      out += p[i + 1] == 'r' ? '\r' : '\n';
      ++i;
    } else {
      out += p[i];
    }
  }
  return out;
}

std::string preset_name_for(const std::vector<std::string>& patterns) {
  for (const auto& p : kPresets) {
    if (p.count != patterns.size()) continue;
    bool same = true;
    for (size_t i = 0; i < p.count && same; ++i)
      same = canonical_pattern(patterns[i]) == canonical_pattern(p.patterns[i]);
    if (same) return p.names[0];
  }
  return "";
}

bool looks_special(std::string_view t) {
  auto wrapped = [&](std::string_view open, std::string_view close) {
    return t.size() > open.size() + close.size() && t.substr(0, open.size()) == open &&
           t.substr(t.size() - close.size()) == close;
  };
  return wrapped("<|", "|>") || wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>");
}

}  // namespace slm::tokenizer_internal
