// GGUF writer: builds a version 3 file (the layout is described at the top of reader.cpp).
//
// Metadata is serialized as it is added; tensor data is copied at add time or produced at write
// time. Tensor data is laid out in order, each tensor starting at a multiple of the alignment
// and followed by zero padding to the next multiple (as llama.cpp writes it, so its readers that
// load the padded data section whole accept our files too). API misuse that cannot be reported
// at the call (void adders: a duplicate key, a bad alignment) is reported by write_*().
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_set>

#include "slm/gguf.hpp"

namespace slm::gguf {

// ============================================================================================
// State
// ============================================================================================

struct Writer::Impl {
  struct Tensor {
    std::string name;
    DType type;
    uint32_t n_dims;
    int64_t ne[Limits::max_dims];
    uint64_t n_bytes;
    uint64_t offset;            // relative to the data section, aligned
    std::vector<uint8_t> data;  // copied bytes, or empty with a producer
    Producer producer;
  };

  uint32_t alignment = kDefaultAlignment;
  std::vector<uint8_t> kv;  // serialized key/value pairs
  uint64_t n_kv = 0;
  std::unordered_set<std::string> keys;
  bool has_alignment_key = false;
  std::vector<Tensor> tensors;
  std::unordered_set<std::string> tensor_names;
  uint64_t data_size = 0;  // end of the last tensor's padded data
  std::string deferred_error;

  void defer(std::string message) {
    if (deferred_error.empty()) deferred_error = std::move(message);
  }

  // --- little-endian serialization into `out` ---
  template <class T>
  static void put(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  static void put_string(std::vector<uint8_t>& out, std::string_view s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
  }

  // Starts a key/value: the key and its type. False (and a deferred error) for a duplicate.
  bool begin_kv(std::string_view key, ValueType type) {
    if (!keys.emplace(key).second) {
      defer("key '" + std::string(key) + "' added twice");
      return false;
    }
    if (key == "general.alignment") has_alignment_key = true;
    put_string(kv, key);
    put<uint32_t>(kv, static_cast<uint32_t>(type));
    ++n_kv;
    return true;
  }

  // The body of a value (after its type), nested arrays included.
  void put_value(const Value& v) {
    switch (v.type) {
      case ValueType::STRING: put_string(kv, v.str); return;
      case ValueType::ARRAY: put_array(v); return;
      case ValueType::UINT8: put<uint8_t>(kv, static_cast<uint8_t>(v.u)); return;
      case ValueType::BOOL: put<uint8_t>(kv, v.u != 0); return;
      case ValueType::INT8: put<int8_t>(kv, static_cast<int8_t>(v.i)); return;
      case ValueType::UINT16: put<uint16_t>(kv, static_cast<uint16_t>(v.u)); return;
      case ValueType::INT16: put<int16_t>(kv, static_cast<int16_t>(v.i)); return;
      case ValueType::UINT32: put<uint32_t>(kv, static_cast<uint32_t>(v.u)); return;
      case ValueType::INT32: put<int32_t>(kv, static_cast<int32_t>(v.i)); return;
      case ValueType::UINT64: put<uint64_t>(kv, v.u); return;
      case ValueType::INT64: put<int64_t>(kv, v.i); return;
      case ValueType::FLOAT32: put<float>(kv, static_cast<float>(v.f)); return;
      case ValueType::FLOAT64: put<double>(kv, v.f); return;
    }
  }

  void put_array(const Value& v) {
    put<uint32_t>(kv, static_cast<uint32_t>(v.elem_type));
    if (v.elem_type == ValueType::STRING) {
      put<uint64_t>(kv, v.strings.size());
      for (std::string_view s : v.strings) put_string(kv, s);
    } else if (v.elem_type == ValueType::ARRAY) {
      put<uint64_t>(kv, v.items.size());
      for (const Value& item : v.items) put_array(item);
    } else {
      const size_t sz = value_type_size(v.elem_type);
      put<uint64_t>(kv, v.count);
      if (v.count > 0 && v.raw != nullptr) kv.insert(kv.end(), v.raw, v.raw + v.count * sz);
      else kv.resize(kv.size() + v.count * sz, 0);  // an inconsistent Value: zeros, same size
    }
  }

  template <class T>
  void add_scalar(std::string_view key, ValueType type, T v) {
    if (begin_kv(key, type)) put<T>(kv, v);
  }

  // Checks a tensor's name, type and shape; fills t.n_dims, t.ne, t.n_bytes.
  Status check_tensor(Tensor& t, std::span<const int64_t> shape) {
    const std::string& name = t.name;
    const TypeTraits* tt = type_traits(static_cast<uint32_t>(t.type));
    if (tt == nullptr) {
      return errorf("tensor '%s': unknown type id %u", name.c_str(),
                    static_cast<uint32_t>(t.type));
    }
    if (shape.empty() || shape.size() > Limits::max_dims) {
      return errorf("tensor '%s': %zu dimensions, expected 1 to %u", name.c_str(), shape.size(),
                    Limits::max_dims);
    }
    if (tensor_names.count(name) != 0) return errorf("tensor '%s' added twice", name.c_str());
    t.n_dims = static_cast<uint32_t>(shape.size());
    uint64_t n = 1;
    for (size_t d = 0; d < Limits::max_dims; ++d) t.ne[d] = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] <= 0) {
        return errorf("tensor '%s': dimension %zu is %lld (must be positive)", name.c_str(), d,
                      static_cast<long long>(shape[d]));
      }
      if (__builtin_mul_overflow(n, static_cast<uint64_t>(shape[d]), &n) ||
          n > static_cast<uint64_t>(INT64_MAX)) {
        return errorf("tensor '%s': element count overflows", name.c_str());
      }
      t.ne[d] = shape[d];
    }
    auto row = row_bytes(t.type, t.ne[0]);
    if (!row) return errorf("tensor '%s': %s", name.c_str(), row.error().message.c_str());
    if (__builtin_mul_overflow(static_cast<uint64_t>(*row), n / static_cast<uint64_t>(t.ne[0]),
                               &t.n_bytes)) {
      return errorf("tensor '%s': byte size overflows", name.c_str());
    }
    return Status::success();
  }

  void place(Tensor t) {
    t.offset = data_size;
    data_size = align_up(t.offset + t.n_bytes);
    tensor_names.insert(t.name);
    tensors.push_back(std::move(t));
  }

  uint64_t align_up(uint64_t x) const { return (x + alignment - 1) / alignment * alignment; }

  // Everything before the data section: header, metadata, tensor infos, padding.
  std::vector<uint8_t> header() const {
    std::vector<uint8_t> out;
    std::vector<uint8_t> extra;  // general.alignment when it was set but not added as a key
    uint64_t n = n_kv;
    if (alignment != kDefaultAlignment && !has_alignment_key) {
      put_string(extra, "general.alignment");
      put<uint32_t>(extra, static_cast<uint32_t>(ValueType::UINT32));
      put<uint32_t>(extra, alignment);
      ++n;
    }
    put<uint32_t>(out, kMagic);
    put<uint32_t>(out, 3);
    put<uint64_t>(out, tensors.size());
    put<uint64_t>(out, n);
    out.insert(out.end(), kv.begin(), kv.end());
    out.insert(out.end(), extra.begin(), extra.end());
    for (const Tensor& t : tensors) {
      put_string(out, t.name);
      put<uint32_t>(out, t.n_dims);
      for (uint32_t d = 0; d < t.n_dims; ++d) put<uint64_t>(out, static_cast<uint64_t>(t.ne[d]));
      put<uint32_t>(out, static_cast<uint32_t>(t.type));
      put<uint64_t>(out, t.offset);
    }
    // The data section starts aligned. A file without tensors ends right here, unpadded, as
    // llama.cpp's writers leave it (so copying such a file reproduces it byte for byte).
    if (!tensors.empty()) out.resize(align_up(out.size()), 0);
    return out;
  }

  // Runs a tensor's producer into `out` (exactly n_bytes), or copies its bytes.
  static Status fill(const Tensor& t, std::span<uint8_t> out) {
    if (!t.producer) {
      std::memcpy(out.data(), t.data.data(), out.size());
      return Status::success();
    }
    Status st = t.producer(out);
    if (!st) return errorf("tensor '%s': %s", t.name.c_str(), st.message().c_str());
    return Status::success();
  }

  Status check_ready() const {
    if (!deferred_error.empty()) return Error{"GGUF writer: " + deferred_error};
    return Status::success();
  }
};

// ============================================================================================
// Writer
// ============================================================================================

Writer::Writer() : impl_(std::make_unique<Impl>()) {}
Writer::~Writer() = default;
Writer::Writer(Writer&&) noexcept = default;
Writer& Writer::operator=(Writer&&) noexcept = default;

void Writer::set_alignment(uint32_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > Limits::max_alignment) {
    impl_->defer("alignment " + std::to_string(alignment) + " is not a power of two in [1, " +
                 std::to_string(Limits::max_alignment) + "]");
    return;
  }
  if (!impl_->tensors.empty() && alignment != impl_->alignment) {
    impl_->defer("set_alignment called after tensors were added");
    return;
  }
  if (impl_->has_alignment_key && alignment != impl_->alignment) {
    impl_->defer("set_alignment(" + std::to_string(alignment) +
                 ") disagrees with the general.alignment key already added");
    return;
  }
  impl_->alignment = alignment;
}

void Writer::add_uint8(std::string_view key, uint8_t v) { impl_->add_scalar(key, ValueType::UINT8, v); }
void Writer::add_int8(std::string_view key, int8_t v) { impl_->add_scalar(key, ValueType::INT8, v); }
void Writer::add_uint16(std::string_view key, uint16_t v) { impl_->add_scalar(key, ValueType::UINT16, v); }
void Writer::add_int16(std::string_view key, int16_t v) { impl_->add_scalar(key, ValueType::INT16, v); }
void Writer::add_uint32(std::string_view key, uint32_t v) {
  if (key == "general.alignment") {
    // The key decides the layout readers use, so adding it sets the layout we write (copying
    // the metadata of a file with another alignment keeps that alignment).
    const std::string before = impl_->deferred_error;
    set_alignment(v);
    if (impl_->deferred_error != before) return;
  }
  impl_->add_scalar(key, ValueType::UINT32, v);
}
void Writer::add_int32(std::string_view key, int32_t v) {
  if (key == "general.alignment") {
    impl_->defer("general.alignment must be a u32 (use set_alignment)");
    return;
  }
  impl_->add_scalar(key, ValueType::INT32, v);
}
void Writer::add_uint64(std::string_view key, uint64_t v) { impl_->add_scalar(key, ValueType::UINT64, v); }
void Writer::add_int64(std::string_view key, int64_t v) { impl_->add_scalar(key, ValueType::INT64, v); }
void Writer::add_float32(std::string_view key, float v) { impl_->add_scalar(key, ValueType::FLOAT32, v); }
void Writer::add_float64(std::string_view key, double v) { impl_->add_scalar(key, ValueType::FLOAT64, v); }
void Writer::add_bool(std::string_view key, bool v) {
  impl_->add_scalar(key, ValueType::BOOL, static_cast<uint8_t>(v ? 1 : 0));
}

void Writer::add_string(std::string_view key, std::string_view v) {
  if (impl_->begin_kv(key, ValueType::STRING)) Impl::put_string(impl_->kv, v);
}

void Writer::add_string_array(std::string_view key, std::span<const std::string> items) {
  if (!impl_->begin_kv(key, ValueType::ARRAY)) return;
  Impl::put<uint32_t>(impl_->kv, static_cast<uint32_t>(ValueType::STRING));
  Impl::put<uint64_t>(impl_->kv, items.size());
  for (const std::string& s : items) Impl::put_string(impl_->kv, s);
}

void Writer::add_string_array(std::string_view key, std::span<const std::string_view> items) {
  if (!impl_->begin_kv(key, ValueType::ARRAY)) return;
  Impl::put<uint32_t>(impl_->kv, static_cast<uint32_t>(ValueType::STRING));
  Impl::put<uint64_t>(impl_->kv, items.size());
  for (std::string_view s : items) Impl::put_string(impl_->kv, s);
}

void Writer::add_int32_array(std::string_view key, std::span<const int32_t> items) {
  add_array_raw(key, ValueType::INT32, items.data(), items.size());
}

void Writer::add_uint32_array(std::string_view key, std::span<const uint32_t> items) {
  add_array_raw(key, ValueType::UINT32, items.data(), items.size());
}

void Writer::add_float32_array(std::string_view key, std::span<const float> items) {
  add_array_raw(key, ValueType::FLOAT32, items.data(), items.size());
}

void Writer::add_array_raw(std::string_view key, ValueType elem_type, const void* items,
                           uint64_t count) {
  const size_t sz = value_type_size(elem_type);
  if (sz == 0) {
    impl_->defer("key '" + std::string(key) + "': add_array_raw needs a scalar element type, got " +
                 value_type_name(elem_type));
    return;
  }
  if (count > 0 && items == nullptr) {
    impl_->defer("key '" + std::string(key) + "': add_array_raw given no items");
    return;
  }
  if (!impl_->begin_kv(key, ValueType::ARRAY)) return;
  Impl::put<uint32_t>(impl_->kv, static_cast<uint32_t>(elem_type));
  Impl::put<uint64_t>(impl_->kv, count);
  const auto* p = static_cast<const uint8_t*>(items);
  if (count > 0) impl_->kv.insert(impl_->kv.end(), p, p + count * sz);
}

void Writer::add_value(std::string_view key, const Value& value) {
  if (key == "general.alignment") {
    if (value.type != ValueType::UINT32) {
      impl_->defer("general.alignment must be a u32");
      return;
    }
    add_uint32(key, static_cast<uint32_t>(value.u));
    return;
  }
  if (!impl_->begin_kv(key, value.type)) return;
  impl_->put_value(value);
}

Status Writer::add_tensor(std::string_view name, DType type, std::span<const int64_t> shape,
                          const void* data, size_t n_bytes) {
  Impl::Tensor t;
  t.name = std::string(name);
  t.type = type;
  SLM_TRY(impl_->check_tensor(t, shape));
  if (n_bytes != t.n_bytes) {
    return errorf("tensor '%s': given %zu bytes, its shape needs %llu", t.name.c_str(), n_bytes,
                  static_cast<unsigned long long>(t.n_bytes));
  }
  if (data == nullptr && n_bytes > 0) return errorf("tensor '%s': no data", t.name.c_str());
  const auto* p = static_cast<const uint8_t*>(data);
  t.data.assign(p, p + n_bytes);
  impl_->place(std::move(t));
  return Status::success();
}

Status Writer::add_tensor(std::string_view name, DType type, std::span<const int64_t> shape,
                          Producer producer) {
  Impl::Tensor t;
  t.name = std::string(name);
  t.type = type;
  SLM_TRY(impl_->check_tensor(t, shape));
  if (!producer) return errorf("tensor '%s': empty producer", t.name.c_str());
  t.producer = std::move(producer);
  impl_->place(std::move(t));
  return Status::success();
}

// ============================================================================================
// Output
// ============================================================================================

Expected<std::vector<uint8_t>> Writer::write_buffer() const {
  SLM_TRY(impl_->check_ready());
  std::vector<uint8_t> out = impl_->header();
  const size_t data_start = out.size();
  out.resize(data_start + impl_->data_size, 0);
  for (const Impl::Tensor& t : impl_->tensors) {
    SLM_TRY(Impl::fill(t, std::span<uint8_t>(out.data() + data_start + t.offset, t.n_bytes)));
  }
  return out;
}

Status Writer::write_file(const std::string& path) const {
  SLM_TRY(impl_->check_ready());
  // Written to a temporary name and renamed, so a failed conversion never leaves a truncated
  // file that looks like a model.
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return errorf("%s: cannot create: %s", tmp.c_str(), std::strerror(errno));
  auto fail = [&](Error e) -> Status {
    std::fclose(f);
    std::remove(tmp.c_str());
    return e;
  };
  auto write = [&](const void* p, size_t n) -> Status {
    if (n > 0 && std::fwrite(p, 1, n, f) != n) {
      return errorf("%s: write failed: %s", tmp.c_str(), std::strerror(errno));
    }
    return Status::success();
  };
  const std::vector<uint8_t> head = impl_->header();
  if (Status st = write(head.data(), head.size()); !st) return fail(st.error());
  std::vector<uint8_t> buf;
  const std::vector<uint8_t> zeros(impl_->alignment, 0);
  uint64_t written = 0;
  for (const Impl::Tensor& t : impl_->tensors) {
    if (t.producer) {
      buf.assign(t.n_bytes, 0);
      if (Status st = Impl::fill(t, buf); !st) return fail(st.error());
      if (Status st = write(buf.data(), buf.size()); !st) return fail(st.error());
    } else if (Status st = write(t.data.data(), t.data.size()); !st) {
      return fail(st.error());
    }
    written = t.offset + t.n_bytes;
    const uint64_t pad = impl_->align_up(written) - written;
    if (Status st = write(zeros.data(), pad); !st) return fail(st.error());
    written += pad;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    return errorf("%s: close failed: %s", tmp.c_str(), std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return errorf("%s: cannot rename to %s: %s", tmp.c_str(), path.c_str(), std::strerror(err));
  }
  return Status::success();
}

}  // namespace slm::gguf
