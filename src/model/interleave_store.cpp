#include "model/interleave_store.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "slm/cpu.hpp"
#include "slm/gguf.hpp"

namespace slm::model_interleave {
namespace {

size_t padded(size_t n) { return (n + 63) / 64 * 64; }

size_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;  // unknown: no cap
  return static_cast<size_t>(pages) * static_cast<size_t>(page);
}

}  // namespace

bool wanted(const kernels::Matrix& m) {
  return kernels::can_interleave(m) && kernels::interleave_pays(default_isa_level(), m.type);
}

size_t bytes_for(const std::vector<kernels::Matrix*>& mats) {
  size_t total = 0;
  for (const kernels::Matrix* m : mats) total += padded(kernels::interleaved_bytes(*m));
  const size_t ram = physical_memory();
  if (ram > 0 && total > ram / 4 * 3) return 0;
  return total;
}

Status Store::interleave(const std::vector<kernels::Matrix*>& mats, const gguf::File& file) {
  const size_t total = bytes_for(mats);
  if (total == 0) return Status::success();
  data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, total)));
  if (!data_) return errorf("interleaving %zu bytes of weights: out of memory (load without interleaving)", total);
  const long page_size = sysconf(_SC_PAGESIZE);
  size_t offset = 0;
  for (kernels::Matrix* m : mats) {
    const size_t n = kernels::interleaved_bytes(*m);
    // A group of 16 rows takes the same bytes in both layouts, so slices of whole groups map
    // one to one (the 1.5B model's output matrix is 131 MB; an expert tensor of V2-Lite 185 MB).
    const int64_t chunk_rows =
        std::max<int64_t>(16, static_cast<int64_t>((size_t{4} << 20) / m->row_stride) / 16 * 16);
    for (int64_t r = 0; r < m->n_rows; r += chunk_rows) {
      kernels::Matrix slice = *m;
      slice.n_rows = std::min(chunk_rows, m->n_rows - r);
      slice.data = static_cast<const uint8_t*>(m->data) + static_cast<size_t>(r) * m->row_stride;
      const size_t slice_bytes = static_cast<size_t>(slice.n_rows) * m->row_stride;
      auto x = kernels::interleave_x16(slice, data_.get() + offset + static_cast<size_t>(r) * m->row_stride, slice_bytes);
      if (!x) return x.error();
      if (file.owns_map() && page_size > 0) {
        const auto ps = static_cast<uintptr_t>(page_size), begin = reinterpret_cast<uintptr_t>(slice.data);
        const uintptr_t first = (begin + ps - 1) / ps * ps, last = (begin + slice_bytes) / ps * ps;
        if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
      }
    }
    m->data = data_.get() + offset;
    m->layout = kernels::Layout::x16;
    offset += padded(n);
  }
  bytes_ = total;
  return Status::success();
}

}  // namespace slm::model_interleave
