// Tokenizer unit tests: Unicode tables and NFC, the split-pattern matcher, BPE merges, special
// tokens, SentencePiece from GGUF, decoding and streaming, bad vocabularies, long inputs.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "slm/gguf.hpp"
#include "slm/json.hpp"
#include "slm/tokenizer.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/unicode.hpp"

using slm::Tokenizer;
namespace uc = slm::unicode;

namespace {

// ---- helpers -------------------------------------------------------------------------------

std::string utf8(uint32_t cp) {
  std::string s;
  uc::append_utf8(s, cp);
  return s;
}

// The GPT-2 byte -> character map, written independently of the library's.
std::string byte_char(int b) {
  std::vector<int> bs;
  for (int c = '!'; c <= '~'; ++c) bs.push_back(c);
  for (int c = 0xA1; c <= 0xAC; ++c) bs.push_back(c);
  for (int c = 0xAE; c <= 0xFF; ++c) bs.push_back(c);
  int n = 0;
  for (int c = 0; c < 256; ++c) {
    bool printable = false;
    for (int x : bs) printable |= x == c;
    if (!printable) {
      if (c == b) return utf8(uint32_t(256 + n));
      ++n;
    } else if (c == b) {
      return utf8(uint32_t(c));
    }
  }
  return "";
}

// A small byte-level BPE tokenizer.json: 256 byte tokens (id = byte), then a few merges.
struct TinyBpe {
  std::vector<std::pair<std::string, int>> extra = {{"he", 256}, {"ll", 257}, {"hell", 258}, {"hello", 259},
                                                    {byte_char(' ') + "w", 260}, {"aa", 261}};
  std::vector<std::string> merges = {"h e", "l l", "he ll", "hell o", byte_char(' ') + " w", "a a"};
  std::string added = R"([{"id":262,"content":"<|ctrl|>","special":true},{"id":263,"content":"<tag>","special":false},
                          {"id":264,"content":"<s>","special":true}])";
  std::string config = R"({"bos_token":"<s>","add_bos_token":true,"chat_template":"<|im_start|>"})";
  std::string pre = R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":true})";

  std::string json() const {
    slm::json::Writer w;
    w.begin_object();
    w.key("model");
    w.begin_object();
    w.key("type");
    w.value("BPE");
    w.key("vocab");
    w.begin_object();
    for (int b = 0; b < 256; ++b) {
      w.key(byte_char(b));
      w.value(b);
    }
    for (const auto& [t, id] : extra) {
      w.key(t);
      w.value(id);
    }
    w.end_object();
    w.key("merges");
    w.begin_array();
    for (const auto& m : merges) w.value(m);
    w.end_array();
    w.end_object();
    w.key("added_tokens");
    w.raw(added);
    w.key("pre_tokenizer");
    w.raw(pre);
    w.end_object();
    return w.take();
  }
  Tokenizer build() const {
    auto t = Tokenizer::from_hf_json(json(), config);
    REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error().message));
    return *t;
  }
};

std::vector<int32_t> enc(const Tokenizer& t, std::string_view s, bool special = false, bool bos = false) {
  auto r = t.encode(s, {.add_bos = bos, .parse_special = special});
  REQUIRE(r.ok());
  return *r;
}

std::vector<std::pair<uint32_t, uint32_t>> split(std::string_view pattern, std::string_view text) {
  auto re = slm::tokenizer_internal::Regex::compile(pattern);
  REQUIRE_MESSAGE(re.ok(), (re.ok() ? "" : re.error().message));
  std::vector<uint32_t> cps;
  std::vector<uint8_t> props;
  for (size_t i = 0; i < text.size();) {
    const uint32_t cp = uc::decode_utf8(text, i);
    cps.push_back(cp);
    props.push_back(uc::properties(cp));
  }
  std::vector<std::pair<uint32_t, uint32_t>> out;
  re->find_all(cps, props, out);
  return out;
}

using Spans = std::vector<std::pair<uint32_t, uint32_t>>;

}  // namespace

// ---- Unicode ---------------------------------------------------------------------------------

TEST_CASE("unicode: general categories and JS whitespace") {
  CHECK(uc::category('A') == uc::Lu);
  CHECK(uc::category('z') == uc::Ll);
  CHECK(uc::category(0x4E2D) == uc::Lo);   // 中
  CHECK(uc::category(0xAC00) == uc::Lo);   // 가 (inside a First/Last range)
  CHECK(uc::category(0x0661) == uc::Nd);   // Arabic-Indic one
  CHECK(uc::category(0x2167) == uc::Nl);   // Ⅷ
  CHECK(uc::category(0x00BD) == uc::No);   // ½
  CHECK(uc::category(0x0301) == uc::Mn);
  CHECK(uc::category('!') == uc::Po);
  CHECK(uc::category('$') == uc::Sc);
  CHECK(uc::category(0x1F600) == uc::So);  // 😀
  CHECK(uc::category(0x200D) == uc::Cf);   // ZWJ
  CHECK(uc::category(0xE000) == uc::Co);
  CHECK(uc::category(0x0378) == uc::Cn);   // unassigned
  CHECK(uc::category(0x110000) == uc::Cn);
  for (uint32_t cp : {0x20u, 0x09u, 0x0Au, 0x0Bu, 0x0Cu, 0x0Du, 0xA0u, 0x3000u, 0x2028u, 0xFEFFu})
    CHECK(uc::is_js_space(cp));
  for (uint32_t cp : {0x85u, 0x200Bu, 0x41u, 0x180Eu}) CHECK_FALSE(uc::is_js_space(cp));
}

TEST_CASE("unicode: UTF-8 decoding rejects overlongs, surrogates and truncation") {
  auto first = [](std::string_view s) {
    size_t i = 0;
    const uint32_t cp = uc::decode_utf8(s, i);
    return std::pair{cp, i};
  };
  CHECK(first("\xE2\x82\xAC") == std::pair{0x20ACu, size_t(3)});
  CHECK(first("\xF0\x9F\x98\x80") == std::pair{0x1F600u, size_t(4)});
  CHECK(first("\xC0\x80") == std::pair{uc::kInvalid, size_t(1)});          // overlong NUL
  CHECK(first("\xE0\x80\xAF") == std::pair{uc::kInvalid, size_t(1)});      // overlong '/'
  CHECK(first("\xED\xA0\x80") == std::pair{uc::kInvalid, size_t(1)});      // surrogate
  CHECK(first("\xF4\x90\x80\x80") == std::pair{uc::kInvalid, size_t(1)});  // > U+10FFFF
  CHECK(first("\xE2\x82") == std::pair{uc::kInvalid, size_t(1)});          // truncated
  CHECK(first("\x80") == std::pair{uc::kInvalid, size_t(1)});
  CHECK(first("\xFF") == std::pair{uc::kInvalid, size_t(1)});
  CHECK(uc::is_valid_utf8("h\xC3\xA9llo"));
  CHECK_FALSE(uc::is_valid_utf8("h\xC3llo"));
}

TEST_CASE("unicode: NFC") {
  CHECK(uc::to_nfc("e\xCC\x81") == "\xC3\xA9");                         // e + acute -> é
  CHECK(uc::to_nfc("\xE2\x84\xAB") == "\xC3\x85");                       // Å (angstrom sign) -> Å
  CHECK(uc::to_nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8") == "\xEA\xB0\x81");  // jamo -> 각
  CHECK(uc::to_nfc("q\xCC\x87\xCC\xA3") == "q\xCC\xA3\xCC\x87");        // reordered by class, no composite
  CHECK(uc::to_nfc("a\xCC\xA8\xCC\x81") == "\xC4\x85\xCC\x81");         // ą + acute
  CHECK(uc::to_nfc("\xC3\x85\xCC\x81") == "\xC7\xBA");                   // Å + acute -> Ǻ
  CHECK(uc::to_nfc("\xE0\xA4\x95\xE0\xA4\xBC") == "\xE0\xA4\x95\xE0\xA4\xBC");  // क़ is excluded
  CHECK(uc::to_nfc("plain ascii, caf\xC3\xA9") == "plain ascii, caf\xC3\xA9");
  CHECK(uc::to_nfc("\xFF" "e\xCC\x81\xC3") == "\xFF\xC3\xA9\xC3");       // invalid bytes kept
}

// ---- the split-pattern matcher -----------------------------------------------------------------

TEST_CASE("regex: ECMAScript-style leftmost, ordered alternatives, greedy with backtracking") {
  const char* gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  // "I'm  here 42!" -> I | 'm | " " | " here" | " 42" | "!"
  CHECK(split(gpt2, "I'm  here 42!") == Spans{{0, 1}, {1, 3}, {3, 4}, {4, 9}, {9, 12}, {12, 13}});
  CHECK(split(R"(\p{N}{1,3})", "1234567") == Spans{{0, 3}, {3, 6}, {6, 7}});
  CHECK(split(R"((?i:'s|'ll))", "'S 'Ll 's") == Spans{{0, 2}, {3, 6}, {7, 9}});
  CHECK(split(R"(\s+$)", "a  ") == Spans{{1, 3}});
  CHECK(split(R"(a+?)", "aaa") == Spans{{0, 1}, {1, 2}, {2, 3}});
  CHECK(split(R"(a(?=b))", "aab") == Spans{{1, 2}});
  CHECK(split(R"([\u4e00-\u9fa5]+)", "ab中文cd") == Spans{{2, 4}});
  CHECK(split(R"([^\r\n\p{L}\p{N}]?\p{L}+)", "\xF0\x9F\x98\x80hi") == Spans{{0, 3}});
  CHECK(split(R"(x*)", "ab").size() == 3);  // empty matches advance one code point
  // Hostile patterns are refused or bounded, never a stack overflow.
  CHECK_FALSE(slm::tokenizer_internal::Regex::compile(std::string(200, '(') + "a" + std::string(200, ')')).ok());
  CHECK_FALSE(slm::tokenizer_internal::Regex::compile(std::string(20000, 'a')).ok());
  std::string abab;
  for (int i = 0; i < 100000; ++i) abab += "ab";
  CHECK_FALSE(split("(?:ab)+", abab).empty());  // a repeated group stops at the depth bound
  for (const char* bad : {"(", "a)", "[a-", "\\p{Xx}", "*a", "a{2,1}x", "(?<n>a)", "\\q", "[z-a]"}) {
    CAPTURE(bad);
    CHECK_FALSE(slm::tokenizer_internal::Regex::compile(bad).ok());
  }
}

// ---- byte-level BPE --------------------------------------------------------------------------

TEST_CASE("byte-level BPE: merges by rank, leftmost ties, added tokens, BOS") {
  const Tokenizer t = TinyBpe().build();
  CHECK(t.kind() == slm::TokenizerKind::kByteLevelBpe);
  CHECK(t.n_vocab() == 265);
  CHECK(t.pre_type() == "gpt-2");
  CHECK(enc(t, "hello") == std::vector<int32_t>{259});
  CHECK(enc(t, "hell") == std::vector<int32_t>{258});
  CHECK(enc(t, "aaa") == std::vector<int32_t>{261, 'a'});  // leftmost pair first
  CHECK(enc(t, "hello world") == std::vector<int32_t>{259, 260, 'o', 'r', 'l', 'd'});
  // A control token's text is plain text unless parse_special is set; user-defined always match.
  CHECK(enc(t, "<|ctrl|>") == std::vector<int32_t>{'<', '|', 'c', 't', 'r', 'l', '|', '>'});
  CHECK(enc(t, "<|ctrl|>", true) == std::vector<int32_t>{262});
  CHECK(enc(t, "x<tag>y") == std::vector<int32_t>{'x', 263, 'y'});
  CHECK(enc(t, "hi", false, true) == std::vector<int32_t>{264, 'h', 'i'});
  CHECK(t.bos() == 264);
  CHECK(t.add_bos());
  CHECK(t.chat_template() == "<|im_start|>");
  CHECK(t.decode(std::vector<int32_t>{264, 259, 260}) == "<s>hello w");
  CHECK(t.decode(std::vector<int32_t>{264, 259, 260}, {.skip_special = true}) == "hello w");
  CHECK(t.token_piece(260) == byte_char(' ') + "w");
  CHECK(t.token_bytes(260) == " w");
  CHECK(t.find_piece("hello") == 259);
  CHECK_FALSE(t.find_piece("nope").has_value());
  CHECK(t.decode(std::vector<int32_t>{-5, 100000, 'a'}) == "a");  // ids out of range are skipped
}

TEST_CASE("byte-level BPE: any bytes round-trip, invalid UTF-8 never fails") {
  const Tokenizer t = TinyBpe().build();
  std::mt19937 rng(7);
  for (int k = 0; k < 500; ++k) {
    std::string s(size_t(rng() % 64), '\0');
    for (auto& c : s) c = char(rng() % 256);
    auto ids = t.encode(s, {.add_bos = false});
    REQUIRE(ids.ok());
    CHECK((t.decode(*ids) == s));
  }
}

TEST_CASE("byte-level BPE: a 1 MB line tokenizes in bounded time") {
  const Tokenizer t = TinyBpe().build();
  // One 1 MB "word" (a single pre-token: the merge queue must not be quadratic), then 1 MB of
  // short words and spaces.
  for (const std::string& line : {std::string(1 << 20, 'a'), [] {
                                    std::string s;
                                    while (s.size() < (1u << 20)) s += "hello  world\thell ";
                                    return s;
                                  }()}) {
    const auto t0 = std::chrono::steady_clock::now();
    auto ids = t.encode(line, {.add_bos = false});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(ids.ok());
    CHECK((t.decode(*ids) == line));  // (not printed: 1 MB)
    MESSAGE("1 MB line: " << ids->size() << " tokens in " << s << " s");
    CHECK(s < 30.0);  // generous: Debug + ASan on a slow machine; O(n^2) would take hours
  }
}

TEST_CASE("tokenizer.json: bad or inconsistent data is a clear error") {
  auto error_of = [](const TinyBpe& b) {
    auto t = Tokenizer::from_hf_json(b.json(), b.config);
    REQUIRE_FALSE(t.ok());
    return t.error().message;
  };
  {
    TinyBpe b;
    b.merges.push_back("h zz");
    CHECK(error_of(b).find("not in the vocabulary") != std::string::npos);
  }
  {
    TinyBpe b;
    b.merges.push_back("o w");  // "ow" is not a token
    CHECK(error_of(b).find("makes a token") != std::string::npos);
  }
  {
    TinyBpe b;
    b.extra.push_back({"dup", 5});
    CHECK(error_of(b).find("id 5") != std::string::npos);
  }
  {
    TinyBpe b;
    b.config = R"({"bos_token":"<nope>"})";
    CHECK(error_of(b).find("bos_token") != std::string::npos);
  }
  {
    TinyBpe b;
    b.pre = R"({"type":"Whitespace"})";
    CHECK(error_of(b).find("Whitespace") != std::string::npos);
  }
  {
    TinyBpe b;
    b.pre = R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]})";
    CHECK(error_of(b).find("pattern") != std::string::npos);
  }
  CHECK_FALSE(Tokenizer::from_hf_json("{", "").ok());
  CHECK_FALSE(Tokenizer::from_hf_json(R"({"model":{"type":"WordPiece","vocab":{}}})", "").ok());
  CHECK_FALSE(Tokenizer::from_hf_json(R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"ByteLevel"}})", "").ok());
  CHECK_FALSE(Tokenizer::from_hf_files("/nonexistent/tokenizer.json", "").ok());
}

// ---- streaming decoding ----------------------------------------------------------------------

TEST_CASE("take_complete_utf8 holds incomplete sequences and replaces invalid bytes") {
  std::string b = "ab\xE2\x82";
  CHECK(slm::take_complete_utf8(b) == "ab");
  CHECK(b == "\xE2\x82");
  b += "\xAC!";
  CHECK(slm::take_complete_utf8(b) == "\xE2\x82\xAC!");
  CHECK(b.empty());
  b = "\xFFx\xC0\x80";
  CHECK(slm::take_complete_utf8(b) == "\xEF\xBF\xBDx\xEF\xBF\xBD\xEF\xBF\xBD");
  b = "\xED\xA0";  // a surrogate can never complete
  CHECK(slm::take_complete_utf8(b) == "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("StreamingDecoder never emits part of a UTF-8 sequence") {
  const Tokenizer t = TinyBpe().build();
  const std::string emoji = "\xF0\x9F\x98\x80";
  auto ids = t.encode("hi " + emoji + "!", {.add_bos = false});
  REQUIRE(ids.ok());
  slm::StreamingDecoder d(t);
  std::string out;
  for (int32_t id : *ids) {
    const std::string piece = d.push(id);
    CHECK(uc::is_valid_utf8(piece));
    out += piece;
  }
  out += d.flush();
  CHECK(out == "hi " + emoji + "!");
  // Generation that stops inside a sequence: the tail becomes one U+FFFD at flush.
  CHECK(d.push(0xF0) == "");
  CHECK(d.push(0x9F) == "");
  CHECK(d.flush() == "\xEF\xBF\xBD");
  slm::StreamingDecoder quiet(t, {.skip_special = true});
  CHECK(quiet.push(264) == "");
  CHECK(quiet.push('a') == "a");
}

// ---- SentencePiece from GGUF -------------------------------------------------------------------

namespace {

struct SpmVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  void add(const std::string& t, float score, int32_t type = 1) {
    tokens.push_back(t);
    scores.push_back(score);
    types.push_back(type);
  }
  SpmVocab() {
    add("<unk>", 0, 2);
    add("<s>", 0, 3);
    add("</s>", 0, 3);
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      add(buf, 0, 6);
    }
    const std::string sp = "\xE2\x96\x81";
    for (const char* c : {"h", "e", "l", "o", "w", "r", "d"}) add(c, -10);
    add(sp, -5);
    add(sp + "h", -3);
    add("he", -4);
    add("ll", -2);
    add("llo", -2.5f);
    add(sp + "he", -1.5f);
    add(sp + "hello", -1);
    add("hell", -3.5f);
    add(sp + "hell", -1.2f);
  }
  std::vector<uint8_t> gguf(const char* model = "llama", bool types_ok = true) const {
    slm::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", model);
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_float32_array("tokenizer.ggml.scores", scores);
    std::vector<int32_t> ty = types;
    if (!types_ok) ty.pop_back();
    w.add_int32_array("tokenizer.ggml.token_type", ty);
    w.add_uint32("tokenizer.ggml.bos_token_id", 1);
    w.add_uint32("tokenizer.ggml.eos_token_id", 2);
    w.add_uint32("tokenizer.ggml.unknown_token_id", 0);
    w.add_string("tokenizer.chat_template", "[INST]");
    auto buf = w.write_buffer();
    REQUIRE(buf.ok());
    return *buf;
  }
};

}  // namespace

TEST_CASE("SentencePiece (GGUF llama): scores, dummy prefix, byte fallback") {
  const SpmVocab v;
  const auto bytes = v.gguf();
  auto f = slm::gguf::File::from_buffer(bytes.data(), bytes.size());
  REQUIRE(f.ok());
  auto t = Tokenizer::from_gguf(*f);
  REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error().message));
  CHECK(t->kind() == slm::TokenizerKind::kSentencePiece);
  const int32_t hello = *t->find_piece("\xE2\x96\x81hello");
  const int32_t space = *t->find_piece("\xE2\x96\x81");
  CHECK(enc(*t, "hello", false, true) == std::vector<int32_t>{1, hello});  // add_bos defaults on
  // "é" is not a token: its two UTF-8 bytes as <0xC3> <0xA9> (ids 3 + byte).
  CHECK(enc(*t, "é") == std::vector<int32_t>{space, 3 + 0xC3, 3 + 0xA9});
  CHECK(t->decode(enc(*t, "hello hello", false, true)) == "<s>hello hello");
  CHECK(t->decode(enc(*t, "hello hello", false, true), {.skip_special = true}) == "hello hello");
  CHECK(t->decode(enc(*t, " é wörld")) == " é wörld");
  CHECK(enc(*t, "<s>", true) == std::vector<int32_t>{1});
  CHECK(enc(*t, "<s>").size() > 1);
  CHECK(t->is_end_of_generation(2));
  CHECK_FALSE(t->is_end_of_generation(1));
  CHECK(t->chat_template() == "[INST]");
}

TEST_CASE("GGUF: bad tokenizer metadata is a clear error") {
  const SpmVocab v;
  {
    const auto bytes = v.gguf("llama", false);
    auto f = slm::gguf::File::from_buffer(bytes.data(), bytes.size());
    REQUIRE(f.ok());
    auto t = Tokenizer::from_gguf(*f);
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().message.find("token_type") != std::string::npos);
  }
  {
    const auto bytes = v.gguf("bert");
    auto f = slm::gguf::File::from_buffer(bytes.data(), bytes.size());
    REQUIRE(f.ok());
    auto t = Tokenizer::from_gguf(*f);
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().message.find("bert") != std::string::npos);
  }
  {
    const auto bytes = v.gguf("gpt2");  // no merges
    auto f = slm::gguf::File::from_buffer(bytes.data(), bytes.size());
    REQUIRE(f.ok());
    CHECK_FALSE(Tokenizer::from_gguf(*f).ok());
  }
  {
    slm::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "gpt2");
    std::vector<std::string> toks;
    for (int b = 0; b < 256; ++b) toks.push_back(byte_char(b));
    w.add_string_array("tokenizer.ggml.tokens", toks);
    w.add_string_array("tokenizer.ggml.merges", std::vector<std::string>{});
    w.add_string("tokenizer.ggml.pre", "no-such-pre");
    auto bytes = w.write_buffer();
    REQUIRE(bytes.ok());
    auto f = slm::gguf::File::from_buffer(bytes->data(), bytes->size());
    REQUIRE(f.ok());
    auto t = Tokenizer::from_gguf(*f);
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().message.find("no-such-pre") != std::string::npos);
    w.add_uint32("tokenizer.ggml.bos_token_id", 999);
  }
}

TEST_CASE("stories260K.gguf (../shared): the golden prompt ids") {
  const char* src = std::getenv("SLM_SOURCE_DIR");
  const std::filesystem::path p = std::filesystem::path(src ? src : ".") / ".." / "shared" / "data" / "models" / "stories260K.gguf";
  if (!std::filesystem::exists(p)) {
    MESSAGE(p.string() << " is absent: the stories260K tokenizer check did not run");
    return;
  }
  auto f = slm::gguf::File::open(p.string());
  REQUIRE(f.ok());
  auto t = Tokenizer::from_gguf(*f);
  REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error().message));
  CHECK(t->n_vocab() == 512);
  CHECK(enc(*t, "Once upon a time", false, true) == std::vector<int32_t>{1, 403, 407, 261, 378});
  CHECK(t->decode(std::vector<int32_t>{1, 403, 407, 261, 378}, {.skip_special = true}) == "Once upon a time");
}

// The Unicode Character Database's own NFC conformance test (Debian's unicode-data ships it
// compressed; bzcat reads it). Every line: c2 == NFC(c1) == NFC(c2) == NFC(c3), c4 == NFC(c4) == NFC(c5).
TEST_CASE("unicode: NFC passes NormalizationTest.txt") {
  const char* path = "/usr/share/unicode/NormalizationTest.txt.bz2";
  if (!std::filesystem::exists(path)) {
    MESSAGE(path << " is absent (package unicode-data): the NFC conformance test did not run");
    return;
  }
  FILE* p = popen((std::string("bzcat ") + path + " 2>/dev/null").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string text;
  char buf[1 << 16];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0 || text.empty()) {
    MESSAGE("bzcat could not read " << path << ": the NFC conformance test did not run");
    return;
  }
  auto field = [](std::string_view f) {  // "0044 0307" -> UTF-8
    std::string s;
    size_t i = 0;
    while (i < f.size()) {
      while (i < f.size() && f[i] == ' ') ++i;
      size_t j = i;
      while (j < f.size() && f[j] != ' ') ++j;
      if (j > i) s += utf8(uint32_t(std::stoul(std::string(f.substr(i, j - i)), nullptr, 16)));
      i = j;
    }
    return s;
  };
  size_t lines = 0, bad = 0;
  std::string_view all = text;
  while (!all.empty()) {
    const size_t nl = all.find('\n');
    std::string_view line = all.substr(0, nl);
    all = nl == std::string_view::npos ? std::string_view() : all.substr(nl + 1);
    line = line.substr(0, line.find('#'));
    if (line.empty() || line[0] == '@') continue;
    std::vector<std::string> c;
    for (size_t k = 0; k < 5; ++k) {
      const size_t semi = line.find(';');
      if (semi == std::string_view::npos) break;
      c.push_back(field(line.substr(0, semi)));
      line.remove_prefix(semi + 1);
    }
    if (c.size() != 5) continue;
    ++lines;
    const bool ok = uc::to_nfc(c[0]) == c[1] && uc::to_nfc(c[1]) == c[1] && uc::to_nfc(c[2]) == c[1] &&
                    uc::to_nfc(c[3]) == c[3] && uc::to_nfc(c[4]) == c[3];
    bad += !ok;
  }
  MESSAGE("NormalizationTest: " << lines << " lines, " << bad << " NFC mismatches");
  CHECK(lines > 15000);
  CHECK(bad == 0);
}
