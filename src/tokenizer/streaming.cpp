// Streaming decoding: emit text as tokens arrive without ever splitting a UTF-8 sequence.
#include "slm/tokenizer.hpp"
#include "tokenizer/unicode.hpp"

namespace slm {

namespace {

// Could s[i..] (running to the end of s) be the start of a valid sequence that more bytes
// would complete? (Unicode Table 3-7: second-byte ranges exclude overlongs and surrogates.)
bool incomplete_prefix(std::string_view s, size_t i) {
  const uint8_t c = uint8_t(s[i]);
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
  else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
  else return false;
  const size_t have = s.size() - i;
  if (have >= need) return false;
  for (size_t k = 1; k < have; ++k) {
    const uint8_t b = uint8_t(s[i + k]);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return false;
  }
  return true;
}

}  // namespace

std::string take_complete_utf8(std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const size_t len = unicode::valid_sequence_length(bytes, i);
    if (len) {
      out.append(bytes, i, len);
      i += len;
    } else if (incomplete_prefix(bytes, i)) {
      break;
    } else {
      unicode::append_utf8(out, unicode::kReplacement);
      ++i;
    }
  }
  bytes.erase(0, i);
  return out;
}

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, DecodeOptions options)
    : tokenizer_(&tokenizer), options_(options) {}

std::string StreamingDecoder::push(int32_t id) {
  if (tokenizer_->token_type(id) == TokenType::kControl && options_.skip_special) return {};
  pending_ += tokenizer_->token_bytes(id);
  return take_complete_utf8(pending_);
}

std::string StreamingDecoder::flush() {
  std::string out = take_complete_utf8(pending_);
  for (size_t k = 0; k < pending_.size(); ++k) {
    // What is left is an incomplete sequence: one U+FFFD for it (as a decoder would at EOF).
    if (k == 0) unicode::append_utf8(out, unicode::kReplacement);
  }
  pending_.clear();
  return out;
}

}  // namespace slm
