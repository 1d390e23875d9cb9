// One block for all of a context's buffers (issue 9): the caller's arena (ContextParams::arena)
// or a single allocation made here. A context lays its buffers out with a Carver twice: once
// with no base to measure (context_memory_required), once on the block to point its buffers
// into it; both walk the same code, so the size asked for and the size used agree exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "slm/model.hpp"
#include "slm/status.hpp"

namespace slm::model_memory {

constexpr size_t kAlign = 64;  // every buffer starts on a cache line (and any SIMD width)
inline size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Hands out consecutive 64-byte-aligned pieces of a block; with base == nullptr it only counts
// (the pieces are then null pointers).
class Carver {
 public:
  explicit Carver(uint8_t* base = nullptr) : base_(base) {}
  template <class T>
  T* take(size_t n) {
    T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += round_up(n * sizeof(T));
    return p;
  }
  size_t used() const { return used_; }

 private:
  uint8_t* base_;
  size_t used_ = 0;
};

// The block: borrowed from params.arena when given, else one aligned_alloc of `bytes` (freed
// at destruction). The caller's arena must be 64-byte aligned and hold `bytes`; nothing
// outside its first `bytes` bytes is ever written.
// The checks every architecture makes on ContextParams before planning its memory.
inline Status validate(const ContextParams& p) {
  if (p.n_ctx <= 0) return errorf("context: n_ctx must be positive, got %d", p.n_ctx);
  if (p.n_batch <= 0) return errorf("context: n_batch must be positive, got %d", p.n_batch);
  if (p.n_threads <= 0 || p.n_threads > 1024) return errorf("context: n_threads must be in [1, 1024], got %d", p.n_threads);
  if (p.kv_type == KvType::Q8_0) return errorf("context: KV cache type Q8_0 is not supported yet (use F16 or F32)");
  if (p.isa && !isa_level_supported(*p.isa))
    return errorf("context: kernel level %s is not supported here (this CPU and build go up to %s)",
                  isa_level_name(*p.isa), isa_level_name(cpu_max_isa_level()));
  return Status::success();
}

// The kernel level a context runs at.
inline IsaLevel isa_of(const ContextParams& p) { return p.isa ? *p.isa : default_isa_level(); }

class Block {
 public:
  Block() = default;
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  ~Block() {
    if (owned_) std::free(data_);
  }

  Status init(const ContextParams& params, size_t bytes) {
    size_ = bytes;
    if (params.arena != nullptr) {
      if (reinterpret_cast<uintptr_t>(params.arena) % kAlign != 0)
        return errorf("context: arena %p is not %zu-byte aligned", params.arena, kAlign);
      if (params.arena_bytes < bytes)
        return errorf("context: arena of %zu bytes is too small: this context needs %zu bytes "
                      "(Model::context_memory_required)", params.arena_bytes, bytes);
      data_ = static_cast<uint8_t*>(params.arena);
      return Status::success();
    }
    data_ = static_cast<uint8_t*>(std::aligned_alloc(kAlign, round_up(bytes == 0 ? 1 : bytes)));
    if (data_ == nullptr) return errorf("context: cannot allocate %zu bytes", bytes);
    owned_ = true;
    return Status::success();
  }
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool owned_ = false;
};

}  // namespace slm::model_memory
