// Load-time interleaving of Q4_0, Q8_0, Q4_K and Q6_K matrices (kernels.hpp Layout::x16) and
// the scalar reference product on that layout.
//
// Why: the decode GEMV on plain rows spends most of its vector work per block on moving one
// row's nibbles and scale into place (broadcasts, shifts, a scale permute, a horizontal sum at
// the end). With 16 rows interleaved per 64-byte line, one vpdpbusd multiplies 4 codes of 16
// rows by one broadcast of 4 activation codes, the 16 scales convert with one vcvtph2ps and each
// lane accumulates its own row: about a third of the instructions per byte read.
#include <cmath>
#include <cstddef>
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
    case DType::Q4_K: return sizeof(quant::block_q4_k);
    case DType::Q6_K: return sizeof(quant::block_q6_k);
    default: return 0;
  }
}

// Elements per block: 32, or 256 for the K-quants' super-blocks.
int64_t block_elems(DType type) { return type == DType::Q4_K || type == DType::Q6_K ? 256 : 32; }

// The K-quant records (kernels.hpp Layout::x16): 16 rows' super-block sb -> one record of
// 16 * block bytes, and back. Each 64-byte line holds dword k of 16 rows (row r at bytes 4r..).
void interleave_kquant_record(DType type, const uint8_t* const rows[16], uint8_t* o) {
  auto line = [&](uint8_t* dst, size_t src_off) {
    for (int r = 0; r < 16; ++r) std::memcpy(dst + 4 * r, rows[r] + src_off, 4);
  };
  if (type == DType::Q4_K) {
    for (int l = 0; l < 32; ++l) line(o + 64 * l, offsetof(quant::block_q4_k, qs) + 4 * l);
    for (int k = 0; k < 3; ++k) line(o + 2048 + 64 * k, offsetof(quant::block_q4_k, scales) + 4 * k);
    for (int r = 0; r < 16; ++r) {
      std::memcpy(o + 2240 + 2 * r, rows[r] + offsetof(quant::block_q4_k, d), 2);
      std::memcpy(o + 2272 + 2 * r, rows[r] + offsetof(quant::block_q4_k, dmin), 2);
    }
  } else {  // Q6_K
    for (int h = 0; h < 2; ++h) {
      for (int i = 0; i < 8; ++i) {
        uint8_t* l3 = o + 64 * (24 * h + 3 * i);
        line(l3, offsetof(quant::block_q6_k, ql) + 64 * h + 4 * i);
        line(l3 + 64, offsetof(quant::block_q6_k, ql) + 64 * h + 32 + 4 * i);
        line(l3 + 128, offsetof(quant::block_q6_k, qh) + 32 * h + 4 * i);
      }
    }
    for (int r = 0; r < 16; ++r) {
      for (int s = 0; s < 16; ++s) o[3072 + 16 * s + r] = rows[r][offsetof(quant::block_q6_k, scales) + s];
      std::memcpy(o + 3328 + 2 * r, rows[r] + offsetof(quant::block_q6_k, d), 2);
    }
  }
}

void deinterleave_kquant_record(DType type, const uint8_t* o, uint8_t* const rows[16]) {
  auto line = [&](const uint8_t* src, size_t dst_off) {
    for (int r = 0; r < 16; ++r) std::memcpy(rows[r] + dst_off, src + 4 * r, 4);
  };
  if (type == DType::Q4_K) {
    for (int l = 0; l < 32; ++l) line(o + 64 * l, offsetof(quant::block_q4_k, qs) + 4 * l);
    for (int k = 0; k < 3; ++k) line(o + 2048 + 64 * k, offsetof(quant::block_q4_k, scales) + 4 * k);
    for (int r = 0; r < 16; ++r) {
      std::memcpy(rows[r] + offsetof(quant::block_q4_k, d), o + 2240 + 2 * r, 2);
      std::memcpy(rows[r] + offsetof(quant::block_q4_k, dmin), o + 2272 + 2 * r, 2);
    }
  } else {  // Q6_K
    for (int h = 0; h < 2; ++h) {
      for (int i = 0; i < 8; ++i) {
        const uint8_t* l3 = o + 64 * (24 * h + 3 * i);
        line(l3, offsetof(quant::block_q6_k, ql) + 64 * h + 4 * i);
        line(l3 + 64, offsetof(quant::block_q6_k, ql) + 64 * h + 32 + 4 * i);
        line(l3 + 128, offsetof(quant::block_q6_k, qh) + 32 * h + 4 * i);
      }
    }
    for (int r = 0; r < 16; ++r) {
      for (int s = 0; s < 16; ++s) rows[r][offsetof(quant::block_q6_k, scales) + s] = o[3072 + 16 * s + r];
      std::memcpy(rows[r] + offsetof(quant::block_q6_k, d), o + 3328 + 2 * r, 2);
    }
  }
}

}  // namespace

bool can_interleave(const Matrix& w) {
  const size_t bb = block_bytes(w.type);
  if (bb == 0 || w.layout != Layout::rows || !w.data) return false;
  const int64_t be = block_elems(w.type);
  if (w.n_rows <= 0 || w.n_rows % kGroupRows != 0 || w.n_cols <= 0 || w.n_cols % be != 0) return false;
  return w.row_stride == static_cast<size_t>(w.n_cols / be) * bb;
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
    return errorf("interleave: need a plain Q4_0, Q8_0, Q4_K or Q6_K matrix with a multiple of 16 rows (got %s, %lld x %lld)",
                  dtype_name(w.type), static_cast<long long>(w.n_rows), static_cast<long long>(w.n_cols));
  const size_t need = interleaved_bytes(w);
  if (!dst || dst_bytes < need) return errorf("interleave: destination of %zu bytes, %zu needed", dst_bytes, need);
  if (w.type == DType::Q4_K || w.type == DType::Q6_K) {
    const int64_t n_sb = w.n_cols / 256;
    const size_t bb = block_bytes(w.type);
    for (int64_t g = 0; g < w.n_rows / kGroupRows; ++g) {
      for (int64_t sb = 0; sb < n_sb; ++sb) {
        const uint8_t* rows[16];
        for (int r = 0; r < 16; ++r)
          rows[r] = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(g * kGroupRows + r) * w.row_stride +
                    static_cast<size_t>(sb) * bb;
        interleave_kquant_record(w.type, rows,
                                 static_cast<uint8_t*>(dst) + static_cast<size_t>(g * n_sb + sb) * kGroupRows * bb);
      }
    }
    Matrix m = w;
    m.data = dst;
    m.layout = Layout::x16;
    return m;
  }
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
        const uint32_t flip = w.type == DType::Q8_0 ? 0x80808080u : 0;  // Q8_0: int8 + 128 = int8 ^ 0x80
        for (int line = 0; line < lines; ++line) {
          uint32_t four;
          std::memcpy(&four, codes + 4 * line, 4);
          four ^= flip;
          std::memcpy(o + 64 * line + 4 * r, &four, 4);
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

void deinterleave_x16_rows(const Matrix& w, int64_t r0, int n, uint8_t* dst) {
  const size_t bb = block_bytes(w.type);
  const int64_t n_sb = w.n_cols / 256;
  for (int g = 0; g < n / kGroupRows; ++g) {
    const int64_t group = r0 / kGroupRows + g;
    for (int64_t sb = 0; sb < n_sb; ++sb) {
      uint8_t* rows[16];
      for (int r = 0; r < 16; ++r) rows[r] = dst + static_cast<size_t>(16 * g + r) * w.row_stride + static_cast<size_t>(sb) * bb;
      deinterleave_kquant_record(w.type,
                                 static_cast<const uint8_t*>(w.data) + static_cast<size_t>(group * n_sb + sb) * kGroupRows * bb,
                                 rows);
    }
  }
}

namespace {

// The K-quant reference on the interleaved layout: the integer sums and float steps of
// vec_dot_q4_k_q8_k_ref / vec_dot_q6_k_q8_k_ref, reading the record's fields.
void rows_x16_kquant_ref(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                         int64_t n_tokens, float* y, int64_t ldy) {
  const int64_t n_sb = w.n_cols / 256;
  const size_t rec_bytes = kGroupRows * block_bytes(w.type);
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t g = r / kGroupRows, lane = r % kGroupRows;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const auto* a = reinterpret_cast<const quant::block_q8_k*>(static_cast<const uint8_t*>(act) + t * act_stride);
      float acc = 0.0f;
      for (int64_t sb = 0; sb < n_sb; ++sb) {
        const uint8_t* o = base + static_cast<size_t>(g * n_sb + sb) * rec_bytes;
        uint16_t dw;
        if (w.type == DType::Q4_K) {
          uint8_t scales[12];
          for (int k = 0; k < 3; ++k) std::memcpy(scales + 4 * k, o + 2048 + 64 * k + 4 * lane, 4);
          int32_t sumi = 0, summ = 0;
          for (int j = 0; j < 8; ++j) {
            uint8_t sc, m;
            quant::get_scale_min_k4(j, scales, &sc, &m);
            int32_t s = 0;
            for (int l = 0; l < 32; ++l) {  // element 32j + l: qs byte 32(j/2) + l, line 8(j/2) + l/4
              const uint8_t q = o[64 * (8 * (j / 2) + l / 4) + 4 * lane + l % 4];
              s += ((q >> (4 * (j % 2))) & 0x0F) * a[sb].qs[32 * j + l];
            }
            sumi += sc * s;
            summ += m * (a[sb].bsums[2 * j] + a[sb].bsums[2 * j + 1]);
          }
          uint16_t dmin;
          std::memcpy(&dw, o + 2240 + 2 * lane, 2);
          std::memcpy(&dmin, o + 2272 + 2 * lane, 2);
          const float d = f16_to_f32(dw) * a[sb].d;
          const float dm = f16_to_f32(dmin) * a[sb].d;
          acc += d * static_cast<float>(sumi) - dm * static_cast<float>(summ);
        } else {  // Q6_K
          int32_t sumi = 0;
          for (int s = 0; s < 16; ++s) {
            int32_t sub = 0;
            for (int l = 0; l < 16; ++l) {
              const int e = 16 * s + l, h = e / 128, k = e % 128 / 32, li = e % 32;  // element 128h + 32k + li
              const int i = li / 4, byte = 4 * lane + li % 4;
              const uint8_t* l3 = o + 64 * (24 * h + 3 * i);
              const uint8_t ql = l3[(k % 2) * 64 + byte], qh = l3[128 + byte];
              const int code = ((ql >> (4 * (k / 2))) & 0x0F) | (((qh >> (2 * k)) & 3) << 4);
              sub += (code - 32) * a[sb].qs[e];
            }
            sumi += static_cast<int8_t>(o[3072 + 16 * s + lane]) * sub;
          }
          std::memcpy(&dw, o + 3328 + 2 * lane, 2);
          acc += (f16_to_f32(dw) * a[sb].d) * static_cast<float>(sumi);
        }
      }
      y[t * ldy + r] = acc;
    }
  }
}

}  // namespace

void rows_x16_ref(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
                  float* y, int64_t ldy) {
  if (w.type == DType::Q4_K || w.type == DType::Q6_K) {
    rows_x16_kquant_ref(w, r0, r1, act, act_stride, n_tokens, y, ldy);
    return;
  }
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
