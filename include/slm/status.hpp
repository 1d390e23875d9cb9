// Error values: every failure caused by a file, a prompt or an API argument is returned to the
// caller as an Error, never thrown, asserted or turned into exit().
#pragma once

#include <cstdarg>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace slm {

// A failure with a message a user can act on: what is wrong and where (key, tensor, offset).
struct Error {
  std::string message;
};

// printf-style constructor for Error, so call sites read like the message they produce.
[[gnu::format(printf, 1, 2)]] Error errorf(const char* fmt, ...);

// Either a value or an Error (std::expected is C++23; we build for C++20).
template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Expected(Error error) : state_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &std::get<0>(state_); }
  const T* operator->() const { return &std::get<0>(state_); }
  T& operator*() & { return std::get<0>(state_); }
  const T& operator*() const& { return std::get<0>(state_); }

  const Error& error() const& { return std::get<1>(state_); }
  Error&& error() && { return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, Error> state_;
};

// Success, or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}
  static Status success() { return Status(); }

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }
  const std::string& message() const {
    static const std::string empty;
    return error_ ? error_->message : empty;
  }

 private:
  std::optional<Error> error_;
};

}  // namespace slm

// Propagate an error from an Expected or Status expression inside a function returning
// Expected<...> or Status.
#define SLM_TRY(expr)                                 \
  do {                                                \
    auto&& slm_try_result_ = (expr);                  \
    if (!slm_try_result_.ok()) return slm_try_result_.error(); \
  } while (0)
