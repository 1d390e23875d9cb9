// A read-only memory map of a whole file (weights are used in place, never copied).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "slm/status.hpp"

namespace slm {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Maps `path` with PROT_READ / MAP_PRIVATE. An empty file maps to size 0 and data nullptr.
  static Expected<MappedFile> open(const std::string& path);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

  // Locks the pages in RAM (mlock); an error when the OS refuses (RLIMIT_MEMLOCK).
  Status lock();

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace slm
