// A small backtracking regular-expression matcher for pre-tokenizer split patterns (the subset
// that Hugging Face tokenizer.json files and llama.cpp presets use), over Unicode code points.
//
// Semantics follow ECMAScript with the `u` flag (the reference tokenizer is transformers.js):
// leftmost match, alternatives tried in order, greedy quantifiers with backtracking. Supported:
// literals, `.`, classes `[...]` with ranges and negation, `\p{X}`/`\P{X}` for general
// categories (L, Lu, ..., N, Nd, ..., P, S, M, Z, C and their two-letter forms), `\s \S \d \D
// \w \W`, escapes `\r \n \t \f \v \uXXXX \u{X}`, groups `(...)`, `(?:...)`, `(?i:...)` (ASCII
// case folding), lookahead `(?=...)`/`(?!...)`, anchors `^ $`, quantifiers `* + ? {m} {m,}
// {m,n}` and their lazy forms. Anything else is a compile error, never a crash.
// Limits against hostile patterns: 16k code points, 64 nested groups, and a repeated *group*
// matches at most a few hundred iterations (repeated character classes such as \p{L}+ are unlimited).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "slm/status.hpp"

namespace slm::tokenizer_internal {

class Regex {
 public:
  static Expected<Regex> compile(std::string_view pattern);

  // All non-overlapping matches in `cps` as [begin, end) code point indices, left to right, as
  // String.prototype.matchAll would find them (an empty match advances by one code point).
  // `props` holds unicode::properties() of each code point (same length as cps).
  void find_all(std::span<const uint32_t> cps, std::span<const uint8_t> props,
                std::vector<std::pair<uint32_t, uint32_t>>& out) const;

  const std::string& pattern() const;

  struct Program;

 private:
  std::shared_ptr<const Program> program_;
};

}  // namespace slm::tokenizer_internal
