// UTF-8 decoding and NFC normalization over the generated Unicode tables.
#include "tokenizer/unicode.hpp"

#include <algorithm>

namespace slm::unicode {

// ---------------------------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------------------------

size_t valid_sequence_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const size_t n = s.size();
  const uint8_t c = b(i);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t min;
  if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; }
  else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; }
  else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; }
  else return 0;
  if (i + len > n) return 0;
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (cp < min || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

uint32_t decode_utf8(std::string_view s, size_t& i) {
  const size_t len = valid_sequence_length(s, i);
  if (len == 0) { ++i; return kInvalid; }
  const uint8_t c = static_cast<uint8_t>(s[i]);
  uint32_t cp = len == 1 ? c : (c & (0x7F >> len));
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = valid_sequence_length(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// NFC (Unicode Standard Annex #15): full canonical decomposition, canonical ordering of
// combining marks, then canonical composition. Hangul syllables are handled arithmetically
// (UAX #15 / Unicode chapter 3.12).
// ---------------------------------------------------------------------------------------------

namespace {

constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr uint32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  const auto* begin = tables::kDecompositions;
  const auto* end = begin + tables::kDecompositionCount;
  const auto* it = std::lower_bound(begin, end, cp,
                                    [](const tables::Decomposition& d, uint32_t v) { return d.cp < v; });
  if (it == end || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  decompose(it->first, out);
  if (it->second) decompose(it->second, out);
}

uint32_t compose_pair(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto* begin = tables::kCompositions;
  const auto* end = begin + tables::kCompositionCount;
  const auto* it = std::lower_bound(begin, end, std::pair{a, b},
                                    [](const tables::Composition& c, std::pair<uint32_t, uint32_t> v) {
                                      return c.first != v.first ? c.first < v.first : c.second < v.second;
                                    });
  if (it != end && it->first == a && it->second == b) return it->composite;
  return 0;
}

}  // namespace

uint8_t combining_class(uint32_t cp) {
  const auto* begin = tables::kCcc;
  const auto* end = begin + tables::kCccCount;
  const auto* it = std::upper_bound(begin, end, cp,
                                    [](uint32_t v, const tables::CccRange& r) { return v < r.first; });
  if (it == begin) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

std::string to_nfc(std::string_view text) {
  // Quick check: nothing to do unless some code point is NFC_QC No/Maybe or a combining mark.
  bool maybe = false;
  for (size_t i = 0; i < text.size() && !maybe;) {
    if (static_cast<uint8_t>(text[i]) < 0x80) { ++i; continue; }
    const uint32_t cp = decode_utf8(text, i);
    if (cp != kInvalid && (properties(cp) & tables::kFlagNfcMaybe)) maybe = true;
  }
  if (!maybe) return std::string(text);

  // Decompose; invalid bytes are carried as values above U+10FFFF (0x110000 + byte).
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const uint32_t cp = decode_utf8(text, i);
    if (cp == kInvalid) cps.push_back(0x110000u + static_cast<uint8_t>(text[at]));
    else decompose(cp, cps);
  }
  const auto ccc = [](uint32_t cp) -> uint8_t { return cp > kMaxCodePoint ? 0 : combining_class(cp); };
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (ccc(cps[i]) == 0) { ++i; continue; }
    size_t j = i;
    while (j < cps.size() && ccc(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [&](uint32_t a, uint32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }
  // Canonical composition.
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  size_t starter = SIZE_MAX;  // index in `out` of the last starter
  int last_ccc = -1;
  for (uint32_t cp : cps) {
    const int c = ccc(cp);
    if (starter != SIZE_MAX && cp <= kMaxCodePoint && out[starter] <= kMaxCodePoint) {
      const bool blocked = last_ccc != -1 && (last_ccc == 0 || last_ccc >= c);
      if (!blocked) {
        const uint32_t composite = compose_pair(out[starter], cp);
        if (composite) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (c == 0) {
      starter = out.size();
      last_ccc = -1;
    } else {
      last_ccc = c;
    }
    out.push_back(cp);
  }
  std::string result;
  result.reserve(text.size());
  for (uint32_t cp : out) {
    if (cp > kMaxCodePoint) result += char(cp - 0x110000u);
    else append_utf8(result, cp);
  }
  return result;
}

}  // namespace slm::unicode
