// libFuzzer target for the GGUF reader: any bytes must give a File or an Error, never a crash or
// an out-of-bounds access; an accepted file is then touched through every accessor and copied
// through the Writer, and the copy must parse to the same metadata and tensors.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "slm/gguf.hpp"

using namespace slm::gguf;

namespace {

// Reads accumulate into g_acc, stored to a volatile at the end so the compiler keeps them.
uint64_t g_acc = 0;
volatile uint64_t g_sink = 0;

void touch_value(const Value& v) {
  g_acc += static_cast<uint64_t>(v.type) + v.u + static_cast<uint64_t>(v.i) +
            static_cast<uint64_t>(v.f != 0) + v.str.size();
  if (v.type != ValueType::ARRAY) return;
  g_acc += v.count + value_type_size(v.elem_type) + std::strlen(value_type_name(v.elem_type));
  for (std::string_view s : v.strings) g_acc += s.empty() ? 0 : static_cast<uint8_t>(s.back());
  for (const Value& item : v.items) touch_value(item);
  if (v.raw != nullptr) {
    // Every element, plus one past the end (must return 0 without reading).
    for (uint64_t k = 0; k <= v.count; ++k) {
      g_acc += static_cast<uint64_t>(v.integer_at(k)) + static_cast<uint64_t>(v.number_at(k) != 0);
    }
  }
}

void touch(const File& f) {
  g_acc += f.version() + f.alignment() + f.data_offset() + f.size();
  for (const KeyValue& kv : f.metadata()) {
    g_acc += kv.offset + kv.key.size();
    touch_value(kv.value);
    if (f.find(kv.key) == nullptr) __builtin_trap();
    // Every typed accessor on every key: errors are fine, crashes are not.
    g_acc += f.get_string(kv.key).ok() + f.get_uint(kv.key).ok() + f.get_int(kv.key).ok() +
              f.get_float(kv.key).ok() + f.get_bool(kv.key).ok() +
              f.get_string_array(kv.key).ok() + f.get_float_array(kv.key).ok() +
              f.get_int_array(kv.key).ok() + f.get_uint_or(kv.key, 1).ok() +
              f.get_float_or(kv.key, 1).ok() + f.get_bool_or(kv.key, true).ok();
  }
  for (const TensorInfo& t : f.tensors()) {
    if (f.find_tensor(t.name) != &t) __builtin_trap();
    g_acc += static_cast<uint64_t>(t.rows()) + t.n_elements + t.offset + t.n_dims;
    g_acc += std::strlen(slm::dtype_name(t.type));
    // First and last byte of the data: ASan checks they are inside the buffer.
    if (t.n_bytes > 0) g_acc += t.data[0] + t.data[t.n_bytes - 1];
  }
}

// Copies the file through the Writer; the copy must read back the same.
void round_trip(const File& f) {
  Writer w;
  w.set_alignment(f.alignment());
  for (const KeyValue& kv : f.metadata()) w.add_value(kv.key, kv.value);
  for (const TensorInfo& t : f.tensors()) {
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    if (!w.add_tensor(t.name, t.type, shape, t.data, t.n_bytes).ok()) __builtin_trap();
  }
  auto buf = w.write_buffer();
  if (!buf.ok()) __builtin_trap();
  auto g = File::from_buffer(buf->data(), buf->size());
  if (!g.ok()) __builtin_trap();
  // A non-default alignment always comes from a general.alignment key, which add_value copied.
  if (g->metadata().size() != f.metadata().size()) __builtin_trap();
  if (g->alignment() != f.alignment()) __builtin_trap();
  if (g->tensors().size() != f.tensors().size()) __builtin_trap();
  for (size_t k = 0; k < f.metadata().size(); ++k) {
    const KeyValue& a = f.metadata()[k];
    const KeyValue& b = g->metadata()[k];
    if (a.key != b.key || a.value.type != b.value.type || a.value.count != b.value.count ||
        a.value.str != b.value.str || a.value.strings != b.value.strings) {
      __builtin_trap();
    }
  }
  for (size_t k = 0; k < f.tensors().size(); ++k) {
    const TensorInfo& a = f.tensors()[k];
    const TensorInfo& b = g->tensors()[k];
    if (a.name != b.name || a.type != b.type || a.n_bytes != b.n_bytes ||
        std::memcmp(a.data, b.data, a.n_bytes) != 0) {
      __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = File::from_buffer(data, size);
  if (!f.ok()) {
    // Errors must be one line (tools print them as such).
    if (f.error().message.empty() || f.error().message.find('\n') != std::string::npos) {
      __builtin_trap();
    }
    return 0;
  }
  touch(*f);
  round_trip(*f);
  g_sink = g_acc;
  return 0;
}
