// Chat templates of the R1 family, rendered in C++ after recognising the Jinja text.
#include "slm/chat.hpp"

namespace slm {

namespace {

// U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK as DeepSeek's tokens use them.
#define SLM_FW_BAR "\xEF\xBD\x9C"
#define SLM_SPM_SPACE "\xE2\x96\x81"
constexpr std::string_view kDsBos = "<" SLM_FW_BAR "begin" SLM_SPM_SPACE "of" SLM_SPM_SPACE "sentence" SLM_FW_BAR ">";
constexpr std::string_view kDsEos = "<" SLM_FW_BAR "end" SLM_SPM_SPACE "of" SLM_SPM_SPACE "sentence" SLM_FW_BAR ">";
constexpr std::string_view kDsUser = "<" SLM_FW_BAR "User" SLM_FW_BAR ">";
constexpr std::string_view kDsAssistant = "<" SLM_FW_BAR "Assistant" SLM_FW_BAR ">";

bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

// Python's str.strip() / lstrip() / rstrip() for the whitespace that matters in chat text.
bool is_py_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
std::string_view strip(std::string_view s) {
  while (!s.empty() && is_py_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_py_space(s.back())) s.remove_suffix(1);
  return s;
}
std::string_view strip_chars(std::string_view s, char c, bool left, bool right) {
  while (left && !s.empty() && s.front() == c) s.remove_prefix(1);
  while (right && !s.empty() && s.back() == c) s.remove_suffix(1);
  return s;
}
// Jinja's s.split(sep)[-1] and s.split(sep)[0].
std::string_view after_last(std::string_view s, std::string_view sep) {
  const size_t p = s.rfind(sep);
  return p == std::string_view::npos ? s : s.substr(p + sep.size());
}
std::string_view before_first(std::string_view s, std::string_view sep) {
  const size_t p = s.find(sep);
  return p == std::string_view::npos ? s : s.substr(0, p);
}

struct Builder {
  std::vector<ChatTemplate::Segment> out;
  void markup(std::string_view s) { add(s, true); }
  void text(std::string_view s) { add(s, false); }
  void add(std::string_view s, bool m) {
    if (s.empty()) return;
    if (!out.empty() && out.back().markup == m) out.back().text += s;
    else out.push_back({std::string(s), m});
  }
};

Status check_role(const ChatMessage& m, size_t i) {
  if (m.role != "system" && m.role != "user" && m.role != "assistant")
    return errorf("chat: message %zu has role \"%s\" (expected system, user or assistant)", i, m.role.c_str());
  return Status();
}

}  // namespace

Expected<ChatTemplate> ChatTemplate::by_name(std::string_view name) {
  ChatTemplate t;
  t.name_ = std::string(name);
  if (name == "deepseek-r1") { t.kind_ = ChatTemplateKind::kDeepSeekR1; t.think_prefill_ = true; }
  else if (name == "deepseek-r1-nothink") t.kind_ = ChatTemplateKind::kDeepSeekR1;
  else if (name == "deepseek-v3") t.kind_ = ChatTemplateKind::kDeepSeekV3;
  else if (name == "llama3") t.kind_ = ChatTemplateKind::kLlama3;
  else if (name == "llama2") t.kind_ = ChatTemplateKind::kLlama2;
  else if (name == "chatml") t.kind_ = ChatTemplateKind::kChatML;
  else if (name == "qwen3") t.kind_ = ChatTemplateKind::kQwen3;
  else
    return errorf("chat: unknown template name \"%.*s\" (known: deepseek-r1, deepseek-r1-nothink, "
                  "deepseek-v3, llama3, llama2, chatml, qwen3)", int(name.size()), name.data());
  switch (t.kind_) {
    case ChatTemplateKind::kDeepSeekR1:
    case ChatTemplateKind::kDeepSeekV3: t.bos_ = kDsBos; t.eos_ = kDsEos; break;
    case ChatTemplateKind::kLlama3: t.bos_ = "<|begin_of_text|>"; t.eos_ = "<|eot_id|>"; break;
    case ChatTemplateKind::kLlama2: t.bos_ = "<s>"; t.eos_ = "</s>"; break;
    case ChatTemplateKind::kChatML:
    case ChatTemplateKind::kQwen3: t.bos_ = ""; t.eos_ = "<|im_end|>"; break;
  }
  return t;
}

Expected<ChatTemplate> ChatTemplate::detect(std::string_view j) {
  if (contains(j, kDsAssistant)) {
    // R1's generation prompt opens <think> (later R1 releases; also the project's own model,
    // whose template has no </think> stripping); the first R1 release only strips </think>.
    if (contains(j, std::string(kDsAssistant) + "<think>")) return by_name("deepseek-r1");
    if (contains(j, "</think>")) return by_name("deepseek-r1-nothink");
    return by_name("deepseek-v3");
  }
  if (contains(j, "<|start_header_id|>")) return by_name("llama3");
  if (contains(j, "[INST]")) return by_name("llama2");
  if (contains(j, "<|im_start|>")) return by_name(contains(j, "</think>") ? "qwen3" : "chatml");
  if (j.empty()) return errorf("chat: the model has no chat template; choose one by name");
  return errorf("chat: unrecognised chat template (%zu bytes); choose one by name", j.size());
}

Expected<ChatTemplate> ChatTemplate::for_tokenizer(const Tokenizer& tok, std::string_view override_name) {
  auto t = override_name.empty() ? detect(tok.chat_template()) : by_name(override_name);
  if (!t) return t;
  std::string bos = tok.bos() >= 0 ? std::string(tok.token_piece(tok.bos())) : "";
  std::string eos = tok.eos() >= 0 ? std::string(tok.token_piece(tok.eos())) : t->eos_;
  // ChatML models have a BOS id (llama.cpp) but their templates never write it.
  if (t->kind_ == ChatTemplateKind::kChatML || t->kind_ == ChatTemplateKind::kQwen3) bos.clear();
  t->set_special_text(std::move(bos), std::move(eos));
  return t;
}

void ChatTemplate::set_special_text(std::string bos, std::string eos) {
  bos_ = std::move(bos);
  eos_ = std::move(eos);
}

Expected<std::vector<ChatTemplate::Segment>> ChatTemplate::render_segments(std::span<const ChatMessage> msgs,
                                                                           bool gen) const {
  for (size_t i = 0; i < msgs.size(); ++i) SLM_TRY(check_role(msgs[i], i));
  Builder b;
  switch (kind_) {
    case ChatTemplateKind::kDeepSeekR1:
    case ChatTemplateKind::kDeepSeekV3: {
      b.markup(bos_);
      bool first_system = true;
      for (const auto& m : msgs) {
        if (m.role != "system") continue;
        if (!first_system) b.text("\n\n");
        b.text(m.content);
        first_system = false;
      }
      for (const auto& m : msgs) {
        if (m.role == "user") {
          b.markup(kDsUser);
          b.text(m.content);
        } else if (m.role == "assistant") {
          b.markup(kDsAssistant);
          b.text(kind_ == ChatTemplateKind::kDeepSeekR1 ? after_last(m.content, "</think>") : m.content);
          b.markup(eos_);
        }
      }
      if (gen) {
        b.markup(kDsAssistant);
        if (think_prefill_) b.markup("<think>\n");
      }
      break;
    }
    case ChatTemplateKind::kLlama3:
      for (size_t i = 0; i < msgs.size(); ++i) {
        if (i == 0) b.markup(bos_);
        b.markup("<|start_header_id|>" + msgs[i].role + "<|end_header_id|>\n\n");
        b.text(strip(msgs[i].content));
        b.markup("<|eot_id|>");
      }
      if (gen) b.markup("<|start_header_id|>assistant<|end_header_id|>\n\n");
      break;
    case ChatTemplateKind::kLlama2: {
      size_t start = 0;
      std::string system;
      bool has_system = false;
      if (!msgs.empty() && msgs[0].role == "system") {
        system = msgs[0].content;
        has_system = true;
        start = 1;
      }
      for (size_t i = start; i < msgs.size(); ++i) {
        const bool expect_user = (i - start) % 2 == 0;
        if ((msgs[i].role == "user") != expect_user)
          return errorf("chat: llama2 conversations must alternate user/assistant/user/... (message %zu is %s)", i,
                        msgs[i].role.c_str());
        std::string content = msgs[i].content;
        if (i == start && has_system) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
        if (msgs[i].role == "user") {
          b.markup(bos_);
          b.markup("[INST] ");
          b.text(strip(content));
          b.markup(" [/INST]");
        } else {
          b.markup(" ");
          b.text(strip(content));
          b.markup(" ");
          b.markup(eos_);
        }
      }
      break;  // the official template has no generation prompt: the turn ends with [/INST]
    }
    case ChatTemplateKind::kChatML:
    case ChatTemplateKind::kQwen3: {
      size_t last_query = msgs.empty() ? 0 : msgs.size() - 1;
      for (size_t i = msgs.size(); i-- > 0;)
        if (msgs[i].role == "user") { last_query = i; break; }
      for (size_t i = 0; i < msgs.size(); ++i) {
        const auto& m = msgs[i];
        b.markup("<|im_start|>" + m.role + "\n");
        if (m.role == "assistant" && kind_ == ChatTemplateKind::kQwen3) {
          std::string_view content = m.content, reasoning;
          if (contains(content, "</think>")) {
            reasoning = strip_chars(after_last(strip_chars(before_first(content, "</think>"), '\n', false, true), "<think>"),
                                    '\n', true, false);
            content = strip_chars(after_last(content, "</think>"), '\n', true, false);
          }
          if (i > last_query && (i + 1 == msgs.size() || !reasoning.empty())) {
            b.markup("<think>\n");
            b.text(strip_chars(reasoning, '\n', true, true));
            b.markup("\n</think>\n\n");
            b.text(strip_chars(content, '\n', true, false));
          } else {
            b.text(content);
          }
        } else {
          b.text(m.content);
        }
        b.markup("<|im_end|>\n");
      }
      if (gen) b.markup("<|im_start|>assistant\n");
      break;
    }
  }
  return std::move(b.out);
}

Expected<std::string> ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  auto segs = render_segments(messages, add_generation_prompt);
  if (!segs) return segs.error();
  std::string out;
  for (const auto& s : *segs) out += s.text;
  return out;
}

Expected<std::vector<int32_t>> ChatTemplate::render_ids(const Tokenizer& tok, std::span<const ChatMessage> messages,
                                                        bool add_generation_prompt) const {
  auto segs = render_segments(messages, add_generation_prompt);
  if (!segs) return segs.error();
  std::string text;
  std::vector<std::pair<size_t, size_t>> markup;
  for (const auto& s : *segs) {
    if (s.markup) markup.push_back({text.size(), text.size() + s.text.size()});
    text += s.text;
  }
  return tok.encode_with_markup(text, markup);
}

}  // namespace slm
