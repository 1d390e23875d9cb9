// ReasoningSplitter: separates <think>...</think> reasoning from the answer in streamed text.
#include "slm/chat.hpp"

namespace slm {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

// Length of the longest suffix of `s` that is a proper prefix of `tag` (text to hold back).
size_t partial_tag_suffix(std::string_view s, std::string_view tag) {
  for (size_t len = std::min(s.size(), tag.size() - 1); len > 0; --len)
    if (s.substr(s.size() - len) == tag.substr(0, len)) return len;
  return 0;
}

}  // namespace

ReasoningSplitter::ReasoningSplitter(bool starts_in_reasoning, std::string open_tag, std::string close_tag)
    : state_(starts_in_reasoning ? State::kReasoningStart : State::kStart),
      open_(std::move(open_tag)),
      close_(std::move(close_tag)) {
  if (open_.empty()) open_ = "<think>";
  if (close_.empty()) close_ = "</think>";
}

ReasoningSplitter::Output ReasoningSplitter::push(std::string_view text) {
  Output out;
  held_ += text;
  while (true) {
    switch (state_) {
      case State::kStart:
      case State::kReasoningStart: {
        // An opening tag, possibly after whitespace: enter (or stay in) the reasoning.
        const std::string_view rest = trim_left(held_);
        if (rest.empty() || (rest.size() < open_.size() && std::string_view(open_).substr(0, rest.size()) == rest))
          return out;  // not decided yet
        if (rest.substr(0, open_.size()) == open_) {
          held_ = std::string(rest.substr(open_.size()));
          state_ = State::kReasoning;
          continue;
        }
        state_ = state_ == State::kStart ? State::kAnswer : State::kReasoning;
        continue;
      }
      case State::kReasoning: {
        const size_t pos = held_.find(close_);
        if (pos != std::string::npos) {
          out.reasoning += held_.substr(0, pos);
          held_.erase(0, pos + close_.size());
          state_ = State::kAnswerStart;
          continue;
        }
        const size_t keep = partial_tag_suffix(held_, close_);
        out.reasoning += held_.substr(0, held_.size() - keep);
        held_.erase(0, held_.size() - keep);
        return out;
      }
      case State::kAnswerStart: {
        const std::string_view rest = trim_left(held_);
        if (rest.empty()) {
          held_.clear();
          return out;
        }
        held_ = std::string(rest);
        state_ = State::kAnswer;
        continue;
      }
      case State::kAnswer:
        out.answer += held_;
        held_.clear();
        return out;
    }
  }
}

ReasoningSplitter::Output ReasoningSplitter::finish() {
  Output out;
  switch (state_) {
    case State::kStart:
    case State::kAnswer:
      out.answer = std::move(held_);
      break;
    case State::kReasoningStart:
    case State::kReasoning:
      out.reasoning = std::move(held_);
      break;
    case State::kAnswerStart:
      break;
  }
  held_.clear();
  return out;
}

}  // namespace slm
