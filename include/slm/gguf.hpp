// GGUF (versions 2 and 3): a hardened reader over a read-only map or a caller's buffer, and a
// writer that tools and tests use to build model files.
//
// Every count, length, offset, dimension and size read from a file is checked against the bytes
// that remain and for overflow before use; a malformed file yields an Error naming what is wrong
// and where (key or tensor name, byte offset).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "slm/dtype.hpp"
#include "slm/mapped_file.hpp"
#include "slm/status.hpp"

namespace slm::gguf {

// The limits a file must respect, all in one place. They are far above any real model
// (DeepSeek-V3 has ~1,900 tensors and a 129k-token vocabulary) and low enough that a hostile
// header cannot make the reader allocate or loop without bound.
struct Limits {
  static constexpr uint64_t max_string_bytes = 64ull << 20;  // one string (chat templates are KBs)
  static constexpr uint64_t max_array_items = 1ull << 27;    // one array (vocab: ~150k items)
  static constexpr uint64_t max_array_depth = 8;             // arrays of arrays of ...
  // Elements of nested arrays in the whole file: each costs a Value (~150 bytes) for 12 file
  // bytes, so this bounds the memory a hostile file of arrays of empty arrays can ask for.
  static constexpr uint64_t max_nested_items = 1ull << 20;
  static constexpr uint64_t max_tensors = 1ull << 20;
  static constexpr uint64_t max_metadata = 1ull << 20;       // key/value pairs
  static constexpr uint32_t max_dims = 4;
  static constexpr uint32_t max_alignment = 1u << 16;
};

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint32_t kDefaultAlignment = 32;

enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
const char* value_type_name(ValueType t);  // "u32", "string", "array", ...
// Bytes of one element of a scalar type; 0 for STRING and ARRAY.
size_t value_type_size(ValueType t);

// A metadata value. Strings and scalar arrays point into the file's bytes (valid while the File
// lives); string arrays and nested arrays are indexed once at open.
struct Value {
  ValueType type = ValueType::UINT8;
  // Scalars (by type): unsigned in `u`, signed in `i`, floats in `f`, bool in `u` (0/1).
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string_view str;  // STRING
  // ARRAY
  ValueType elem_type = ValueType::UINT8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;         // scalar arrays: `count` little-endian elements
  std::vector<std::string_view> strings;  // string arrays
  std::vector<Value> items;             // arrays of arrays

  // Element k of a scalar array as a double / int64 (k < count, elem_type scalar); 0 when k is
  // out of range or the array holds strings or arrays. integer_at truncates floats toward zero,
  // saturating at the int64 limits (NaN gives 0); u64 values above INT64_MAX wrap (read the
  // bits back with static_cast<uint64_t>).
  double number_at(uint64_t k) const;
  int64_t integer_at(uint64_t k) const;
};

struct KeyValue {
  std::string_view key;
  Value value;
  uint64_t offset = 0;  // byte offset of the key in the file, for messages
};

struct TensorInfo {
  std::string_view name;
  DType type = DType::F32;
  uint32_t n_dims = 0;
  int64_t ne[Limits::max_dims] = {1, 1, 1, 1};  // ne[0] is the row length (innermost)
  uint64_t offset = 0;       // relative to the start of the tensor data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the file's bytes

  int64_t rows() const { return static_cast<int64_t>(n_elements) / ne[0]; }
};

class File {
 public:
  // Maps `path` read-only and parses it.
  static Expected<File> open(const std::string& path);
  // Parses a caller's buffer in place (not copied): it must outlive the File.
  static Expected<File> from_buffer(const void* data, size_t size);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section
  const uint8_t* bytes() const { return bytes_; }
  size_t size() const { return size_; }
  // Whether the bytes are this File's own read-only map of a file (open), not a caller's buffer:
  // then pages of it may be dropped (madvise) and are read back from the file if touched again.
  bool owns_map() const { return map_.data() != nullptr; }

  std::span<const KeyValue> metadata() const { return metadata_; }
  std::span<const TensorInfo> tensors() const { return tensors_; }
  const Value* find(std::string_view key) const;
  const TensorInfo* find_tensor(std::string_view name) const;

  // Typed accessors: an Error names the key when it is missing or of another type.
  // Integers accept any integer type whose value fits; floats accept FLOAT32 and FLOAT64.
  Expected<std::string_view> get_string(std::string_view key) const;
  Expected<uint64_t> get_uint(std::string_view key) const;
  Expected<int64_t> get_int(std::string_view key) const;
  Expected<double> get_float(std::string_view key) const;
  Expected<bool> get_bool(std::string_view key) const;
  Expected<std::span<const std::string_view>> get_string_array(std::string_view key) const;
  Expected<std::vector<double>> get_float_array(std::string_view key) const;
  Expected<std::vector<int64_t>> get_int_array(std::string_view key) const;

  // Convenience for optional keys: the default when absent; still an Error on a type mismatch.
  Expected<uint64_t> get_uint_or(std::string_view key, uint64_t fallback) const;
  Expected<double> get_float_or(std::string_view key, double fallback) const;
  Expected<bool> get_bool_or(std::string_view key, bool fallback) const;

  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;

 private:
  File() = default;
  MappedFile map_;  // empty when parsing a caller's buffer
  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> metadata_;
  std::vector<TensorInfo> tensors_;
  // Name -> index in metadata_ / tensors_ (views into the file's bytes).
  std::unordered_map<std::string_view, size_t> key_index_;
  std::unordered_map<std::string_view, size_t> tensor_index_;

  friend class Parser;
};

// Builds a GGUF (version 3) file. Keys and tensors are written in the order they are added.
class Writer {
 public:
  Writer();
  ~Writer();
  Writer(Writer&&) noexcept;
  Writer& operator=(Writer&&) noexcept;

  void set_alignment(uint32_t alignment);  // power of two; written as general.alignment if != 32

  void add_uint8(std::string_view key, uint8_t v);
  void add_int8(std::string_view key, int8_t v);
  void add_uint16(std::string_view key, uint16_t v);
  void add_int16(std::string_view key, int16_t v);
  void add_uint32(std::string_view key, uint32_t v);
  void add_int32(std::string_view key, int32_t v);
  void add_uint64(std::string_view key, uint64_t v);
  void add_int64(std::string_view key, int64_t v);
  void add_float32(std::string_view key, float v);
  void add_float64(std::string_view key, double v);
  void add_bool(std::string_view key, bool v);
  void add_string(std::string_view key, std::string_view v);
  void add_string_array(std::string_view key, std::span<const std::string> items);
  void add_string_array(std::string_view key, std::span<const std::string_view> items);
  void add_int32_array(std::string_view key, std::span<const int32_t> items);
  void add_uint32_array(std::string_view key, std::span<const uint32_t> items);
  void add_float32_array(std::string_view key, std::span<const float> items);
  // Any scalar array, from `count` little-endian elements of `elem_type`.
  void add_array_raw(std::string_view key, ValueType elem_type, const void* items, uint64_t count);
  // Copies a value (any type, nested arrays included) from a file being read.
  void add_value(std::string_view key, const Value& value);

  // A tensor whose bytes are copied now. `shape` lists ne[0] (row length) first.
  Status add_tensor(std::string_view name, DType type, std::span<const int64_t> shape,
                    const void* data, size_t n_bytes);
  // A tensor whose bytes are produced when the file is written (large models are never held
  // in memory whole). The callback fills exactly the tensor's byte size.
  using Producer = std::function<Status(std::span<uint8_t> out)>;
  Status add_tensor(std::string_view name, DType type, std::span<const int64_t> shape,
                    Producer producer);

  Status write_file(const std::string& path) const;
  Expected<std::vector<uint8_t>> write_buffer() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm::gguf
