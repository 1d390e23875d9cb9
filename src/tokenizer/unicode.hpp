// Unicode support for the tokenizer: UTF-8 decoding, general categories, JS-style whitespace
// and NFC normalization, from tables generated out of the Unicode Character Database.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace slm::unicode {

// General categories, in the order scripts/gen_unicode_tables.py emits them (Cn = unassigned).
enum GeneralCategory : uint8_t {
  Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po,
  Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co, kCategoryCount
};

// Bit masks over GeneralCategory for the one-letter classes (\p{L}, \p{N}, ...).
constexpr uint32_t cat_bit(GeneralCategory c) { return 1u << c; }
constexpr uint32_t kMaskL = cat_bit(Lu) | cat_bit(Ll) | cat_bit(Lt) | cat_bit(Lm) | cat_bit(Lo);
constexpr uint32_t kMaskM = cat_bit(Mn) | cat_bit(Mc) | cat_bit(Me);
constexpr uint32_t kMaskN = cat_bit(Nd) | cat_bit(Nl) | cat_bit(No);
constexpr uint32_t kMaskP = cat_bit(Pc) | cat_bit(Pd) | cat_bit(Ps) | cat_bit(Pe) | cat_bit(Pi) |
                            cat_bit(Pf) | cat_bit(Po);
constexpr uint32_t kMaskS = cat_bit(Sm) | cat_bit(Sc) | cat_bit(Sk) | cat_bit(So);
constexpr uint32_t kMaskZ = cat_bit(Zs) | cat_bit(Zl) | cat_bit(Zp);
constexpr uint32_t kMaskC = cat_bit(Cc) | cat_bit(Cf) | cat_bit(Cs) | cat_bit(Co) | cat_bit(Cn);

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr uint32_t kReplacement = 0xFFFD;

namespace tables {
struct CccRange { uint32_t first, last; uint8_t ccc; };
struct Decomposition { uint32_t cp, first, second; };  // second == 0: a singleton
struct Composition { uint32_t first, second, composite; };
extern const uint16_t kStage1[];
extern const uint8_t kStage2[];
extern const CccRange kCcc[];
extern const size_t kCccCount;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionCount;
extern const Composition kCompositions[];
extern const size_t kCompositionCount;
constexpr int kBlockShift = 7;  // 128 code points per second-stage block
constexpr uint8_t kFlagJsSpace = 0x20;
constexpr uint8_t kFlagNfcMaybe = 0x40;
constexpr uint8_t kCategoryMask = 0x1F;
}  // namespace tables

// Packed properties of a code point: category in the low 5 bits, flags above.
inline uint8_t properties(uint32_t cp) {
  if (cp > kMaxCodePoint) return 0;
  return tables::kStage2[(size_t(tables::kStage1[cp >> tables::kBlockShift]) << tables::kBlockShift) |
                         (cp & ((1u << tables::kBlockShift) - 1))];
}
inline GeneralCategory category(uint32_t cp) {
  return GeneralCategory(properties(cp) & tables::kCategoryMask);
}
// `\s` as ECMAScript defines it (WhiteSpace and LineTerminator): Zs, \t \n \v \f \r, U+2028,
// U+2029 and U+FEFF. (Rust's regex `\s` differs on U+0085 and U+FEFF; the reference tokenizer in
// our tests is the JS one.)
inline bool is_js_space(uint32_t cp) { return properties(cp) & tables::kFlagJsSpace; }

// Decodes one code point at s[i], advancing i. Invalid or truncated sequences (overlongs,
// surrogates, > U+10FFFF) consume one byte and yield `kInvalid` so callers can keep the byte.
constexpr uint32_t kInvalid = 0xFFFFFFFFu;
uint32_t decode_utf8(std::string_view s, size_t& i);
// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one.
size_t valid_sequence_length(std::string_view s, size_t i);
void append_utf8(std::string& out, uint32_t cp);
bool is_valid_utf8(std::string_view s);

uint8_t combining_class(uint32_t cp);
// NFC of valid UTF-8 text; bytes of invalid sequences are kept as they are (each one is a
// "starter" that nothing composes with). Returns the input unchanged (fast) when no code point
// can change under NFC.
std::string to_nfc(std::string_view text);

}  // namespace slm::unicode
