// The hardened safetensors reader: header length, JSON, dtypes, shapes, offsets and overlaps are
// all checked before any tensor byte is touched.
#include "slm/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "slm/dtype.hpp"
#include "slm/json.hpp"

namespace slm::safetensors {

namespace {

struct DTypeInfo {
  DType type;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},     {DType::I8, "I8", 1},
    {DType::U16, "U16", 2},   {DType::I16, "I16", 2},   {DType::U32, "U32", 4},
    {DType::I32, "I32", 4},   {DType::U64, "U64", 8},   {DType::I64, "I64", 8},
    {DType::F16, "F16", 2},   {DType::BF16, "BF16", 2}, {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},   {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeInfo* find_dtype(std::string_view name) {
  for (const DTypeInfo& d : kDTypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

uint64_t read_u64le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

const char* dtype_name(DType t) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.type == t) return d.name;
  }
  return "?";
}

size_t dtype_size(DType t) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.type == t) return d.size;
  }
  return 0;
}

// ============================================================================================
// One file
// ============================================================================================

Expected<File> File::open(const std::string& path) {
  auto map = MappedFile::open(path);
  if (!map) return map.error();
  File f;
  f.path_ = std::make_unique<std::string>(path);
  f.map_ = std::move(*map);
  SLM_TRY(f.parse(f.map_.data(), f.map_.size()));
  return f;
}

Expected<File> File::from_buffer(const void* data, size_t size, const std::string& name) {
  File f;
  f.path_ = std::make_unique<std::string>(name);
  SLM_TRY(f.parse(static_cast<const uint8_t*>(data), size));
  return f;
}

Status File::parse(const uint8_t* bytes, size_t size) {
  const char* path = path_->c_str();
  if (size < 8) {
    return errorf("%s: not a safetensors file: %zu bytes, the 8-byte header length is missing", path, size);
  }
  const uint64_t n_header = read_u64le(bytes);
  if (n_header > Limits::max_header_bytes) {
    return errorf("%s: header length %llu is over the %llu-byte limit (not a safetensors file?)", path,
                  static_cast<unsigned long long>(n_header),
                  static_cast<unsigned long long>(Limits::max_header_bytes));
  }
  if (n_header > size - 8) {
    return errorf("%s: header length %llu runs past the end of the file (%zu bytes)", path,
                  static_cast<unsigned long long>(n_header), size);
  }
  if (n_header < 2) return errorf("%s: header of %llu bytes cannot hold a JSON object", path,
                                  static_cast<unsigned long long>(n_header));
  // The format allows trailing spaces as padding after the JSON.
  std::string_view text(reinterpret_cast<const char*>(bytes + 8), n_header);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  auto doc = json::parse(text);
  if (!doc) return errorf("%s: header: %s", path, doc.error().message.c_str());
  if (!doc->is_object()) {
    return errorf("%s: header is a JSON %s, expected an object", path, json::kind_name(doc->kind()));
  }
  const uint8_t* data = bytes + 8 + n_header;
  const uint64_t data_size = size - 8 - n_header;
  if (doc->size() > Limits::max_tensors) return errorf("%s: more than %zu tensors", path, Limits::max_tensors);

  for (const json::Member& m : doc->members()) {
    if (m.key == "__metadata__") {
      if (!m.value.is_object()) {
        return errorf("%s: __metadata__ is a JSON %s, expected an object of strings", path,
                      json::kind_name(m.value.kind()));
      }
      for (const json::Member& kv : m.value.members()) {
        if (!kv.value.is_string()) {
          return errorf("%s: __metadata__ key '%s' is a JSON %s, expected a string", path, kv.key.c_str(),
                        json::kind_name(kv.value.kind()));
        }
        metadata_[kv.key] = std::string(kv.value.as_string());
      }
      continue;
    }
    const char* name = m.key.c_str();
    if (m.key.empty()) return errorf("%s: a tensor has an empty name", path);
    if (index_.count(m.key)) return errorf("%s: tensor '%s' is listed twice", path, name);
    if (!m.value.is_object()) {
      return errorf("%s: tensor '%s': entry is a JSON %s, expected an object", path, name,
                    json::kind_name(m.value.kind()));
    }
    Tensor t;
    t.name = m.key;
    t.file = path_.get();
    auto dt = json::get_string(m.value, "dtype");
    if (!dt) return errorf("%s: tensor '%s': %s", path, name, dt.error().message.c_str());
    const DTypeInfo* info = find_dtype(*dt);
    if (info == nullptr) {
      return errorf("%s: tensor '%s': unknown dtype '%.*s'", path, name, static_cast<int>(dt->size()), dt->data());
    }
    t.dtype = info->type;
    auto shape = json::get(m.value, "shape", json::Kind::Array);
    if (!shape) return errorf("%s: tensor '%s': %s", path, name, shape.error().message.c_str());
    if ((*shape)->size() > Limits::max_dims) {
      return errorf("%s: tensor '%s': %zu dimensions (at most %zu)", path, name, (*shape)->size(), Limits::max_dims);
    }
    t.n_elements = 1;
    for (const json::Value& d : (*shape)->items()) {
      if (!d.is_integer() || d.as_int() < 0) {
        return errorf("%s: tensor '%s': shape entries must be non-negative integers", path, name);
      }
      const uint64_t n = static_cast<uint64_t>(d.as_int());
      if (n != 0 && t.n_elements > UINT64_MAX / n) {
        return errorf("%s: tensor '%s': element count overflows", path, name);
      }
      t.n_elements *= n;
      t.shape.push_back(d.as_int());
    }
    auto offs = json::get(m.value, "data_offsets", json::Kind::Array);
    if (!offs) return errorf("%s: tensor '%s': %s", path, name, offs.error().message.c_str());
    if ((*offs)->size() != 2 || !(*offs)->items()[0].is_integer() || !(*offs)->items()[1].is_integer() ||
        (*offs)->items()[0].as_int() < 0 || (*offs)->items()[1].as_int() < 0) {
      return errorf("%s: tensor '%s': data_offsets must be two non-negative integers [begin, end]", path, name);
    }
    t.begin = static_cast<uint64_t>((*offs)->items()[0].as_int());
    t.end = static_cast<uint64_t>((*offs)->items()[1].as_int());
    if (t.end < t.begin) {
      return errorf("%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", path, name,
                    static_cast<unsigned long long>(t.begin), static_cast<unsigned long long>(t.end));
    }
    if (t.end > data_size) {
      return errorf("%s: tensor '%s': data_offsets [%llu, %llu] run past the data section (%llu bytes)", path,
                    name, static_cast<unsigned long long>(t.begin), static_cast<unsigned long long>(t.end),
                    static_cast<unsigned long long>(data_size));
    }
    if (t.n_elements > UINT64_MAX / info->size || t.n_elements * info->size != t.n_bytes()) {
      return errorf("%s: tensor '%s': %llu bytes in data_offsets, but shape x %s needs %llu x %zu", path, name,
                    static_cast<unsigned long long>(t.n_bytes()), info->name,
                    static_cast<unsigned long long>(t.n_elements), info->size);
    }
    t.data = data + t.begin;
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // No two tensors may share bytes (a crafted file could otherwise alias weights).
  std::vector<const Tensor*> by_offset;
  for (const Tensor& t : tensors_) {
    if (t.n_bytes() > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Tensor* a, const Tensor* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      return errorf("%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", path,
                    by_offset[i - 1]->name.c_str(), static_cast<unsigned long long>(by_offset[i - 1]->begin),
                    static_cast<unsigned long long>(by_offset[i - 1]->end), by_offset[i]->name.c_str(),
                    static_cast<unsigned long long>(by_offset[i]->begin),
                    static_cast<unsigned long long>(by_offset[i]->end));
    }
  }
  return Status::success();
}

const Tensor* File::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ============================================================================================
// A checkpoint directory
// ============================================================================================

Expected<Checkpoint> Checkpoint::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  Checkpoint c;
  std::error_code ec;
  const fs::path root(dir);
  const fs::path index_path = root / "model.safetensors.index.json";
  std::map<std::string, std::vector<std::string>> shard_tensors;  // shard -> names per index
  if (fs::exists(index_path, ec)) {
    auto doc = json::parse_file(index_path.string());
    if (!doc) return doc.error();
    auto wm = json::get(*doc, "weight_map", json::Kind::Object);
    if (!wm) return errorf("%s: %s", index_path.c_str(), wm.error().message.c_str());
    for (const json::Member& m : (*wm)->members()) {
      if (!m.value.is_string()) {
        return errorf("%s: weight_map entry '%s' is not a string", index_path.c_str(), m.key.c_str());
      }
      const std::string shard(m.value.as_string());
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
        return errorf("%s: weight_map entry '%s' names '%s', not a file in the directory", index_path.c_str(),
                      m.key.c_str(), shard.c_str());
      }
      shard_tensors[shard].push_back(m.key);
    }
    if (shard_tensors.empty()) return errorf("%s: weight_map is empty", index_path.c_str());
  } else {
    for (const auto& e : fs::directory_iterator(root, ec)) {
      if (e.path().extension() == ".safetensors") shard_tensors[e.path().filename().string()];
    }
    if (ec) return errorf("%s: cannot list: %s", dir.c_str(), ec.message().c_str());
    if (shard_tensors.empty()) return errorf("%s: no *.safetensors file and no model.safetensors.index.json", dir.c_str());
  }
  for (const auto& [shard, names] : shard_tensors) {
    auto f = File::open((root / shard).string());
    if (!f) return f.error();
    c.files_.push_back(std::make_unique<File>(std::move(*f)));
    const File& file = *c.files_.back();
    if (!names.empty()) {
      for (const std::string& n : names) {
        if (file.find(n) == nullptr) {
          return errorf("%s: the index puts tensor '%s' in this file, which does not hold it", file.path().c_str(),
                        n.c_str());
        }
      }
      if (names.size() != file.tensors().size()) {
        return errorf("%s: holds %zu tensors, the index lists %zu for it", file.path().c_str(),
                      file.tensors().size(), names.size());
      }
    }
    for (const Tensor& t : file.tensors()) {
      auto [it, fresh] = c.index_.emplace(std::string_view(t.name), &t);
      if (!fresh) {
        return errorf("tensor '%s' is in both %s and %s", t.name.c_str(), it->second->file->c_str(),
                      file.path().c_str());
      }
      c.sorted_.push_back(&t);
    }
  }
  std::sort(c.sorted_.begin(), c.sorted_.end(), [](const Tensor* a, const Tensor* b) { return a->name < b->name; });
  return c;
}

const Tensor* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

// ============================================================================================
// Conversion
// ============================================================================================

Status read_f32(const Tensor& t, uint64_t first, uint64_t n, float* out) {
  if (first > t.n_elements || n > t.n_elements - first) {
    return errorf("tensor '%s': elements [%llu, +%llu) out of range (%llu)", t.name.c_str(),
                  static_cast<unsigned long long>(first), static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(t.n_elements));
  }
  const uint8_t* p = t.data + first * dtype_size(t.dtype);
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(out, p, n * sizeof(float));
      return Status::success();
    case DType::F64:
      for (uint64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      return Status::success();
    case DType::F16:
    case DType::BF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = t.dtype == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      return Status::success();
    default:
      return errorf("tensor '%s' in %s: dtype %s is not a float type this converter reads (F32, F16, BF16, F64)",
                    t.name.c_str(), t.file ? t.file->c_str() : "?", dtype_name(t.dtype));
  }
}

}  // namespace slm::safetensors
