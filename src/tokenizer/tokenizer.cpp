// slm::Tokenizer: validation of a loaded vocabulary, encoding (added tokens, normalization,
// pre-tokenizer splits, BPE merges) and decoding.
#include <algorithm>
#include <cstring>

#include "tokenizer/tokenizer_impl.hpp"
#include "tokenizer/unicode.hpp"

namespace slm {

using tokenizer_internal::Regex;
using tokenizer_internal::Candidate;
using tokenizer_internal::Scratch;
using tokenizer_internal::Symbol;
using tokenizer_internal::Vocabulary;

// ---------------------------------------------------------------------------------------------
// GPT-2 byte <-> character map: printable bytes stand for themselves, the other 68 bytes are
// shifted to U+0100.. in order (so every byte is a visible character in the vocabulary).
// ---------------------------------------------------------------------------------------------

namespace {

struct ByteMap {
  uint32_t byte_to_cp[256];
  int16_t cp_to_byte[512];  // all mapped code points are < U+0144
  ByteMap() {
    std::fill(std::begin(cp_to_byte), std::end(cp_to_byte), int16_t(-1));
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_cp[b] = printable ? b : next++;
      cp_to_byte[byte_to_cp[b]] = int16_t(b);
    }
  }
};
const ByteMap kByteMap;

void append_byte_char(std::string& out, uint8_t b) { unicode::append_utf8(out, kByteMap.byte_to_cp[b]); }

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 "▁"

// Bytes a byte-level piece stands for; false if a character is not a byte character.
bool byte_level_to_bytes(std::string_view piece, std::string& out) {
  out.clear();
  for (size_t i = 0; i < piece.size();) {
    const uint32_t cp = unicode::decode_utf8(piece, i);
    if (cp >= 512 || kByteMap.cp_to_byte[cp] < 0) return false;
    out += char(kByteMap.cp_to_byte[cp]);
  }
  return true;
}

int parse_byte_piece(std::string_view piece) {  // "<0xAB>" -> 0xAB, else -1
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = piece[size_t(k)];
    int h = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// The merge engine: symbols in a doubly linked list, candidate pairs in a priority queue
// (lowest priority value first, then leftmost), stale candidates skipped when popped. Each merge
// costs O(log n), so a word of n symbols takes O(n log n), not O(n^2).
// ---------------------------------------------------------------------------------------------

struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.priority != b.priority ? a.priority > b.priority : a.pos > b.pos;
  }
};

// lookup(const Symbol& left, const Symbol& right, float& priority, int32_t& result) -> bool
// `heap` is caller-owned scratch so that encoding many short words does not allocate per word.
template <class Lookup>
void merge_symbols(std::vector<Symbol>& syms, std::vector<Candidate>& heap, Lookup&& lookup) {
  if (syms.size() < 2) return;
  heap.clear();
  const CandidateOrder order;
  auto candidate = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return false;
    float priority;
    int32_t result;
    if (!lookup(syms[size_t(l)], syms[size_t(r)], priority, result)) return false;
    heap.push_back({priority, syms[size_t(l)].start, l, r, syms[size_t(l)].len + syms[size_t(r)].len, result});
    return true;
  };
  auto consider = [&](int32_t l, int32_t r) {
    if (candidate(l, r)) std::push_heap(heap.begin(), heap.end(), order);
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) candidate(int32_t(i), int32_t(i + 1));
  std::make_heap(heap.begin(), heap.end(), order);  // O(n), not n pushes
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), order);
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = syms[size_t(c.left)];
    Symbol& right = syms[size_t(c.right)];
    if (left.len == 0 || right.len == 0 || left.next != c.right || left.len + right.len != c.len) continue;
    left.len += right.len;
    left.id = c.result;
    right.len = 0;  // dead
    left.next = right.next;
    if (right.next >= 0) syms[size_t(right.next)].prev = c.left;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

void Tokenizer::Impl::encode_byte_level_word(std::string_view word, Scratch& scratch,
                                             std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_token[uint8_t(word[0])]);
    return;
  }
  if (ignore_merges) {
    scratch.text.clear();
    for (char c : word) append_byte_char(scratch.text, uint8_t(c));
    auto it = piece_to_id.find(scratch.text);
    if (it != piece_to_id.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<Symbol>& syms = scratch.symbols;
  syms.resize(word.size());
  for (size_t i = 0; i < word.size(); ++i)
    syms[i] = {byte_token[uint8_t(word[i])], uint32_t(i), 1, int32_t(i) - 1,
               i + 1 < word.size() ? int32_t(i + 1) : -1};
  merge_symbols(syms, scratch.heap, [&](const Symbol& l, const Symbol& r, float& priority, int32_t& result) {
    const Merge* mg = merges.find(pair_key(l.id, r.id));
    if (!mg) return false;
    priority = float(mg->rank);
    result = mg->result;
    return true;
  });
  for (size_t i = 0; i < syms.size(); i = syms[i].next < 0 ? syms.size() : size_t(syms[i].next))
    out.push_back(syms[i].id);
}

void Tokenizer::Impl::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  std::string norm;
  norm.reserve(text.size() + 8);
  if (add_space_prefix) norm += kSpmSpace;
  for (char c : text) {
    if (c == ' ') norm += kSpmSpace;
    else norm += c;
  }
  std::vector<Symbol> syms;
  std::vector<Candidate> heap;
  for (size_t i = 0; i < norm.size();) {
    const size_t at = i;
    (void)unicode::decode_utf8(norm, i);
    auto it = piece_to_id.find(std::string_view(norm).substr(at, i - at));
    const int32_t id = it == piece_to_id.end() ? -1 : it->second;
    syms.push_back({id, uint32_t(at), uint32_t(i - at), int32_t(syms.size()) - 1, int32_t(syms.size()) + 1});
  }
  if (syms.empty()) return;
  syms.back().next = -1;
  if (rank_by_score) {
    merge_symbols(syms, heap, [&](const Symbol& l, const Symbol& r, float& priority, int32_t& result) {
      auto it = piece_to_id.find(std::string_view(norm).substr(l.start, l.len + r.len));
      if (it == piece_to_id.end()) return false;
      priority = -scores[size_t(it->second)];
      result = it->second;
      return true;
    });
  } else {
    merge_symbols(syms, heap, [&](const Symbol& l, const Symbol& r, float& priority, int32_t& result) {
      if (l.id < 0 || r.id < 0) return false;
      const Merge* mg = merges.find(pair_key(l.id, r.id));
      if (!mg) return false;
      priority = float(mg->rank);
      result = mg->result;
      return true;
    });
  }
  for (size_t i = 0; i < syms.size(); i = syms[i].next < 0 ? syms.size() : size_t(syms[i].next)) {
    const Symbol& s = syms[i];
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    // Byte fallback: all bytes as <0xNN> tokens when the vocabulary has them all, else unk.
    bool all = byte_fallback;
    for (uint32_t k = 0; k < s.len && all; ++k) all = byte_token[uint8_t(norm[s.start + k])] >= 0;
    if (all) {
      for (uint32_t k = 0; k < s.len; ++k) out.push_back(byte_token[uint8_t(norm[s.start + k])]);
    } else {
      out.push_back(unk);  // build_tokenizer guarantees unk >= 0 when fallback can fail
    }
  }
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  if (kind == TokenizerKind::kSentencePiece) {
    encode_spm(text, out);
    return;
  }
  std::string normalized;
  if (nfc) {
    normalized = unicode::to_nfc(text);
    text = normalized;
  }
  // Code points (invalid bytes as 0x110000 + byte), their properties and byte offsets.
  std::vector<uint32_t> cps;
  std::vector<uint8_t> props;
  std::vector<uint32_t> offsets;
  cps.reserve(text.size());
  props.reserve(text.size());
  offsets.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    offsets.push_back(uint32_t(i));
    const size_t at = i;
    uint32_t cp = unicode::decode_utf8(text, i);
    if (cp == unicode::kInvalid) {
      cps.push_back(0x110000u + uint8_t(text[at]));
      props.push_back(0);
    } else {
      cps.push_back(cp);
      props.push_back(unicode::properties(cp));
    }
  }
  offsets.push_back(uint32_t(text.size()));

  std::vector<std::pair<uint32_t, uint32_t>> pieces{{0, uint32_t(cps.size())}}, next, matches;
  for (const Regex& re : splits) {
    next.clear();
    for (auto [a, b] : pieces) {
      matches.clear();
      re.find_all(std::span(cps).subspan(a, b - a), std::span(props).subspan(a, b - a), matches);
      uint32_t prev = a;
      for (auto [ms, me] : matches) {
        ms += a;
        me += a;
        if (ms == me) continue;
        if (prev < ms) next.push_back({prev, ms});
        next.push_back({ms, me});
        prev = me;
      }
      if (prev < b) next.push_back({prev, b});
    }
    pieces.swap(next);
  }
  Scratch scratch;
  for (auto [a, b] : pieces)
    encode_byte_level_word(text.substr(offsets[a], offsets[b] - offsets[a]), scratch, out);
}

namespace {

// The added-token scan shared by encode() and encode_with_markup(): `allow_control(i, len)`
// says whether a control token of `len` bytes may be matched at byte i.
template <class AllowControl>
void encode_with_added(const Tokenizer::Impl& m, std::string_view text, AllowControl&& allow_control,
                       std::vector<int32_t>& out) {
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const Tokenizer::Impl::Added* found = nullptr;
    for (const auto& a : m.added_by_first_byte[uint8_t(text[i])]) {
      if (text.size() - i < a.text.size() || std::memcmp(text.data() + i, a.text.data(), a.text.size()) != 0)
        continue;
      if (a.control && !allow_control(i, a.text.size())) continue;
      found = &a;
      break;
    }
    if (!found) {
      ++i;
      continue;
    }
    m.encode_text(text.substr(start, i - start), out);
    out.push_back(found->id);
    i += found->text.size();
    start = i;
  }
  m.encode_text(text.substr(start), out);
}

}  // namespace

Expected<std::vector<int32_t>> Tokenizer::encode(std::string_view text, EncodeOptions options) const {
  const Impl& m = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (options.add_bos && m.add_bos && m.bos >= 0) out.push_back(m.bos);
  encode_with_added(m, text, [&](size_t, size_t) { return options.parse_special; }, out);
  if (options.add_bos && m.add_eos && m.eos >= 0) out.push_back(m.eos);
  return out;
}

Expected<std::vector<int32_t>> Tokenizer::encode_with_markup(
    std::string_view text, std::span<const std::pair<size_t, size_t>> markup) const {
  for (size_t k = 0; k < markup.size(); ++k) {
    if (markup[k].first > markup[k].second || markup[k].second > text.size() ||
        (k > 0 && markup[k].first < markup[k - 1].second))
      return errorf("encode_with_markup: range %zu [%zu, %zu) is out of order or outside the text of %zu bytes", k,
                    markup[k].first, markup[k].second, text.size());
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_with_added(*impl_, text, [&](size_t i, size_t len) {
    auto it = std::upper_bound(markup.begin(), markup.end(), i,
                               [](size_t v, const std::pair<size_t, size_t>& r) { return v < r.first; });
    if (it == markup.begin()) return false;
    --it;
    return i >= it->first && i + len <= it->second;
  }, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

std::string Tokenizer::decode(std::span<const int32_t> ids, DecodeOptions options) const {
  const Impl& m = *impl_;
  std::string out;
  bool first_text = true;
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= m.pieces.size()) continue;
    const TokenType t = m.types[size_t(id)];
    if (t == TokenType::kControl) {
      if (!options.skip_special) out += m.bytes[size_t(id)];
      continue;
    }
    std::string_view b = m.bytes[size_t(id)];
    if (first_text && m.kind == TokenizerKind::kSentencePiece && m.add_space_prefix &&
        options.strip_dummy_prefix && !b.empty() && b[0] == ' ')
      b.remove_prefix(1);
    first_text = false;
    out += b;
  }
  return out;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->bytes.size()) return {};
  return impl_->bytes[size_t(id)];
}
std::string_view Tokenizer::token_piece(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->pieces.size()) return {};
  return impl_->pieces[size_t(id)];
}
TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->types.size()) return TokenType::kUndefined;
  return impl_->types[size_t(id)];
}
std::optional<int32_t> Tokenizer::find_piece(std::string_view piece) const {
  auto it = impl_->piece_to_id.find(piece);
  if (it == impl_->piece_to_id.end()) return std::nullopt;
  return it->second;
}
TokenizerKind Tokenizer::kind() const { return impl_->kind; }
int32_t Tokenizer::n_vocab() const { return int32_t(impl_->pieces.size()); }
int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
int32_t Tokenizer::eot() const { return impl_->eot; }
int32_t Tokenizer::pad() const { return impl_->pad; }
int32_t Tokenizer::unk() const { return impl_->unk; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::binary_search(impl_->eog.begin(), impl_->eog.end(), id);
}
bool Tokenizer::is_control(int32_t id) const { return token_type(id) == TokenType::kControl; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
const std::string& Tokenizer::pre_type() const { return impl_->pre_type; }
bool Tokenizer::normalizes_nfc() const { return impl_->nfc; }

// ---------------------------------------------------------------------------------------------
// Validation and indexing of a loaded vocabulary
// ---------------------------------------------------------------------------------------------

Expected<Tokenizer> build_tokenizer(Vocabulary v) {
  const char* src = v.source.empty() ? "tokenizer" : v.source.c_str();
  const size_t n = v.pieces.size();
  if (n == 0) return errorf("%s: the vocabulary is empty", src);
  if (n > (size_t(1) << 24)) return errorf("%s: vocabulary of %zu tokens is too large", src, n);
  if (v.types.empty()) v.types.assign(n, TokenType::kNormal);
  if (v.types.size() != n)
    return errorf("%s: %zu token types for %zu tokens", src, v.types.size(), n);
  if (v.scores.empty()) v.scores.assign(n, 0.0f);
  if (v.scores.size() != n) return errorf("%s: %zu scores for %zu tokens", src, v.scores.size(), n);

  auto impl = std::make_shared<Tokenizer::Impl>();
  Tokenizer::Impl& m = *impl;
  m.kind = v.kind;
  m.pieces = std::move(v.pieces);
  m.types = std::move(v.types);
  m.scores = std::move(v.scores);
  m.rank_by_score = v.rank_by_score;
  m.ignore_merges = v.ignore_merges;
  m.nfc = v.nfc;
  m.add_space_prefix = v.add_space_prefix;
  m.byte_fallback = v.byte_fallback;
  m.pre_type = std::move(v.pre_type);
  m.chat_template = std::move(v.chat_template);
  m.add_bos = v.add_bos;
  m.add_eos = v.add_eos;

  m.piece_to_id.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    const int32_t t = int32_t(m.types[i]);
    if (t < 0 || t > 6) return errorf("%s: token %zu has unknown type %d", src, i, t);
    if (m.pieces[i].empty()) {
      if (m.types[i] != TokenType::kUnused && m.types[i] != TokenType::kUndefined)
        return errorf("%s: token %zu has empty text", src, i);
      continue;
    }
    m.piece_to_id[m.pieces[i]] = int32_t(i);  // a duplicate text maps to its last id
  }

  const auto check_id = [&](int32_t id, const char* what) -> Status {
    if (id < -1 || id >= int32_t(n)) return errorf("%s: %s id %d is outside the vocabulary of %zu", src, what, id, n);
    return Status();
  };
  SLM_TRY(check_id(v.bos, "BOS"));
  SLM_TRY(check_id(v.eos, "EOS"));
  SLM_TRY(check_id(v.eot, "EOT"));
  SLM_TRY(check_id(v.eom, "EOM"));
  SLM_TRY(check_id(v.pad, "padding"));
  SLM_TRY(check_id(v.unk, "unknown-token"));
  m.bos = v.bos; m.eos = v.eos; m.eot = v.eot; m.eom = v.eom; m.pad = v.pad; m.unk = v.unk;

  // Merges.
  if (v.merges.size() >= (size_t(1) << 24)) return errorf("%s: %zu merges is too many", src, v.merges.size());
  m.merges.reserve(v.merges.size());
  for (size_t r = 0; r < v.merges.size(); ++r) {
    const auto& [a, b] = v.merges[r];
    auto ia = m.piece_to_id.find(a), ib = m.piece_to_id.find(b);
    if (ia == m.piece_to_id.end() || ib == m.piece_to_id.end())
      return errorf("%s: merge %zu (\"%s\" \"%s\") uses a token that is not in the vocabulary", src, r,
                    a.c_str(), b.c_str());
    auto ir = m.piece_to_id.find(a + b);
    if (ir == m.piece_to_id.end())
      return errorf("%s: merge %zu (\"%s\" \"%s\") makes a token that is not in the vocabulary", src, r,
                    a.c_str(), b.c_str());
    m.merges.insert(pair_key(ia->second, ib->second), Tokenizer::Impl::Merge{int32_t(r), ir->second});
  }  // a repeated pair keeps its first (best) rank

  // Bytes of each token, byte tokens, added tokens.
  m.bytes.resize(n);
  m.byte_token.fill(-1);
  std::string tmp;
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = m.pieces[i];
    const TokenType t = m.types[i];
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown || p.empty()) {
      m.bytes[i] = p;
    } else if (m.kind == TokenizerKind::kByteLevelBpe) {
      m.bytes[i] = byte_level_to_bytes(p, tmp) ? tmp : p;
    } else {
      const int byte = parse_byte_piece(p);
      if (byte >= 0 && (t == TokenType::kByte || t == TokenType::kNormal)) {
        m.types[i] = TokenType::kByte;
        m.bytes[i] = std::string(1, char(byte));
        if (m.byte_token[size_t(byte)] < 0) m.byte_token[size_t(byte)] = int32_t(i);
      } else {
        std::string s;
        for (size_t k = 0; k < p.size();) {
          if (p.compare(k, kSpmSpace.size(), kSpmSpace) == 0) { s += ' '; k += kSpmSpace.size(); }
          else s += p[k++];
        }
        m.bytes[i] = std::move(s);
      }
    }
    if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) && !p.empty()) {
      m.added_by_first_byte[uint8_t(p[0])].push_back({m.pieces[i], int32_t(i), t != TokenType::kUserDefined});
    }
  }
  for (auto& bucket : m.added_by_first_byte)
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const auto& a, const auto& b) { return a.text.size() > b.text.size(); });

  if (m.kind == TokenizerKind::kByteLevelBpe) {
    for (int b = 0; b < 256; ++b) {
      tmp.clear();
      append_byte_char(tmp, uint8_t(b));
      auto it = m.piece_to_id.find(tmp);
      if (it == m.piece_to_id.end())
        return errorf("%s: byte-level vocabulary has no token for byte 0x%02X", src, b);
      m.byte_token[size_t(b)] = it->second;
    }
  } else {
    bool all_bytes = m.byte_fallback;
    for (int b = 0; b < 256 && all_bytes; ++b) all_bytes = m.byte_token[size_t(b)] >= 0;
    if (!all_bytes && m.unk < 0)
      return errorf("%s: SentencePiece vocabulary has neither all 256 <0xNN> byte tokens nor an "
                    "unknown token, so some text could not be encoded", src);
  }

  for (const auto& pattern : v.split_patterns) {
    auto re = Regex::compile(pattern);
    if (!re) return errorf("%s: pre-tokenizer pattern \"%s\": %s", src, pattern.c_str(), re.error().message.c_str());
    m.splits.push_back(std::move(*re));
  }

  // End-of-generation ids: the model's EOS/EOT/EOM and the family end tokens it has.
  static const char* const kEndTexts[] = {
      ("<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"),  // <｜end▁of▁sentence｜>
      "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>", "</s>", "<|end|>"};
  for (int32_t id : {m.eos, m.eot, m.eom})
    if (id >= 0) m.eog.push_back(id);
  for (const char* text : kEndTexts) {
    auto it = m.piece_to_id.find(text);
    if (it != m.piece_to_id.end() && m.types[size_t(it->second)] == TokenType::kControl) m.eog.push_back(it->second);
  }
  std::sort(m.eog.begin(), m.eog.end());
  m.eog.erase(std::unique(m.eog.begin(), m.eog.end()), m.eog.end());

  return Tokenizer(std::shared_ptr<const Tokenizer::Impl>(std::move(impl)));
}

}  // namespace slm
