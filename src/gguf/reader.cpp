// GGUF reader: parses the header, metadata and tensor infos of a version 2 or 3 file in place,
// checking every count, length, offset and size against the bytes that remain before use.
//
// Layout (little-endian; https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x     { string key | u32 value type | value }
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
//   zero padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
// where string = u64 length + bytes (no terminator) and array = u32 elem type + u64 count +
// elements. Version 1 used u32 counts and lengths; it predates every model we load.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "slm/gguf.hpp"

namespace slm::gguf {

// ============================================================================================
// Value types
// ============================================================================================

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8: return "u8";
    case ValueType::INT8: return "i8";
    case ValueType::UINT16: return "u16";
    case ValueType::INT16: return "i16";
    case ValueType::UINT32: return "u32";
    case ValueType::INT32: return "i32";
    case ValueType::FLOAT32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::UINT64: return "u64";
    case ValueType::INT64: return "i64";
    case ValueType::FLOAT64: return "f64";
  }
  return "?";
}

size_t value_type_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL: return 1;
    case ValueType::UINT16:
    case ValueType::INT16: return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32: return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64: return 8;
    case ValueType::STRING:
    case ValueType::ARRAY: return 0;
  }
  return 0;
}

static bool is_valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

static bool is_integer_type(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::UINT16:
    case ValueType::INT16:
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::UINT64:
    case ValueType::INT64: return true;
    default: return false;
  }
}

static bool is_signed_type(ValueType t) {
  return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 ||
         t == ValueType::INT64;
}

static bool is_float_type(ValueType t) {
  return t == ValueType::FLOAT32 || t == ValueType::FLOAT64;
}

// Little-endian loads (memcpy: the bytes need not be aligned). The engine targets
// little-endian hosts only, like GGUF itself.
template <class T>
static T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Decodes one scalar of type t at p into the Value's u / i / f fields.
static void decode_scalar(ValueType t, const uint8_t* p, Value& v) {
  switch (t) {
    case ValueType::UINT8: v.u = load<uint8_t>(p); break;
    case ValueType::INT8: v.i = load<int8_t>(p); break;
    case ValueType::UINT16: v.u = load<uint16_t>(p); break;
    case ValueType::INT16: v.i = load<int16_t>(p); break;
    case ValueType::UINT32: v.u = load<uint32_t>(p); break;
    case ValueType::INT32: v.i = load<int32_t>(p); break;
    case ValueType::FLOAT32: v.f = load<float>(p); break;
    case ValueType::BOOL: v.u = load<uint8_t>(p); break;
    case ValueType::UINT64: v.u = load<uint64_t>(p); break;
    case ValueType::INT64: v.i = load<int64_t>(p); break;
    case ValueType::FLOAT64: v.f = load<double>(p); break;
    case ValueType::STRING:
    case ValueType::ARRAY: break;
  }
}

double Value::number_at(uint64_t k) const {
  const size_t sz = value_type_size(elem_type);
  if (type != ValueType::ARRAY || raw == nullptr || sz == 0 || k >= count) return 0.0;
  Value v;
  decode_scalar(elem_type, raw + k * sz, v);
  if (is_float_type(elem_type)) return v.f;
  if (is_signed_type(elem_type)) return static_cast<double>(v.i);
  return static_cast<double>(v.u);
}

int64_t Value::integer_at(uint64_t k) const {
  const size_t sz = value_type_size(elem_type);
  if (type != ValueType::ARRAY || raw == nullptr || sz == 0 || k >= count) return 0;
  Value v;
  decode_scalar(elem_type, raw + k * sz, v);
  if (is_float_type(elem_type)) {
    // Truncated toward zero and saturated: a float out of int64's range (or NaN) converted
    // directly is undefined behaviour, and the bytes come from the file.
    if (std::isnan(v.f)) return 0;
    if (v.f >= 9223372036854775808.0) return std::numeric_limits<int64_t>::max();
    if (v.f <= -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(v.f);
  }
  if (is_signed_type(elem_type)) return v.i;
  return static_cast<int64_t>(v.u);
}

// ============================================================================================
// Message helpers
// ============================================================================================

// A name from the file made safe for a one-line message: non-printable bytes as \xNN, long
// names cut (a hostile name can be 64 MB of anything).
static std::string printable(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  const size_t limit = 96;
  for (size_t k = 0; k < s.size() && k < limit; ++k) {
    const auto c = static_cast<unsigned char>(s[k]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

static bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// ============================================================================================
// Parser
// ============================================================================================

// Reads one file into a File. `where_` names the item being read ("key 'general.name' at byte
// 24") and prefixes every message.
class Parser {
 public:
  Parser(File& file) : f_(file), b_(file.bytes_), size_(file.size_) {}

  Status run() {
    SLM_TRY(read_header());
    SLM_TRY(read_metadata());
    SLM_TRY(read_tensor_infos());
    return locate_tensor_data();
  }

 private:
  // ------------------------------------------------------------------------------------------
  // Primitive reads
  // ------------------------------------------------------------------------------------------

  uint64_t remaining() const { return size_ - pos_; }

  Error fail(const std::string& what) const {
    if (where_.empty()) return Error{what};
    return Error{where_ + ": " + what};
  }

  Status need(uint64_t n, const char* what) const {
    if (n > remaining()) {
      return fail(std::string(what) + " (" + std::to_string(n) + " bytes) runs past end of file" +
                  " at byte " + std::to_string(pos_) + " (size " + std::to_string(size_) + ")");
    }
    return Status::success();
  }

  Expected<uint32_t> u32(const char* what) {
    SLM_TRY(need(4, what));
    const auto v = load<uint32_t>(b_ + pos_);
    pos_ += 4;
    return v;
  }

  Expected<uint64_t> u64(const char* what) {
    SLM_TRY(need(8, what));
    const auto v = load<uint64_t>(b_ + pos_);
    pos_ += 8;
    return v;
  }

  Expected<std::string_view> string(const char* what) {
    const size_t at = pos_;
    auto len = u64(what);
    if (!len) return std::move(len).error();
    if (*len > Limits::max_string_bytes) {
      return fail(std::string(what) + " at byte " + std::to_string(at) + ": length " +
                  std::to_string(*len) + " exceeds the limit of " +
                  std::to_string(Limits::max_string_bytes) + " bytes");
    }
    if (*len > remaining()) {
      return fail(std::string(what) + " at byte " + std::to_string(at) + ": length " +
                  std::to_string(*len) + " exceeds remaining " + std::to_string(remaining()) +
                  " bytes");
    }
    std::string_view s(reinterpret_cast<const char*>(b_ + pos_), static_cast<size_t>(*len));
    pos_ += static_cast<size_t>(*len);
    return s;
  }

  // ------------------------------------------------------------------------------------------
  // Header
  // ------------------------------------------------------------------------------------------

  Status read_header() {
    if (size_ >= 4 && load<uint32_t>(b_) != kMagic) {
      return errorf("bad magic 0x%08x at byte 0: not a GGUF file", load<uint32_t>(b_));
    }
    constexpr size_t kHeader = 4 + 4 + 8 + 8;
    if (size_ < kHeader) {
      return errorf("file of %zu bytes is too small for a GGUF header (%zu bytes)", size_, kHeader);
    }
    pos_ = 4;
    f_.version_ = load<uint32_t>(b_ + 4);
    if (f_.version_ == 1) {
      return errorf("GGUF version 1 is not supported (only versions 2 and 3)");
    }
    if (f_.version_ != 2 && f_.version_ != 3) {
      // A big-endian GGUF file (a different format in practice) shows up as 0x02000000 etc.
      const bool swapped = f_.version_ == 0x02000000u || f_.version_ == 0x03000000u;
      return errorf("unknown GGUF version %u at byte 4%s (supported: 2 and 3)", f_.version_,
                    swapped ? " (a big-endian file?)" : "");
    }
    pos_ = 8;
    n_tensors_ = load<uint64_t>(b_ + 8);
    n_kv_ = load<uint64_t>(b_ + 16);
    pos_ = kHeader;
    // Each key/value needs at least 8 (key length) + 4 (type) + 1 (u8 value) bytes and each
    // tensor info at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    if (n_kv_ > Limits::max_metadata) {
      return errorf("key/value count %" PRIu64 " at byte 16 exceeds the limit of %" PRIu64, n_kv_,
                    Limits::max_metadata);
    }
    if (n_tensors_ > Limits::max_tensors) {
      return errorf("tensor count %" PRIu64 " at byte 8 exceeds the limit of %" PRIu64, n_tensors_,
                    Limits::max_tensors);
    }
    const uint64_t min_bytes = n_kv_ * 13 + n_tensors_ * 32;  // no overflow: both counts <= 2^20
    if (min_bytes > remaining()) {
      return errorf("%" PRIu64 " keys and %" PRIu64
                    " tensors need at least %" PRIu64 " bytes but only %" PRIu64
                    " remain after the header (file size %zu)",
                    n_kv_, n_tensors_, min_bytes, remaining(), size_);
    }
    return Status::success();
  }

  // ------------------------------------------------------------------------------------------
  // Metadata
  // ------------------------------------------------------------------------------------------

  Status read_metadata() {
    f_.metadata_.reserve(static_cast<size_t>(n_kv_));
    f_.key_index_.reserve(static_cast<size_t>(n_kv_));
    for (uint64_t k = 0; k < n_kv_; ++k) {
      const size_t at = pos_;
      where_ = "key #" + std::to_string(k) + " at byte " + std::to_string(at);
      auto key = string("key name");
      if (!key) return std::move(key).error();
      where_ = "key '" + printable(*key) + "' at byte " + std::to_string(at);
      if (f_.key_index_.count(*key) != 0) return fail("duplicate key");
      auto type = u32("value type");
      if (!type) return std::move(type).error();
      if (!is_valid_value_type(*type)) {
        return fail("unknown value type " + std::to_string(*type));
      }
      KeyValue kv;
      kv.key = *key;
      kv.offset = at;
      kv.value.type = static_cast<ValueType>(*type);
      SLM_TRY(read_value(kv.value, 0));
      if (kv.key == "general.alignment") SLM_TRY(check_alignment(kv.value));
      f_.key_index_.emplace(kv.key, f_.metadata_.size());
      f_.metadata_.push_back(std::move(kv));
    }
    where_.clear();
    return Status::success();
  }

  Status check_alignment(const Value& v) {
    if (v.type != ValueType::UINT32) {
      return fail(std::string("type ") + value_type_name(v.type) + ", expected u32");
    }
    if (!is_power_of_two(v.u) || v.u > Limits::max_alignment) {
      return fail("alignment " + std::to_string(v.u) + " is not a power of two in [1, " +
                  std::to_string(Limits::max_alignment) + "]");
    }
    f_.alignment_ = static_cast<uint32_t>(v.u);
    return Status::success();
  }

  // Reads a value of out.type; `depth` is the array nesting of `out` (0 for a key's value).
  Status read_value(Value& out, uint64_t depth) {
    const size_t sz = value_type_size(out.type);
    if (out.type == ValueType::STRING) {
      auto s = string("string value");
      if (!s) return std::move(s).error();
      out.str = *s;
      return Status::success();
    }
    if (out.type != ValueType::ARRAY) {
      SLM_TRY(need(sz, value_type_name(out.type)));
      decode_scalar(out.type, b_ + pos_, out);
      if (out.type == ValueType::BOOL && out.u > 1) {
        return fail("bool value " + std::to_string(out.u) + " at byte " + std::to_string(pos_) +
                    " is neither 0 nor 1");
      }
      pos_ += sz;
      return Status::success();
    }
    return read_array(out, depth);
  }

  Status read_array(Value& out, uint64_t depth) {
    const size_t at = pos_;
    auto et = u32("array element type");
    if (!et) return std::move(et).error();
    if (!is_valid_value_type(*et)) {
      return fail("array at byte " + std::to_string(at) + ": unknown element type " +
                  std::to_string(*et));
    }
    out.elem_type = static_cast<ValueType>(*et);
    auto count = u64("array count");
    if (!count) return std::move(count).error();
    out.count = *count;
    if (out.count > Limits::max_array_items) {
      return fail("array at byte " + std::to_string(at) + ": count " + std::to_string(out.count) +
                  " exceeds the limit of " + std::to_string(Limits::max_array_items));
    }
    // The smallest encoding of one element: a scalar's size, a string's length field, or a
    // nested array's type and count. A count the remaining bytes cannot hold is rejected before
    // anything is allocated for it.
    size_t min_elem = value_type_size(out.elem_type);
    if (out.elem_type == ValueType::STRING) min_elem = 8;
    if (out.elem_type == ValueType::ARRAY) min_elem = 12;
    if (out.count > remaining() / min_elem) {
      return fail("array at byte " + std::to_string(at) + ": " + std::to_string(out.count) + " " +
                  value_type_name(out.elem_type) + " elements need at least " +
                  std::to_string(out.count) + " x " + std::to_string(min_elem) +
                  " bytes but only " + std::to_string(remaining()) + " remain");
    }
    switch (out.elem_type) {
      case ValueType::STRING: {
        out.strings.reserve(static_cast<size_t>(out.count));
        for (uint64_t k = 0; k < out.count; ++k) {
          auto s = string("array string");
          if (!s) {
            return fail("array at byte " + std::to_string(at) + ", element " + std::to_string(k) +
                        ": " + strip_where(s.error().message));
          }
          out.strings.push_back(*s);
        }
        return Status::success();
      }
      case ValueType::ARRAY: {
        if (depth + 1 >= Limits::max_array_depth) {
          return fail("array at byte " + std::to_string(at) + ": arrays nested deeper than " +
                      std::to_string(Limits::max_array_depth) + " levels");
        }
        nested_items_ += out.count;
        if (nested_items_ > Limits::max_nested_items) {
          return fail("array at byte " + std::to_string(at) + ": nested arrays hold more than " +
                      std::to_string(Limits::max_nested_items) + " elements in all");
        }
        out.items.resize(static_cast<size_t>(out.count));
        for (Value& item : out.items) {
          item.type = ValueType::ARRAY;
          SLM_TRY(read_array(item, depth + 1));
        }
        return Status::success();
      }
      default: {
        const uint64_t n_bytes = out.count * min_elem;  // fits: checked against remaining
        out.raw = b_ + pos_;
        if (out.elem_type == ValueType::BOOL) {
          for (uint64_t k = 0; k < out.count; ++k) {
            if (out.raw[k] > 1) {
              return fail("array at byte " + std::to_string(at) + ": bool element " +
                          std::to_string(k) + " is " + std::to_string(out.raw[k]) +
                          ", neither 0 nor 1");
            }
          }
        }
        pos_ += static_cast<size_t>(n_bytes);
        return Status::success();
      }
    }
  }

  // The message of a nested failure without the "key ...: " prefix it already carries.
  std::string strip_where(const std::string& message) const {
    if (!where_.empty() && message.rfind(where_ + ": ", 0) == 0) {
      return message.substr(where_.size() + 2);
    }
    return message;
  }

  // ------------------------------------------------------------------------------------------
  // Tensor infos
  // ------------------------------------------------------------------------------------------

  Status read_tensor_infos() {
    f_.tensors_.reserve(static_cast<size_t>(n_tensors_));
    f_.tensor_index_.reserve(static_cast<size_t>(n_tensors_));
    for (uint64_t k = 0; k < n_tensors_; ++k) {
      const size_t at = pos_;
      where_ = "tensor #" + std::to_string(k) + " at byte " + std::to_string(at);
      auto name = string("tensor name");
      if (!name) return std::move(name).error();
      where_ = "tensor '" + printable(*name) + "' at byte " + std::to_string(at);
      if (f_.tensor_index_.count(*name) != 0) return fail("duplicate tensor name");
      TensorInfo t;
      t.name = *name;
      auto n_dims = u32("dimension count");
      if (!n_dims) return std::move(n_dims).error();
      if (*n_dims == 0 || *n_dims > Limits::max_dims) {
        return fail("dimension count " + std::to_string(*n_dims) + " is not in [1, " +
                    std::to_string(Limits::max_dims) + "]");
      }
      t.n_dims = *n_dims;
      uint64_t n_elements = 1;
      for (uint32_t d = 0; d < t.n_dims; ++d) {
        auto ne = u64("dimension");
        if (!ne) return std::move(ne).error();
        if (*ne == 0 || *ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return fail("dimension " + std::to_string(d) + " is " +
                      std::to_string(static_cast<int64_t>(*ne)) + " (must be positive)");
        }
        if (n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / *ne) {
          return fail("element count overflows int64 at dimension " + std::to_string(d));
        }
        n_elements *= *ne;
        t.ne[d] = static_cast<int64_t>(*ne);
      }
      t.n_elements = n_elements;
      auto type = u32("tensor type");
      if (!type) return std::move(type).error();
      const TypeTraits* tt = type_traits(*type);
      if (tt == nullptr) return fail("unknown tensor type id " + std::to_string(*type));
      t.type = tt->type;
      if (t.ne[0] % tt->block_elems != 0) {
        return fail("row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                    tt->name + " block size " + std::to_string(tt->block_elems));
      }
      // Bytes = blocks * block_bytes; blocks <= n_elements < 2^63, so only the multiply can
      // overflow.
      const uint64_t blocks = n_elements / static_cast<uint64_t>(tt->block_elems);
      uint64_t n_bytes = 0;
      if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(tt->block_bytes), &n_bytes)) {
        return fail("byte size overflows (" + std::to_string(n_elements) + " elements of " +
                    tt->name + ")");
      }
      t.n_bytes = n_bytes;
      auto offset = u64("data offset");
      if (!offset) return std::move(offset).error();
      t.offset = *offset;
      f_.tensor_index_.emplace(t.name, f_.tensors_.size());
      f_.tensors_.push_back(t);
    }
    where_.clear();
    return Status::success();
  }

  // ------------------------------------------------------------------------------------------
  // Tensor data
  // ------------------------------------------------------------------------------------------

  Status locate_tensor_data() {
    const uint64_t a = f_.alignment_;
    // pos_ <= size_ < 2^63, so rounding up cannot overflow.
    f_.data_offset_ = (pos_ + a - 1) / a * a;
    for (TensorInfo& t : f_.tensors_) {
      where_ = "tensor '" + printable(t.name) + "'";
      if (t.offset % a != 0) {
        return fail("data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                    std::to_string(a));
      }
      uint64_t start = 0, end = 0;
      if (__builtin_add_overflow(f_.data_offset_, t.offset, &start) ||
          __builtin_add_overflow(start, t.n_bytes, &end) || end > size_) {
        return fail("data [offset " + std::to_string(f_.data_offset_) + " + " +
                    std::to_string(t.offset) + ", " + std::to_string(t.n_bytes) +
                    " bytes] runs past end of file (size " + std::to_string(size_) + ")");
      }
      t.data = b_ + start;
    }
    where_.clear();
    return Status::success();
  }

  File& f_;
  const uint8_t* b_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t nested_items_ = 0;
  std::string where_;
};

// ============================================================================================
// File
// ============================================================================================

Expected<File> File::from_buffer(const void* data, size_t size) {
  File f;
  f.bytes_ = static_cast<const uint8_t*>(data);
  f.size_ = size;
  if (f.bytes_ == nullptr && size != 0) return errorf("null buffer of %zu bytes", size);
  Parser parser(f);
  SLM_TRY(parser.run());
  return f;
}

Expected<File> File::open(const std::string& path) {
  auto map = MappedFile::open(path);
  if (!map) return std::move(map).error();
  File f;
  f.map_ = std::move(*map);
  f.bytes_ = f.map_.data();
  f.size_ = f.map_.size();
  Parser parser(f);
  Status st = parser.run();
  if (!st) return errorf("%s: %s", path.c_str(), st.message().c_str());
  return f;
}

const Value* File::find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ============================================================================================
// Typed accessors
// ============================================================================================

static Error missing(std::string_view key) {
  return errorf("missing key '%.*s'", static_cast<int>(key.size()), key.data());
}

static Error wrong_type(std::string_view key, const Value& v, const char* expected) {
  if (v.type == ValueType::ARRAY) {
    return errorf("key '%.*s' is an array of %s, expected %s", static_cast<int>(key.size()),
                  key.data(), value_type_name(v.elem_type), expected);
  }
  return errorf("key '%.*s' is a %s, expected %s", static_cast<int>(key.size()), key.data(),
                value_type_name(v.type), expected);
}

Expected<std::string_view> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != ValueType::STRING) return wrong_type(key, *v, "a string");
  return v->str;
}

Expected<uint64_t> File::get_uint(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (!is_integer_type(v->type)) return wrong_type(key, *v, "an unsigned integer");
  if (is_signed_type(v->type)) {
    if (v->i < 0) {
      return errorf("key '%.*s' is %" PRId64 ", expected an unsigned integer",
                    static_cast<int>(key.size()), key.data(), v->i);
    }
    return static_cast<uint64_t>(v->i);
  }
  return v->u;
}

Expected<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (!is_integer_type(v->type)) return wrong_type(key, *v, "an integer");
  if (is_signed_type(v->type)) return v->i;
  if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return errorf("key '%.*s' is %" PRIu64 ", too large for int64", static_cast<int>(key.size()),
                  key.data(), v->u);
  }
  return static_cast<int64_t>(v->u);
}

Expected<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (!is_float_type(v->type)) return wrong_type(key, *v, "a float");
  return v->f;
}

Expected<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != ValueType::BOOL) return wrong_type(key, *v, "a bool");
  return v->u != 0;
}

Expected<std::span<const std::string_view>> File::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != ValueType::ARRAY || v->elem_type != ValueType::STRING) {
    return wrong_type(key, *v, "an array of strings");
  }
  return std::span<const std::string_view>(v->strings);
}

Expected<std::vector<double>> File::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != ValueType::ARRAY ||
      !(is_float_type(v->elem_type) || is_integer_type(v->elem_type))) {
    return wrong_type(key, *v, "an array of numbers");
  }
  std::vector<double> out(static_cast<size_t>(v->count));
  for (uint64_t k = 0; k < v->count; ++k) out[k] = v->number_at(k);
  return out;
}

Expected<std::vector<int64_t>> File::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != ValueType::ARRAY || !is_integer_type(v->elem_type)) {
    return wrong_type(key, *v, "an array of integers");
  }
  std::vector<int64_t> out(static_cast<size_t>(v->count));
  for (uint64_t k = 0; k < v->count; ++k) {
    if (v->elem_type == ValueType::UINT64) {
      const auto u = load<uint64_t>(v->raw + k * 8);
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return errorf("key '%.*s': element %" PRIu64 " is %" PRIu64 ", too large for int64",
                      static_cast<int>(key.size()), key.data(), k, u);
      }
    }
    out[k] = v->integer_at(k);
  }
  return out;
}

Expected<uint64_t> File::get_uint_or(std::string_view key, uint64_t fallback) const {
  if (find(key) == nullptr) return fallback;
  return get_uint(key);
}

Expected<double> File::get_float_or(std::string_view key, double fallback) const {
  if (find(key) == nullptr) return fallback;
  return get_float(key);
}

Expected<bool> File::get_bool_or(std::string_view key, bool fallback) const {
  if (find(key) == nullptr) return fallback;
  return get_bool(key);
}

}  // namespace slm::gguf
