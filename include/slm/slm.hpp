// A thin header-only C++17 wrapper over the C ABI (slm.h): RAII handles, std::string and
// std::vector instead of buffers, results that carry the status and message. It adds no symbol
// to the library: everything here is inline over the slm_* calls.
//
//   auto model = slm::abi::Model::from_file("m.gguf");
//   if (!model.ok()) { fprintf(stderr, "%s\n", model.error().c_str()); return 1; }
//   auto ctx = model->new_context(slm_context_default_params());
//   auto ids = model->chat_tokens("deepseek-r1", {{"user", "Hi"}});
//   ctx->generate(*ids, 256, [](int32_t, std::string_view text, slm_channel ch) { ...; return true; });
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "slm/slm.h"

namespace slm::abi {

// A value, or the status and message of the call that failed.
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}
  Result(slm_status status, std::string message) : status_(status), error_(std::move(message)) {}
  bool ok() const { return status_ == SLM_OK; }
  explicit operator bool() const { return ok(); }
  slm_status status() const { return status_; }
  const std::string& error() const { return error_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  T& operator*() { return *value_; }

 private:
  std::optional<T> value_;
  slm_status status_ = SLM_OK;
  std::string error_;
};

struct Message {
  std::string role, content;
};

class Context;

class Model {
 public:
  static Result<Model> from_file(const std::string& path, slm_model_params params = slm_model_default_params()) {
    slm_model* m = nullptr;
    const slm_status s = slm_model_load_file(path.c_str(), &params, &m);
    if (s != SLM_OK) return {s, slm_last_error()};
    return Model(m);
  }
  // The buffer is used in place: keep it alive and unchanged while the model lives.
  static Result<Model> from_buffer(const void* data, size_t size,
                                   slm_model_params params = slm_model_default_params()) {
    slm_model* m = nullptr;
    const slm_status s = slm_model_load_buffer(data, size, &params, &m);
    if (s != SLM_OK) return {s, slm_last_error()};
    return Model(m);
  }

  Model(Model&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  Model& operator=(Model&& o) noexcept {
    std::swap(m_, o.m_);
    return *this;
  }
  ~Model() { slm_model_free(m_); }

  const slm_model* get() const { return m_; }
  slm_model_info info() const {
    slm_model_info i{};
    slm_model_get_info(m_, &i);
    return i;
  }

  Result<std::vector<int32_t>> tokenize(std::string_view text, bool add_bos = false, bool parse_special = false) const {
    std::vector<int32_t> ids(text.size() + 8);
    size_t n = 0;
    slm_status s = slm_tokenize(m_, text.data(), text.size(), add_bos, parse_special, ids.data(), ids.size(), &n);
    if (s == SLM_ERR_BUFFER_TOO_SMALL) {
      ids.resize(n);
      s = slm_tokenize(m_, text.data(), text.size(), add_bos, parse_special, ids.data(), ids.size(), &n);
    }
    if (s != SLM_OK) return {s, slm_last_error()};
    ids.resize(n);
    return ids;
  }

  Result<std::string> detokenize(const std::vector<int32_t>& ids, bool skip_special = false) const {
    std::string text(ids.size() * 8 + 16, '\0');
    size_t n = 0;
    slm_status s = slm_detokenize(m_, ids.data(), ids.size(), skip_special, text.data(), text.size(), &n);
    if (s == SLM_ERR_BUFFER_TOO_SMALL) {
      text.resize(n);
      s = slm_detokenize(m_, ids.data(), ids.size(), skip_special, text.data(), text.size(), &n);
    }
    if (s != SLM_OK) return {s, slm_last_error()};
    text.resize(n);
    return text;
  }

  // template_name: "" for the model's own, or a name (see slm_chat_apply).
  Result<std::string> chat(const std::string& template_name, const std::vector<Message>& messages,
                           bool add_generation_prompt = true) const {
    std::vector<slm_chat_message> cm = c_messages(messages);
    size_t n = 0;
    slm_status s = slm_chat_apply(m_, template_name.c_str(), cm.data(), cm.size(), add_generation_prompt, nullptr, 0, &n);
    if (s != SLM_OK && s != SLM_ERR_BUFFER_TOO_SMALL) return {s, slm_last_error()};
    std::string text(n, '\0');
    s = slm_chat_apply(m_, template_name.c_str(), cm.data(), cm.size(), add_generation_prompt, text.data(), text.size(), &n);
    if (s != SLM_OK) return {s, slm_last_error()};
    return text;
  }

  Result<std::vector<int32_t>> chat_tokens(const std::string& template_name, const std::vector<Message>& messages,
                                           bool add_generation_prompt = true) const {
    std::vector<slm_chat_message> cm = c_messages(messages);
    size_t n = 0;
    slm_status s = slm_chat_tokenize(m_, template_name.c_str(), cm.data(), cm.size(), add_generation_prompt, nullptr, 0, &n);
    if (s != SLM_OK && s != SLM_ERR_BUFFER_TOO_SMALL) return {s, slm_last_error()};
    std::vector<int32_t> ids(n);
    s = slm_chat_tokenize(m_, template_name.c_str(), cm.data(), cm.size(), add_generation_prompt, ids.data(), ids.size(), &n);
    if (s != SLM_OK) return {s, slm_last_error()};
    return ids;
  }

  bool chat_opens_reasoning(const std::string& template_name) const {
    return slm_chat_opens_reasoning(m_, template_name.c_str()) != 0;
  }

  Result<slm_memory_estimate> memory_required(const slm_context_params& params) const {
    slm_memory_estimate e{};
    const slm_status s = slm_model_memory_required(m_, &params, &e);
    if (s != SLM_OK) return {s, slm_last_error()};
    return e;
  }

  // Bytes params.arena must hold (0 for invalid params); see slm_context_params.arena.
  size_t arena_bytes(const slm_context_params& params) const { return slm_context_arena_bytes(m_, &params); }

  inline Result<Context> new_context(const slm_context_params& params) const;

 private:
  explicit Model(slm_model* m) : m_(m) {}
  static std::vector<slm_chat_message> c_messages(const std::vector<Message>& messages) {
    std::vector<slm_chat_message> cm;
    cm.reserve(messages.size());
    for (const Message& m : messages) cm.push_back({m.role.c_str(), m.content.c_str()});
    return cm;
  }
  slm_model* m_ = nullptr;
};

class Context {
 public:
  Context(Context&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  Context& operator=(Context&& o) noexcept {
    std::swap(c_, o.c_);
    return *this;
  }
  ~Context() { slm_context_free(c_); }

  slm_context* get() const { return c_; }
  std::string error() const { return slm_context_error(c_); }
  int n_past() const { return slm_context_n_past(c_); }
  void cancel() { slm_context_cancel(c_); }
  void clear_cancel() { slm_context_clear_cancel(c_); }
  slm_status reset() { return slm_context_reset(c_); }
  slm_status prefill(const std::vector<int32_t>& ids) { return slm_prefill(c_, ids.data(), ids.size()); }
  slm_status decode(int32_t token) { return slm_decode(c_, token); }

  // on_text(token, text, channel) returns false to stop.
  using OnText = std::function<bool(int32_t, std::string_view, slm_channel)>;
  Result<slm_generate_result> generate(const std::vector<int32_t>& prompt, int max_tokens, OnText on_text,
                                       slm_generate_params params = slm_generate_default_params()) {
    params.max_tokens = max_tokens;
    params.user_data = &on_text;
    params.on_token = [](void* u, int32_t token, const char* text, size_t len, slm_channel ch) -> int32_t {
      auto* fn = static_cast<OnText*>(u);
      return (*fn && !(*fn)(token, std::string_view(text, len), ch)) ? 1 : 0;
    };
    slm_generate_result r{};
    const slm_status s = slm_generate(c_, prompt.data(), prompt.size(), &params, &r);
    if (s != SLM_OK) return {s, slm_context_error(c_)};
    return r;
  }

 private:
  friend class Model;
  explicit Context(slm_context* c) : c_(c) {}
  slm_context* c_ = nullptr;
};

inline Result<Context> Model::new_context(const slm_context_params& params) const {
  slm_context* c = nullptr;
  const slm_status s = slm_context_create(m_, &params, &c);
  if (s != SLM_OK) return {s, slm_last_error()};
  return Context(c);
}

}  // namespace slm::abi
