// libFuzzer target for the JSON parser (it reads tokenizer.json files from model repositories):
// any bytes give a Value or an Error, never a crash; an accepted document printed compactly
// reads back and prints the same (the writer's output is valid JSON and stable).
#include <cstdint>
#include <string>
#include <string_view>

#include "slm/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto v = slm::json::parse(text);
  if (!v.ok()) {
    if (v.error().message.find('\n') != std::string::npos) __builtin_trap();
    return 0;
  }
  const std::string once = slm::json::to_string(*v);
  auto back = slm::json::parse(once);
  if (!back.ok()) __builtin_trap();
  if (slm::json::to_string(*back) != once) __builtin_trap();
  auto pretty = slm::json::parse(slm::json::to_string(*v, 2));
  if (!pretty.ok() || slm::json::to_string(*pretty) != once) __builtin_trap();
  return 0;
}
