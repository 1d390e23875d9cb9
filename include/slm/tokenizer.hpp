// Tokenizers of the DeepSeek-R1 family and its relatives: byte-level BPE (GGUF model `gpt2`,
// Hugging Face "BPE" with a ByteLevel pre-tokenizer) and SentencePiece-style BPE (GGUF model
// `llama`, HF "BPE" with byte_fallback), loaded from GGUF metadata or from tokenizer.json +
// tokenizer_config.json into the same object.
//
// Text policy:
//   - encode() accepts any bytes. Invalid UTF-8 never fails and never crashes: each byte of an
//     invalid sequence is a code point of its own with no Unicode category (so it splits like an
//     unassigned character); byte-level BPE encodes the raw byte, SentencePiece uses its
//     <0xNN> byte token (or unk when the vocabulary has none).
//   - decode() returns the exact bytes the tokens stand for, so decode(encode(x)) == x for any x
//     with byte-level BPE (x in NFC when the tokenizer normalizes to NFC) and for SentencePiece
//     vocabularies with byte fallback (where a U+2581 "▁" in x comes back as a space, since
//     SentencePiece writes spaces as U+2581). Its result may thus be invalid UTF-8 for arbitrary ids;
//     StreamingDecoder (below) only ever emits valid UTF-8 and turns bad bytes into U+FFFD.
//   - Special tokens (control tokens such as <｜User｜>, <|im_start|>, <s>) are recognised in
//     the input only with EncodeOptions::parse_special; by default their text is plain text, so
//     user input cannot inject control tokens. Added tokens that are not special (e.g. Qwen's
//     <think>) are always matched whole, as in Hugging Face tokenizers and llama.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "slm/status.hpp"

namespace slm {

namespace gguf {
class File;
}

// GGUF token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class TokenizerKind {
  kByteLevelBpe,  // GPT-2 style: bytes mapped to printable characters, merges by rank
  kSentencePiece, // LLaMA 2 style: "▁" for spaces, dummy prefix, byte fallback <0xNN>
};

struct EncodeOptions {
  bool add_bos = true;         // prepend BOS when the tokenizer's add_bos_token says so
  bool parse_special = false;  // match control tokens written in the text
};

struct DecodeOptions {
  bool skip_special = false;      // drop control tokens (BOS, EOS, <｜User｜>, ...)
  bool strip_dummy_prefix = true; // SentencePiece: drop the space the dummy prefix added
};

class Tokenizer {
 public:
  static Expected<Tokenizer> from_gguf(const gguf::File& file);
  // tokenizer.json text, tokenizer_config.json text (may be empty).
  static Expected<Tokenizer> from_hf_json(std::string_view tokenizer_json,
                                          std::string_view config_json);
  // Reads the two files (config_path may be empty).
  static Expected<Tokenizer> from_hf_files(const std::string& tokenizer_json_path,
                                           const std::string& config_path);

  Expected<std::vector<int32_t>> encode(std::string_view text, EncodeOptions options = {}) const;
  // Encodes text in which only the byte ranges [first, second) listed in `markup` (sorted,
  // disjoint) may contain control tokens, as a chat template produces it: a control token is
  // recognised only when it lies wholly inside one range. No BOS is added.
  Expected<std::vector<int32_t>> encode_with_markup(std::string_view text,
                                                    std::span<const std::pair<size_t, size_t>> markup) const;
  std::string decode(std::span<const int32_t> ids, DecodeOptions options = {}) const;

  // The bytes one token stands for (control tokens: their text); empty for an id out of range.
  std::string_view token_bytes(int32_t id) const;
  // The vocabulary string of a token (byte-level form, "▁" form); empty when out of range.
  std::string_view token_piece(int32_t id) const;
  TokenType token_type(int32_t id) const;
  std::optional<int32_t> find_piece(std::string_view piece) const;

  TokenizerKind kind() const;
  int32_t n_vocab() const;
  // Special ids, -1 when the model has none.
  int32_t bos() const;
  int32_t eos() const;
  int32_t eot() const;
  int32_t pad() const;
  int32_t unk() const;
  bool add_bos() const;  // the model's add_bos_token
  bool add_eos() const;
  // True for the ids that end generation: EOS, EOT/EOM and the family's end tokens
  // (<｜end▁of▁sentence｜>, <|eot_id|>, <|end_of_text|>, <|im_end|>, <|endoftext|>, </s>).
  bool is_end_of_generation(int32_t id) const;
  bool is_eog(int32_t id) const { return is_end_of_generation(id); }
  bool is_control(int32_t id) const;
  // The chat template (tokenizer.chat_template / config "chat_template"), empty when absent.
  const std::string& chat_template() const;
  // The pre-tokenizer preset (GGUF tokenizer.ggml.pre, or a name derived from tokenizer.json).
  const std::string& pre_type() const;
  bool normalizes_nfc() const;

  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<const Impl> impl_;
};

// Turns generated ids into text piece by piece, never emitting part of a UTF-8 sequence: bytes
// of an incomplete sequence are held until the sequence completes; bytes that can never form a
// valid sequence are emitted as U+FFFD; flush() emits what is left (an incomplete tail as
// U+FFFD) and resets.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, DecodeOptions options = {});
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  std::string pending_;
};

// Splits `bytes` into the longest prefix that is valid, complete UTF-8 (invalid bytes replaced
// by U+FFFD) and a tail that is the start of a possibly valid sequence (at most 3 bytes).
// Exposed for tests and for tools that stream raw bytes.
std::string take_complete_utf8(std::string& bytes);

}  // namespace slm
