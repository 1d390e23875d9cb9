// Load-time interleaving of Q4_0 and Q8_0 matrices (kernels.hpp Layout::x16) and the scalar
// reference product on that layout.
//
// Why: the decode GEMV on plain rows spends most of its vector work per block on moving one
// row's nibbles and scale into place (broadcasts, shifts, a scale permute, a horizontal sum at
// the end). With 16 rows interleaved per 64-byte line, one vpdpbusd multiplies 4 codes of 16
// rows by one broadcast of 4 activation codes, the 16 scales convert with one vcvtph2ps and each
// lane accumulates its own row: about a third of the instructions per byte read.
#include <cmath>
#include <cstring>

#include "kernels/kernel_table.hpp"
#include "quant/blocks.hpp"
#include "slm/thread_pool.hpp"

namespace slm::kernels {
namespace {

constexpr int64_t kGroupRows = 16;

// Bytes of one block of one row (18 or 34), or 0 for a type without an interleaved layout.
size_t block_bytes(DType type) {
  switch (type) {
    case DType::Q4_0: return sizeof(quant::block_q4_0);
    case DType::Q8_0: return sizeof(quant::block_q8_0);
    default: return 0;
  }
}

}  // namespace

bool can_interleave(const Matrix& w) {
  const size_t bb = block_bytes(w.type);
  if (bb == 0 || w.layout != Layout::rows || !w.data) return false;
  if (w.n_rows <= 0 || w.n_rows % kGroupRows != 0 || w.n_cols <= 0 || w.n_cols % 32 != 0) return false;
  return w.row_stride == static_cast<size_t>(w.n_cols / 32) * bb;
}

bool interleave_pays(IsaLevel level, DType type) {
  const detail::KernelTable* table = detail::kernel_table(level);
  const auto id = static_cast<int>(type);
  return table && block_bytes(type) != 0 && id < detail::kTypeSlots && table->by_type[id].rows_x16 != nullptr;
}

size_t interleaved_bytes(const Matrix& w) {
  return can_interleave(w) ? static_cast<size_t>(w.n_rows) * w.row_stride : 0;
}

Expected<Matrix> interleave_x16(const Matrix& w, void* dst, size_t dst_bytes) {
  if (!can_interleave(w))
    return errorf("interleave: need a plain Q4_0 or Q8_0 matrix with a multiple of 16 rows (got %s, %lld x %lld)",
                  dtype_name(w.type), static_cast<long long>(w.n_rows), static_cast<long long>(w.n_cols));
  const size_t need = interleaved_bytes(w);
  if (!dst || dst_bytes < need) return errorf("interleave: destination of %zu bytes, %zu needed", dst_bytes, need);
  const int64_t n_blocks = w.n_cols / 32;
  const size_t bb = block_bytes(w.type), group_block = kGroupRows * bb;
  const int lines = w.type == DType::Q4_0 ? 4 : 8;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t g = 0; g < w.n_rows / kGroupRows; ++g) {
    for (int64_t b = 0; b < n_blocks; ++b) {
      uint8_t* o = out + static_cast<size_t>(g * n_blocks + b) * group_block;
      for (int r = 0; r < kGroupRows; ++r) {
        const uint8_t* blk = static_cast<const uint8_t*>(w.data) +
                             static_cast<size_t>(g * kGroupRows + r) * w.row_stride + static_cast<size_t>(b) * bb;
        const uint8_t* codes = blk + 2;  // both blocks: f16 d, then the codes
        for (int line = 0; line < lines; ++line) {
          for (int i = 0; i < 4; ++i) {
            const uint8_t c = codes[4 * line + i];
            o[64 * line + 4 * r + i] = w.type == DType::Q8_0 ? static_cast<uint8_t>(c ^ 0x80) : c;  // int8 + 128
          }
        }
        std::memcpy(o + 64 * lines + 2 * r, blk, 2);
      }
    }
  }
  Matrix m = w;
  m.data = dst;
  m.layout = Layout::x16;
  return m;
}

namespace detail {

void rows_x16_ref(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
                  float* y, int64_t ldy) {
  const int64_t n_blocks = w.n_cols / 32;
  const bool q4 = w.type == DType::Q4_0;
  const int lines = q4 ? 4 : 8;
  const size_t group_block = kGroupRows * block_bytes(w.type);
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t g = r / kGroupRows, lane = r % kGroupRows;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const auto* a = reinterpret_cast<const quant::block_q8_0*>(static_cast<const uint8_t*>(act) + t * act_stride);
      float acc = 0.0f;
      for (int64_t b = 0; b < n_blocks; ++b) {
        const uint8_t* o = base + static_cast<size_t>(g * n_blocks + b) * group_block;
        int32_t isum = 0;
        for (int line = 0; line < lines; ++line) {
          for (int i = 0; i < 4; ++i) {
            const uint8_t q = o[64 * line + 4 * lane + i];
            if (q4) {
              isum += ((q & 0x0f) - 8) * a[b].qs[4 * line + i];
              isum += ((q >> 4) - 8) * a[b].qs[16 + 4 * line + i];
            } else {
              isum += (q - 128) * a[b].qs[4 * line + i];
            }
          }
        }
        uint16_t dw;
        std::memcpy(&dw, o + 64 * lines + 2 * lane, 2);
        acc = std::fma(static_cast<float>(isum), f16_to_f32(dw) * f16_to_f32(a[b].d), acc);
      }
      y[t * ldy + r] = acc;
    }
  }
}

}  // namespace detail
}  // namespace slm::kernels
