// Formatting for slm::Error.
#include "slm/status.hpp"

#include <cstdio>
#include <vector>

namespace slm {

Error errorf(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list copy;
  va_copy(copy, args);
  const int needed = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string message;
  if (needed > 0) {
    message.resize(static_cast<size_t>(needed) + 1);
    std::vsnprintf(message.data(), message.size(), fmt, args);
    message.resize(static_cast<size_t>(needed));
  }
  va_end(args);
  return Error{std::move(message)};
}

}  // namespace slm
