// safetensors: a hardened, memory-mapped reader of Hugging Face checkpoint files (one file, or a
// sharded checkpoint described by model.safetensors.index.json), for slm-convert.
//
// Format: an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {"k": "v", ...}, "name": {"dtype": "BF16", "shape": [r, c],
//    "data_offsets": [begin, end]}, ...}
// then the data section; offsets are relative to its start. Every length, shape, offset and
// dtype is checked before use (header inside the file, JSON valid, sizes = elements x dtype size
// without overflow, ranges inside the data section, no two tensors overlapping, no duplicate
// names); a bad file yields an Error naming the file, the tensor and what is wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "slm/mapped_file.hpp"
#include "slm/status.hpp"

namespace slm::safetensors {

struct Limits {
  static constexpr uint64_t max_header_bytes = 100ull << 20;  // as the reference implementation
  static constexpr size_t max_dims = 8;
  static constexpr size_t max_tensors = 1u << 20;
};

enum class DType : uint8_t { BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2 };
const char* dtype_name(DType t);
size_t dtype_size(DType t);

struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // outermost first, as in PyTorch (shape.back() is the row length)
  uint64_t n_elements = 1;
  uint64_t begin = 0, end = 0;     // byte range in the data section
  const uint8_t* data = nullptr;   // into the mapped file
  const std::string* file = nullptr;  // path of the file holding it, for messages

  uint64_t n_bytes() const { return end - begin; }
  int64_t row_length() const { return shape.empty() ? 1 : shape.back(); }
  int64_t n_rows() const { return shape.empty() ? 1 : static_cast<int64_t>(n_elements) / shape.back(); }
  bool is_float() const { return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F64; }
};

class File {
 public:
  static Expected<File> open(const std::string& path);
  // Parses a caller's buffer in place (it must outlive the File); `name` is used in messages.
  static Expected<File> from_buffer(const void* data, size_t size, const std::string& name = "<buffer>");

  const std::string& path() const { return *path_; }
  std::span<const Tensor> tensors() const { return tensors_; }
  const Tensor* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;

 private:
  File() = default;
  Status parse(const uint8_t* bytes, size_t size);
  MappedFile map_;
  std::unique_ptr<std::string> path_;  // stable address: tensors point at it
  std::vector<Tensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All the tensors of a checkpoint directory: model.safetensors.index.json (its weight_map names
// the shard of each tensor; every shard must exist and hold exactly the tensors the index gives
// it) or, without an index, every *.safetensors file in the directory (a name in two files is
// an error).
class Checkpoint {
 public:
  static Expected<Checkpoint> open_dir(const std::string& dir);
  const Tensor* find(std::string_view name) const;
  // Every tensor, sorted by name.
  const std::vector<const Tensor*>& tensors() const { return sorted_; }
  size_t n_files() const { return files_.size(); }

 private:
  std::vector<std::unique_ptr<File>> files_;
  std::unordered_map<std::string_view, const Tensor*> index_;
  std::vector<const Tensor*> sorted_;
};

// Converts elements [first, first + n) of a float tensor (F32, F16, BF16, F64) to float.
// An Error for other dtypes or an out-of-range request.
Status read_f32(const Tensor& t, uint64_t first, uint64_t n, float* out);

}  // namespace slm::safetensors
