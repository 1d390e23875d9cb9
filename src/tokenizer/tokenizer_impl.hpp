// Internal state of slm::Tokenizer, shared by the loaders (GGUF, tokenizer.json) and the
// encoder/decoder. Loaders fill a Vocabulary; build_tokenizer() validates it and indexes it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "slm/tokenizer.hpp"
#include "tokenizer/regex.hpp"

namespace slm::tokenizer_internal {

// What a loader reads from a file, before validation.
struct Vocabulary {
  TokenizerKind kind = TokenizerKind::kByteLevelBpe;
  std::vector<std::string> pieces;  // by id; empty string for ids that are not used
  std::vector<TokenType> types;     // by id
  std::vector<float> scores;        // by id (SentencePiece ranks by score when no merges)
  std::vector<std::pair<std::string, std::string>> merges;  // by rank
  bool rank_by_score = false;       // SentencePiece from GGUF: merge priority = score
  bool ignore_merges = false;       // HF BPE option: a pre-token that is a token is kept whole
  bool nfc = false;                 // NFC-normalize text before splitting
  bool add_space_prefix = true;     // SentencePiece dummy prefix ("▁" before each text run)
  bool byte_fallback = true;        // SentencePiece: <0xNN> tokens for unknown characters
  std::vector<std::string> split_patterns;  // applied in sequence (Split "Isolated")
  std::string pre_type;
  int32_t bos = -1, eos = -1, eot = -1, eom = -1, pad = -1, unk = -1;
  bool add_bos = false, add_eos = false;
  std::string chat_template;
  std::string source;  // for messages: "GGUF", "tokenizer.json"
};

// Pre-tokenizer split patterns of a llama.cpp `tokenizer.ggml.pre` name, and the family's NFC
// and ignore_merges settings; false if the name is unknown.
bool preset_patterns(std::string_view pre, std::vector<std::string>& patterns, bool& nfc, bool& ignore_merges);
// The preset whose patterns are exactly `patterns`, or "" (for naming tokenizer.json setups).
std::string preset_name_for(const std::vector<std::string>& patterns);
// True when a token's text looks like a control token (<|...|>, <｜...｜>), as llama.cpp's
// converter treats such added tokens.
bool looks_special(std::string_view text);

// The BPE merge engine's working data (tokenizer.cpp): symbols in a doubly linked list and
// candidate merges in a binary heap, reused across the words of one encode call.
struct Symbol {
  int32_t id;      // token id, -1 when the text is not a token
  uint32_t start;  // byte offset in the word
  uint32_t len;    // bytes; 0 once merged into its left neighbour
  int32_t prev, next;
};
struct Candidate {
  float priority;   // merge rank (< 2^24, exact in a float), or -score for SentencePiece
  uint32_t pos;     // start of the left symbol: ties go to the leftmost pair
  int32_t left, right;
  uint32_t len;     // combined length when queued: a changed neighbour makes it stale
  int32_t result;
};
struct Scratch {
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::string text;
};

}  // namespace slm::tokenizer_internal

namespace slm {

struct Tokenizer::Impl {
  TokenizerKind kind = TokenizerKind::kByteLevelBpe;
  std::vector<std::string> pieces;
  std::vector<std::string> bytes;  // what each token decodes to
  std::vector<TokenType> types;
  std::vector<float> scores;
  std::unordered_map<std::string_view, int32_t> piece_to_id;  // views into `pieces`
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  // (left id << 32 | right id) -> merge, open addressing with linear probing: the merge lookup
  // is the hot loop of BPE, and a node-based std::unordered_map missed the cache on every probe.
  class MergeTable {
   public:
    void reserve(size_t n) {
      size_t cap = 16;
      while (cap < n + n / 2) cap <<= 1;
      keys_.assign(cap, kEmpty);
      values_.assign(cap, Merge{0, 0});
      mask_ = cap - 1;
    }
    // Keeps the first value for a repeated key (the best rank).
    void insert(uint64_t key, Merge m) {
      for (size_t i = slot(key);; i = (i + 1) & mask_) {
        if (keys_[i] == key) return;
        if (keys_[i] == kEmpty) {
          keys_[i] = key;
          values_[i] = m;
          return;
        }
      }
    }
    const Merge* find(uint64_t key) const {
      if (keys_.empty()) return nullptr;
      for (size_t i = slot(key);; i = (i + 1) & mask_) {
        if (keys_[i] == key) return &values_[i];
        if (keys_[i] == kEmpty) return nullptr;
      }
    }

   private:
    static constexpr uint64_t kEmpty = ~uint64_t(0);  // ids are < 2^24, so never a real key
    size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> 32) & mask_; }
    std::vector<uint64_t> keys_;
    std::vector<Merge> values_;
    size_t mask_ = 0;
  };
  MergeTable merges;
  bool rank_by_score = false;
  bool ignore_merges = false;
  bool nfc = false;
  bool add_space_prefix = true;
  bool byte_fallback = true;
  std::vector<tokenizer_internal::Regex> splits;
  std::string pre_type;
  int32_t bos = -1, eos = -1, eot = -1, eom = -1, pad = -1, unk = -1;
  bool add_bos = false, add_eos = false;
  std::vector<int32_t> eog;  // sorted
  std::string chat_template;

  // Added tokens (control and user-defined), matched whole: by first byte, longest first.
  struct Added {
    std::string_view text;
    int32_t id;
    bool control;
  };
  std::array<std::vector<Added>, 256> added_by_first_byte;
  // Byte-level BPE: the id of the token of each byte's character. SentencePiece: <0xNN> ids.
  std::array<int32_t, 256> byte_token{};

  void encode_text(std::string_view text, std::vector<int32_t>& out) const;
  void encode_byte_level_word(std::string_view word_bytes, tokenizer_internal::Scratch& scratch,
                              std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
};

Expected<Tokenizer> build_tokenizer(tokenizer_internal::Vocabulary vocab);

}  // namespace slm
