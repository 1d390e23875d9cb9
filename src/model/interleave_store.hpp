// Load-time interleaving of a model's quantized matrices (kernels::Layout::x16), shared by the
// architectures: which matrices to copy, how many bytes that takes, and the copy itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "kernels/kernels.hpp"
#include "slm/status.hpp"

namespace slm {
namespace gguf { class File; }

namespace model_interleave {

// Whether `m` is worth interleaving on this CPU: the kernels can interleave it and the default
// kernel level has native kernels for the interleaved layout (kernels::interleave_pays).
bool wanted(const kernels::Matrix& m);

// Bytes the copies of `mats` take in one block (each copy starts on a 64-byte boundary), or 0
// when they would exceed the memory cap below: then the model keeps every matrix mapped.
//
// Why a cap: the copies are process heap. For a model that fits in RAM the resident total is
// the same as mapping (each copied slice's mapped pages are dropped), but a model near or above
// physical memory (DeepSeek-V3/R1: hundreds of GB, each token touching a few experts) only runs
// because the kernel can page mapped weights in and out; heap copies would be swapped or
// killed. Interleaving is skipped when the copies exceed 3/4 of physical memory.
size_t bytes_for(const std::vector<kernels::Matrix*>& mats);

// Owns the interleaved copies of a model's matrices.
class Store {
 public:
  // Copies each matrix of `mats` into the interleaved layout (one heap block of bytes_for(mats)
  // bytes) and points it there. The copy goes a few MiB of rows at a time, and when `file` owns
  // its map each slice's mapped pages are dropped right after (MADV_DONTNEED, best effort), so
  // the resident total never holds both copies of a large matrix. Nothing happens when
  // bytes_for(mats) is 0. On error the matrices already switched point into this store, so the
  // model must not be used (the loaders return the error).
  Status interleave(const std::vector<kernels::Matrix*>& mats, const gguf::File& file);
  size_t bytes() const { return bytes_; }

 private:
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, FreeDeleter> data_;  // 64-byte aligned
  size_t bytes_ = 0;
};

}  // namespace model_interleave
}  // namespace slm
