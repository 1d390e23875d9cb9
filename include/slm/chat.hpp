// Chat prompts and the reasoning channel for the DeepSeek-R1 family.
//
// ChatTemplate is not a Jinja engine: it recognises the model's known templates by distinctive
// substrings of tokenizer.chat_template and renders them in C++, byte for byte as the official
// Jinja text does for plain system/user/assistant conversations (no tools):
//   deepseek-r1  DeepSeek-R1 and the R1-Distill models: BOS, system prompts joined by "\n\n",
//                "<｜User｜>"..., "<｜Assistant｜>" + answer + "<｜end▁of▁sentence｜>"; an earlier
//                assistant turn keeps only what follows its last "</think>"; the generation
//                prompt is "<｜Assistant｜>" plus "<think>\n" when the template adds it.
//   deepseek-v3  the same without reasoning removal, generation prompt "<｜Assistant｜>".
//   llama3       "<|start_header_id|>role<|end_header_id|>\n\n" + trimmed content + "<|eot_id|>".
//   llama2       "[INST] <<SYS>>\n...\n<</SYS>>\n\n ... [/INST] answer </s>".
//   chatml       "<|im_start|>role\ncontent<|im_end|>\n" (Qwen); qwen3 additionally drops the
//                reasoning of assistant turns.
// Rendering keeps template markup apart from message text: render_ids() encodes the markup with
// special tokens recognised and the messages without, so a message cannot inject control tokens.
//
// A chat turn, as slm-run --chat would run it:
//   auto tok = slm::Tokenizer::from_gguf(file);                      // Expected<Tokenizer>
//   auto tmpl = slm::ChatTemplate::for_tokenizer(*tok, name_or_empty);
//   auto prompt = tmpl->render_ids(*tok, messages, /*add_generation_prompt=*/true);
//   slm::StreamingDecoder text(*tok, {.skip_special = true});
//   slm::ReasoningSplitter split(tmpl->prompt_opens_reasoning());
//   for each generated id:
//     if (tok->is_end_of_generation(id)) break;
//     auto out = split.push(text.push(id));   // out.reasoning (print dimmed), out.answer
//   then split.push(text.flush()) and split.finish() for what is left;
//   messages.push_back({"assistant", everything generated});  // the template drops reasoning
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "slm/status.hpp"
#include "slm/tokenizer.hpp"

namespace slm {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatTemplateKind { kDeepSeekR1, kDeepSeekV3, kLlama3, kLlama2, kChatML, kQwen3 };

class ChatTemplate {
 public:
  // Recognises a Jinja chat template; an Error when it is none of the known ones.
  static Expected<ChatTemplate> detect(std::string_view jinja);
  // By name: "deepseek-r1" (generation prompt opens <think>), "deepseek-r1-nothink",
  // "deepseek-v3", "llama3", "llama2", "chatml", "qwen3".
  static Expected<ChatTemplate> by_name(std::string_view name);
  // The template of a tokenizer's model (override_name, when not empty, wins), with the BOS/EOS
  // text of its vocabulary.
  static Expected<ChatTemplate> for_tokenizer(const Tokenizer& tokenizer, std::string_view override_name = {});

  ChatTemplateKind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  // True when the generation prompt ends inside the reasoning block ("<think>\n").
  bool prompt_opens_reasoning() const { return think_prefill_; }

  // BOS/EOS text used in the rendering (defaults: the family's usual tokens).
  void set_special_text(std::string bos, std::string eos);

  // One piece of a rendered prompt: template markup (special tokens allowed) or message text.
  struct Segment {
    std::string text;
    bool markup;
  };
  Expected<std::vector<Segment>> render_segments(std::span<const ChatMessage> messages,
                                                 bool add_generation_prompt) const;
  Expected<std::string> render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  // Rendered and encoded: markup with parse_special, message text without; BOS comes from the
  // template (exactly once), never added again by the encoder.
  Expected<std::vector<int32_t>> render_ids(const Tokenizer& tokenizer, std::span<const ChatMessage> messages,
                                            bool add_generation_prompt) const;

 private:
  ChatTemplateKind kind_ = ChatTemplateKind::kChatML;
  std::string name_;
  bool think_prefill_ = false;
  std::string bos_, eos_;
};

// Routes generated text into reasoning (inside <think>...</think>) and answer, as it streams.
// Robust to: the opening tag pre-filled by the template (start with starts_in_reasoning=true; a
// repeated "<think>" at the start is then dropped), tags split across pushes, leading
// whitespace before "<think>", and generation that stops inside the reasoning (finish() returns
// the held-back text as reasoning). Text before any tag is answer when the model does not
// reason. Whitespace right after "</think>" is dropped from the answer.
class ReasoningSplitter {
 public:
  explicit ReasoningSplitter(bool starts_in_reasoning = false, std::string open_tag = "<think>",
                             std::string close_tag = "</think>");

  struct Output {
    std::string reasoning;
    std::string answer;
  };
  Output push(std::string_view text);
  Output finish();
  bool in_reasoning() const { return state_ == State::kReasoning || state_ == State::kReasoningStart; }

 private:
  enum class State { kStart, kReasoningStart, kReasoning, kAnswerStart, kAnswer };
  State state_;
  std::string open_, close_;
  std::string held_;
};

}  // namespace slm
