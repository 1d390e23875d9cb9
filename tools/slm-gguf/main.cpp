// slm-gguf: inspect a GGUF file (header, metadata, tensors) as text or JSON.
//
//   slm-gguf info [--json] [--full] FILE
//
// Exit codes: 0 success, 1 the file cannot be read or is not valid GGUF (one line on stderr:
// "slm-gguf: FILE: message"), 2 bad usage.
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "slm/gguf.hpp"
#include "slm/json.hpp"

using slm::gguf::File;
using slm::gguf::TensorInfo;
using slm::gguf::Value;
using slm::gguf::ValueType;

namespace {

// ============================================================================================
// Options
// ============================================================================================

const char kUsage[] =
    "usage: slm-gguf info [--json] [--full] FILE\n"
    "  Prints the header, every metadata key (type and value) and every tensor (name, type,\n"
    "  shape, bytes, offset) of a GGUF file.\n"
    "  --json  one JSON document instead of text\n"
    "  --full  do not abbreviate long arrays and strings\n";

struct Options {
  bool json = false;
  bool full = false;
  std::string path;
};

// Abbreviation: arrays show their first kArrayItems items, strings their first kStringBytes.
constexpr uint64_t kArrayItems = 8;
constexpr size_t kStringBytes = 96;

// ============================================================================================
// Formatting values
// ============================================================================================

// Shortest decimal that reads back as the same float / double.
template <class F>
std::string number_text(F v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, static_cast<size_t>(r.ptr - buf));
}

// The first `limit` bytes of s, cut back to a UTF-8 character boundary.
std::string_view prefix(std::string_view s, size_t limit) {
  if (s.size() <= limit) return s;
  size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

bool is_float(ValueType t) { return t == ValueType::FLOAT32 || t == ValueType::FLOAT64; }
bool is_signed(ValueType t) {
  return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 ||
         t == ValueType::INT64;
}

// A scalar as text (JSON-compatible except for non-finite floats).
std::string scalar_text(ValueType t, const Value& v) {
  if (t == ValueType::BOOL) return v.u ? "true" : "false";
  if (t == ValueType::FLOAT32) return number_text(static_cast<float>(v.f));
  if (t == ValueType::FLOAT64) return number_text(v.f);
  if (is_signed(t)) return std::to_string(v.i);
  return std::to_string(v.u);
}

// Element k of a scalar array as a one-element Value, for scalar_text.
Value element(const Value& arr, uint64_t k) {
  Value e;
  e.type = arr.elem_type;
  if (is_float(arr.elem_type)) {
    e.f = arr.number_at(k);
  } else if (is_signed(arr.elem_type)) {
    e.i = arr.integer_at(k);
  } else {
    e.u = static_cast<uint64_t>(arr.integer_at(k));  // bit pattern of u64 survives the cast
  }
  return e;
}

std::string type_text(const Value& v) {
  if (v.type != ValueType::ARRAY) return slm::gguf::value_type_name(v.type);
  return std::string("array[") + slm::gguf::value_type_name(v.elem_type) + "]";
}

// ============================================================================================
// Text output
// ============================================================================================

std::string string_text(std::string_view s, const Options& opt) {
  if (opt.full || s.size() <= kStringBytes) return slm::json::quote(s);
  return slm::json::quote(prefix(s, kStringBytes)) + "... (" + std::to_string(s.size()) +
         " bytes)";
}

std::string value_text(const Value& v, const Options& opt) {
  if (v.type == ValueType::STRING) return string_text(v.str, opt);
  if (v.type != ValueType::ARRAY) return scalar_text(v.type, v);
  const uint64_t n = v.count;
  const uint64_t shown = opt.full ? n : std::min<uint64_t>(n, kArrayItems);
  std::string out = "(" + std::to_string(n) + ") [";
  for (uint64_t k = 0; k < shown; ++k) {
    if (k) out += ", ";
    if (v.elem_type == ValueType::STRING) out += string_text(v.strings[k], opt);
    else if (v.elem_type == ValueType::ARRAY) out += type_text(v.items[k]) + value_text(v.items[k], opt);
    else out += scalar_text(v.elem_type, element(v, k));
  }
  if (shown < n) out += ", ...";
  return out + "]";
}

std::string shape_text(const TensorInfo& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < t.n_dims; ++d) {
    if (d) s += ", ";
    s += std::to_string(t.ne[d]);
  }
  return s + "]";
}

void print_text(const File& f, const Options& opt) {
  std::printf("file: %s\n", opt.path.c_str());
  std::printf("version: %u\n", f.version());
  std::printf("tensors: %zu\n", f.tensors().size());
  std::printf("metadata keys: %zu\n", f.metadata().size());
  std::printf("alignment: %u\n", f.alignment());
  std::printf("data offset: %" PRIu64 "\n", f.data_offset());
  std::printf("file size: %zu\n", f.size());
  std::printf("\nmetadata:\n");
  for (const auto& kv : f.metadata()) {
    const std::string key = slm::json::escape(kv.key);
    std::printf("  %-40s %-14s %s\n", key.c_str(), type_text(kv.value).c_str(),
                value_text(kv.value, opt).c_str());
  }
  std::printf("\ntensors:\n");
  uint64_t total = 0;
  for (const TensorInfo& t : f.tensors()) {
    const std::string name = slm::json::escape(t.name);
    std::printf("  %-40s %-8s %-24s %12" PRIu64 " bytes  offset %" PRIu64 "\n", name.c_str(),
                slm::dtype_name(t.type), shape_text(t).c_str(), t.n_bytes, t.offset);
    total += t.n_bytes;
  }
  std::printf("\ntotal tensor bytes: %" PRIu64 "\n", total);
}

// ============================================================================================
// JSON output
// ============================================================================================

void json_string(slm::json::Writer& w, std::string_view s, const Options& opt) {
  w.value(opt.full ? s : prefix(s, kStringBytes));
}

void json_scalar(slm::json::Writer& w, ValueType t, const Value& v) {
  if (t == ValueType::BOOL) {
    w.value(v.u != 0);
  } else if (is_float(t)) {
    const double d = t == ValueType::FLOAT32 ? static_cast<double>(static_cast<float>(v.f)) : v.f;
    if (!std::isfinite(d)) w.null();
    else w.raw(t == ValueType::FLOAT32 ? number_text(static_cast<float>(v.f)) : number_text(v.f));
  } else if (is_signed(t)) {
    w.value(v.i);
  } else {
    w.value(v.u);
  }
}

// {"type": ..., "value": ...} members for one value (the caller opened the object).
void json_value_members(slm::json::Writer& w, const Value& v, const Options& opt) {
  w.key("type");
  w.value(slm::gguf::value_type_name(v.type));
  if (v.type == ValueType::STRING) {
    w.key("value");
    json_string(w, v.str, opt);
    if (!opt.full && v.str.size() > kStringBytes) {
      w.key("length");
      w.value(static_cast<uint64_t>(v.str.size()));
      w.key("truncated");
      w.value(true);
    }
    return;
  }
  if (v.type != ValueType::ARRAY) {
    w.key("value");
    json_scalar(w, v.type, v);
    return;
  }
  w.key("elem_type");
  w.value(slm::gguf::value_type_name(v.elem_type));
  w.key("count");
  w.value(v.count);
  const uint64_t shown = opt.full ? v.count : std::min<uint64_t>(v.count, kArrayItems);
  w.key("value");
  w.begin_array();
  for (uint64_t k = 0; k < shown; ++k) {
    if (v.elem_type == ValueType::STRING) {
      json_string(w, v.strings[k], opt);
    } else if (v.elem_type == ValueType::ARRAY) {
      w.begin_object();
      json_value_members(w, v.items[k], opt);
      w.end_object();
    } else {
      json_scalar(w, v.elem_type, element(v, k));
    }
  }
  w.end_array();
  if (shown < v.count) {
    w.key("truncated");
    w.value(true);
  }
}

void print_json(const File& f, const Options& opt) {
  slm::json::Writer w(2);
  w.begin_object();
  w.key("file");
  w.value(opt.path);
  w.key("version");
  w.value(f.version());
  w.key("tensor_count");
  w.value(static_cast<uint64_t>(f.tensors().size()));
  w.key("kv_count");
  w.value(static_cast<uint64_t>(f.metadata().size()));
  w.key("alignment");
  w.value(f.alignment());
  w.key("data_offset");
  w.value(f.data_offset());
  w.key("file_size");
  w.value(static_cast<uint64_t>(f.size()));
  w.key("metadata");
  w.begin_array();
  for (const auto& kv : f.metadata()) {
    w.begin_object();
    w.key("key");
    w.value(kv.key);
    json_value_members(w, kv.value, opt);
    w.end_object();
  }
  w.end_array();
  w.key("tensors");
  w.begin_array();
  for (const TensorInfo& t : f.tensors()) {
    w.begin_object();
    w.key("name");
    w.value(t.name);
    w.key("type");
    w.value(slm::dtype_name(t.type));
    w.key("shape");
    w.begin_array();
    for (uint32_t d = 0; d < t.n_dims; ++d) w.value(t.ne[d]);
    w.end_array();
    w.key("bytes");
    w.value(t.n_bytes);
    w.key("offset");
    w.value(t.offset);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  std::fwrite(w.str().data(), 1, w.str().size(), stdout);
  std::fputc('\n', stdout);
}

int usage_error(const char* why) {
  std::fprintf(stderr, "slm-gguf: %s\n%s", why, kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc < 2) return usage_error("missing command");
  if (std::strcmp(argv[1], "info") != 0) return usage_error("unknown command");
  Options opt;
  bool have_path = false;
  for (int k = 2; k < argc; ++k) {
    const std::string_view a = argv[k];
    if (a == "--json") {
      opt.json = true;
    } else if (a == "--full") {
      opt.full = true;
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error("unknown option");
    } else if (have_path) {
      return usage_error("more than one FILE");
    } else {
      opt.path = argv[k];
      have_path = true;
    }
  }
  if (!have_path) return usage_error("missing FILE");

  auto file = File::open(opt.path);
  if (!file) {
    // File::open names the path first; keep the report to one line whatever the message holds.
    std::string msg = file.error().message;
    for (char& c : msg) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    std::fprintf(stderr, "slm-gguf: %s\n", msg.c_str());
    return 1;
  }
  if (opt.json) print_json(*file, opt);
  else print_text(*file, opt);
  return std::fflush(stdout) == 0 ? 0 : 1;
}
