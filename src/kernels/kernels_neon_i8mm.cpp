// Q8_0 and Q4_0 GEMM for prefill with the Armv8.6 int8 matrix multiply (SMMLA), compiled with
// -march=armv8.2-a+dotprod+i8mm; kernels_neon_dotprod.cpp installs it on the neon-dotprod
// table only when the kernel reports HWCAP2_I8MM.
//
// vmmlaq_s32(acc, a, b) adds the 2 x 2 integer products of two 8-byte rows of a with two 8-byte
// rows of b: with a = (weight row i, row i+1) and b = (token t, t+1) over the same 8 elements,
// four of them give one 32-element block's exact integer sums for 2 rows x 2 tokens. Each
// block is then added with the reference's expression, acc += (dw * da) * float(sumi), lane by
// lane in block order: the same operations as the one-token NEON kernel and
// vec_dot_q8_0_q8_0_ref / vec_dot_q4_0_q8_0_ref, so every output equals them bit for bit
// whatever the tile, the row range or the token count.
#include <algorithm>

#include "kernels/arm_neon.hpp"

#if !defined(__ARM_FEATURE_MATMUL_INT8)
#error "kernels_neon_i8mm.cpp needs -march=armv8.2-a+dotprod+i8mm"
#endif

namespace slm::kernels::detail {
namespace {

// One block's 32 signed codes of a weight row, as two 16-byte vectors (elements 0..15, 16..31).
template <bool kQ4>
inline void load_codes(const uint8_t* row, int64_t b, int8x16_t& lo, int8x16_t& hi, float& d) {
  if constexpr (kQ4) {
    const auto& blk = reinterpret_cast<const quant::block_q4_0*>(row)[b];
    const uint8x16_t v = vld1q_u8(blk.qs);
    lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f))), vdupq_n_s8(8));
    hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
    d = f16(blk.d);
  } else {
    const auto& blk = reinterpret_cast<const quant::block_q8_0*>(row)[b];
    lo = vld1q_s8(blk.qs);
    hi = vld1q_s8(blk.qs + 16);
    d = f16(blk.d);
  }
}

// The four 16-byte SMMLA operands of a pair (elements 8c..8c+7 of the first, then the second).
inline void pair_operands(int8x16_t lo0, int8x16_t hi0, int8x16_t lo1, int8x16_t hi1, int8x16_t out[4]) {
  const int64x2_t a0 = vreinterpretq_s64_s8(lo0), a1 = vreinterpretq_s64_s8(lo1);
  const int64x2_t b0 = vreinterpretq_s64_s8(hi0), b1 = vreinterpretq_s64_s8(hi1);
  out[0] = vreinterpretq_s8_s64(vzip1q_s64(a0, a1));
  out[1] = vreinterpretq_s8_s64(vzip2q_s64(a0, a1));
  out[2] = vreinterpretq_s8_s64(vzip1q_s64(b0, b1));
  out[3] = vreinterpretq_s8_s64(vzip2q_s64(b0, b1));
}

// A tile of 4 rows x 4 tokens (rows / tokens past the end repeat the last one and are not
// stored). acc[p][q] lanes: (row 2p, token 2q), (2p, 2q+1), (2p+1, 2q), (2p+1, 2q+1).
template <bool kQ4>
void tile_4x4(const uint8_t* const rows[4], const uint8_t* const toks[4], int64_t nb, float out[4][4]) {
  float32x4_t acc[2][2];
  for (auto& a : acc)
    for (auto& v : a) v = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    int8x16_t wop[2][4], aop[2][4];
    float dw[4], da[4];
    for (int p = 0; p < 2; ++p) {
      __builtin_prefetch(rows[2 * p] + (b + 32) * (kQ4 ? sizeof(quant::block_q4_0) : sizeof(quant::block_q8_0)));
      __builtin_prefetch(rows[2 * p + 1] + (b + 32) * (kQ4 ? sizeof(quant::block_q4_0) : sizeof(quant::block_q8_0)));
      int8x16_t lo0, hi0, lo1, hi1;
      load_codes<kQ4>(rows[2 * p], b, lo0, hi0, dw[2 * p]);
      load_codes<kQ4>(rows[2 * p + 1], b, lo1, hi1, dw[2 * p + 1]);
      pair_operands(lo0, hi0, lo1, hi1, wop[p]);
    }
    for (int q = 0; q < 2; ++q) {
      const auto& y0 = reinterpret_cast<const quant::block_q8_0*>(toks[2 * q])[b];
      const auto& y1 = reinterpret_cast<const quant::block_q8_0*>(toks[2 * q + 1])[b];
      da[2 * q] = f16(y0.d);
      da[2 * q + 1] = f16(y1.d);
      pair_operands(vld1q_s8(y0.qs), vld1q_s8(y0.qs + 16), vld1q_s8(y1.qs), vld1q_s8(y1.qs + 16), aop[q]);
    }
    for (int p = 0; p < 2; ++p) {
      const float32x4_t dwv = {dw[2 * p], dw[2 * p], dw[2 * p + 1], dw[2 * p + 1]};
      for (int q = 0; q < 2; ++q) {
        int32x4_t s = vdupq_n_s32(0);
        for (int c = 0; c < 4; ++c) s = vmmlaq_s32(s, wop[p][c], aop[q][c]);
        const float32x4_t dav = {da[2 * q], da[2 * q + 1], da[2 * q], da[2 * q + 1]};
        acc[p][q] = vaddq_f32(acc[p][q], vmulq_f32(vmulq_f32(dwv, dav), vcvtq_f32_s32(s)));
      }
    }
  }
  for (int p = 0; p < 2; ++p)
    for (int q = 0; q < 2; ++q) {
      out[2 * p][2 * q] = vgetq_lane_f32(acc[p][q], 0);
      out[2 * p][2 * q + 1] = vgetq_lane_f32(acc[p][q], 1);
      out[2 * p + 1][2 * q] = vgetq_lane_f32(acc[p][q], 2);
      out[2 * p + 1][2 * q + 1] = vgetq_lane_f32(acc[p][q], 3);
    }
}

template <bool kQ4>
void rows_i8mm(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
               float* y, int64_t ldy) {
  if (n_tokens == 1) {  // decode: SDOT, one row at a time (the same sums and expression)
    rows_neon<kQ4 ? dot_q4_0_q8_0 : dot_q8_0_q8_0>(w, r0, r1, act, act_stride, n_tokens, y, ldy);
    return;
  }
  const auto* base = static_cast<const uint8_t*>(w.data);
  const auto* a = static_cast<const uint8_t*>(act);
  const int64_t nb = w.n_cols / 32;
  for (int64_t r = r0; r < r1; r += 4) {
    const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
    const uint8_t* rows[4];
    for (int i = 0; i < 4; ++i) rows[i] = base + static_cast<size_t>(r + std::min(i, nr - 1)) * w.row_stride;
    for (int64_t t = 0; t < n_tokens; t += 4) {
      const int nt = static_cast<int>(std::min<int64_t>(4, n_tokens - t));
      const uint8_t* toks[4];
      for (int j = 0; j < 4; ++j) toks[j] = a + static_cast<size_t>(t + std::min(j, nt - 1)) * act_stride;
      float out[4][4];
      tile_4x4<kQ4>(rows, toks, nb, out);
      for (int i = 0; i < nr; ++i)
        for (int j = 0; j < nt; ++j) y[(t + j) * ldy + r + i] = out[i][j];
    }
  }
}

}  // namespace

void add_neon_i8mm_kernels(KernelTable& table) {
  TypeKernels& q8 = table.by_type[static_cast<int>(DType::Q8_0)];
  q8 = TypeKernels{"gemm_q8_0_q8_0_neon_i8mm", act_q8_0_row_bytes, quantize_act_q8_0, rows_i8mm<false>};
  TypeKernels& q4 = table.by_type[static_cast<int>(DType::Q4_0)];
  q4 = TypeKernels{"gemm_q4_0_q8_0_neon_i8mm", act_q8_0_row_bytes, quantize_act_q8_0, rows_i8mm<true>};
}

}  // namespace slm::kernels::detail
