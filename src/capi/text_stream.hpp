// Generated token text -> whole UTF-8 characters, optionally split into reasoning and answer at
// <think>...</think>, with buffers sized once (no allocation per token: slm_generate's promise).
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>
#include <vector>

#include "slm/slm.h"

namespace slm::capi {

// Length of the UTF-8 sequence at p: 1..4 when complete and valid, 0 when the bytes so far are
// a valid start that needs more bytes, -1 when p[0] cannot start a valid sequence with what
// follows (overlong forms, surrogates and code points above U+10FFFF are invalid, RFC 3629).
inline int utf8_sequence(const unsigned char* p, size_t rem) {
  const unsigned c = p[0];
  if (c < 0x80) return 1;
  int need = 0;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < need; ++k) {
    if (static_cast<size_t>(k) >= rem) return 0;
    const unsigned b = p[k];
    if (b < (k == 1 ? lo : 0x80u) || b > (k == 1 ? hi : 0xBFu)) return -1;
  }
  return need;
}

class TextStream {
 public:
  static constexpr std::string_view kOpen = "<think>";
  static constexpr std::string_view kClose = "</think>";

  // Bytes init() allocates for tokens of at most max_token_bytes.
  static size_t bytes_for(size_t max_token_bytes) {
    const size_t in = max_token_bytes + 8;
    return in + 2 * (3 * in + 16);
  }

  void init(size_t max_token_bytes) {
    in_.resize(max_token_bytes + 8);
    utf8_.resize(3 * in_.size() + 16);  // each invalid byte may become U+FFFD (3 bytes)
    tagged_.resize(utf8_.size());
  }

  void start(bool split, bool in_reasoning) {
    split_ = split;
    reasoning_ = split && in_reasoning;
    skip_ws_ = false;
    n_pending_ = 0;
    n_hold_ = 0;
  }

  slm_channel channel() const { return reasoning_ ? SLM_CHANNEL_REASONING : SLM_CHANNEL_ANSWER; }

  // Feeds one token's bytes; calls emit(text, len, channel) for each non-empty segment and
  // returns how many it emitted.
  template <class Emit>
  int push(std::string_view piece, Emit&& emit) {
    if (piece.size() + n_pending_ > in_.size()) piece = piece.substr(0, in_.size() - n_pending_);  // never: sized to the vocab
    std::memcpy(in_.data(), pending_, n_pending_);
    if (!piece.empty()) std::memcpy(in_.data() + n_pending_, piece.data(), piece.size());
    const size_t n = complete_utf8(in_.data(), n_pending_ + piece.size());
    return route(utf8_.data(), n, emit);
  }

  // End of generation: an incomplete character becomes U+FFFD, a held partial tag is text.
  template <class Emit>
  int finish(Emit&& emit) {
    size_t n = 0;
    if (n_pending_ > 0) n = put_replacement(utf8_.data(), 0);
    n_pending_ = 0;
    int emitted = 0;
    std::memcpy(tagged_.data(), hold_, n_hold_);
    std::memcpy(tagged_.data() + n_hold_, utf8_.data(), n);
    const size_t len = n_hold_ + n;
    n_hold_ = 0;
    if (len > 0) {
      emit(tagged_.data(), len, channel());
      ++emitted;
    }
    return emitted;
  }

 private:
  static size_t put_replacement(char* out, size_t at) {
    out[at] = static_cast<char>(0xEF);
    out[at + 1] = static_cast<char>(0xBF);
    out[at + 2] = static_cast<char>(0xBD);
    return at + 3;
  }

  // Writes the complete characters of in[0, n) to utf8_ and keeps an incomplete tail pending.
  size_t complete_utf8(const char* in, size_t n) {
    const auto* p = reinterpret_cast<const unsigned char*>(in);
    size_t i = 0, o = 0;
    n_pending_ = 0;
    while (i < n) {
      const int len = utf8_sequence(p + i, n - i);
      if (len > 0) {
        std::memcpy(utf8_.data() + o, in + i, static_cast<size_t>(len));
        o += static_cast<size_t>(len);
        i += static_cast<size_t>(len);
      } else if (len == 0) {
        n_pending_ = n - i;  // at most 3 bytes
        std::memcpy(pending_, in + i, n_pending_);
        break;
      } else {
        o = put_replacement(utf8_.data(), o);
        ++i;
      }
    }
    return o;
  }

  template <class Emit>
  int route(const char* text, size_t n, Emit&& emit) {
    if (!split_) {
      if (n == 0) return 0;
      emit(text, n, SLM_CHANNEL_ANSWER);
      return 1;
    }
    char* buf = tagged_.data();
    std::memcpy(buf, hold_, n_hold_);
    std::memcpy(buf + n_hold_, text, n);
    const size_t len = n_hold_ + n;
    n_hold_ = 0;
    int emitted = 0;
    auto out = [&](size_t b, size_t e) {
      if (e > b) {
        emit(buf + b, e - b, channel());
        ++emitted;
      }
    };
    size_t i = 0, seg = 0;
    while (i < len) {
      if (skip_ws_) {  // whitespace right after </think> is not part of the answer
        const char ch = buf[i];
        if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
          seg = ++i;
          continue;
        }
        skip_ws_ = false;
      }
      if (buf[i] == '<') {
        const std::string_view tag = reasoning_ ? kClose : kOpen;
        const size_t rem = len - i;
        if (rem >= tag.size() && std::memcmp(buf + i, tag.data(), tag.size()) == 0) {
          out(seg, i);
          reasoning_ = !reasoning_;
          skip_ws_ = !reasoning_;
          i += tag.size();
          seg = i;
          continue;
        }
        if (rem < tag.size() && std::memcmp(buf + i, tag.data(), rem) == 0) {  // maybe a tag: wait
          out(seg, i);
          std::memcpy(hold_, buf + i, rem);
          n_hold_ = rem;
          return emitted;
        }
      }
      ++i;
    }
    out(seg, len);
    return emitted;
  }

  std::vector<char> in_, utf8_, tagged_;
  char pending_[4] = {};
  size_t n_pending_ = 0;
  char hold_[16] = {};
  size_t n_hold_ = 0;
  bool split_ = true, reasoning_ = false, skip_ws_ = false;
};

}  // namespace slm::capi
