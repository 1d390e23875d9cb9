// Internal: x86 SIMD kernels shared by the per-ISA files. Include ONLY from a file compiled with
// at least -mavx2 -mfma -mf16c (kernels_avx2.cpp and above): everything here has internal linkage
// (anonymous namespace), so each ISA file gets its own copy built with its own flags and no
// AVX-512 instruction can reach the AVX2 copy through the linker picking one "inline" version.
//
// Contents, in dependency order: the activation layout (Q8 rows with block sums), its quantizer,
// the 32-byte integer dot products, row kernels (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, F32, F16, BF16) with
// the SIMD Q8_K activation quantizer, the attention value sum, the vector traits of the
// elementwise ops (vec_ops.hpp) and, when compiled with AVX-512, the GEMM panel packing.
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "x86_simd.hpp needs -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "kernels/kernel_table.hpp"
#include "kernels/vec_ops.hpp"
#include "quant/blocks.hpp"
#include "quant/quant.hpp"

namespace slm::kernels::detail {
namespace {

// ============================================================================================
// Activation layout "q8x": one row of K floats quantized exactly as quantize_row_q8_0_ref does
// (d = amax/127 stored as f16, q = round-half-away(x / d)), laid out for SIMD:
//   int8  qs[K]        the codes, contiguous (a kernel loads 32 or 64 at once)
//   float d[K/32]      the f16 scale, widened
//   int32 sum[K/32]    sum of the 32 codes of the block (offset corrections, see below)
//   int32 bias[K/32]   -128 * sum, the start value of the unsigned-weight GEMM accumulators
//   int32 bias8[K/32]  -8 * sum, the same for Q4_0's unsigned nibbles (AVX2 GEMM)
// padded to a multiple of 64 bytes.
struct ActQ8x {
  const int8_t* qs;
  const float* d;
  const int32_t* sum;
};

inline size_t act_q8x_row_bytes(int64_t n_cols) {
  const size_t nb = static_cast<size_t>(n_cols / 32);
  return (static_cast<size_t>(n_cols) + nb * 16 + 63) / 64 * 64;
}

inline ActQ8x act_q8x_view(const void* row, int64_t n_cols) {
  const auto* p = static_cast<const uint8_t*>(row);
  const size_t nb = static_cast<size_t>(n_cols / 32);
  return {reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + n_cols),
          reinterpret_cast<const int32_t*>(p + n_cols + nb * 4)};
}

inline float hmax_ps(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// roundf() on 8 lanes: truncate, then step away from zero when the dropped fraction is >= 0.5
// (v - trunc(v) is exact). _mm256_round_ps's nearest mode rounds ties to even, which would
// disagree with the reference quantizer on exact halves.
inline __m256i round_away_epi32(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_sub_ps(v, t);
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 step = _mm256_and_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign_mask, frac), half, _CMP_GE_OQ),
                                    _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(sign_mask, v)));
  return _mm256_cvtps_epi32(_mm256_add_ps(t, step));
}

void quantize_act_q8x(const float* x, void* dst, int64_t n_cols) {
  auto* qs = static_cast<int8_t*>(dst);
  auto* d_out = reinterpret_cast<float*>(qs + n_cols);
  auto* sum_out = reinterpret_cast<int32_t*>(d_out + n_cols / 32);
  auto* bias_out = sum_out + n_cols / 32;
  auto* bias8_out = bias_out + n_cols / 32;
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  const __m256 lim = _mm256_set1_ps(127.0f);
  for (int64_t b = 0; b < n_cols / 32; ++b, x += 32) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + 8 * i);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, v[i]));
    }
    const float d = hmax_ps(amax) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    // The reference stores d as f16 and computes with the widened value.
    d_out[b] = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; ++i)
      q[i] = round_away_epi32(_mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(v[i], vid), lim), -lim));
    sum_out[b] = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    bias_out[b] = -128 * sum_out[b];
    bias8_out[b] = -8 * sum_out[b];
    // packs interleave 128-bit lanes; the permute restores element order.
    const __m256i q01 = _mm256_packs_epi32(q[0], q[1]), q23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q01, q23),
                                                   _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + 32 * b), q8);
  }
}

// ============================================================================================
// 32-byte integer dot products -> 8 int32 partial sums (their total is the block's sum).

// 256-bit VNNI, when this file is compiled with it: vpdpbusd (u8 x s8, 4 products summed into
// each int32 lane) and vpdpwssd (s16 x s16 pairs), EVEX-encoded with AVX-512 VNNI + VL or
// VEX-encoded with AVX-VNNI (kernels_avxvnni.cpp). Both are exact (no intermediate 16-bit
// saturation), so wherever maddubs + madd does not saturate they give the same sums.
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define SLM_X86_VNNI256 1
inline __m256i dpbusd256(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }
inline __m256i dpwssd256(__m256i acc, __m256i a, __m256i b) { return _mm256_dpwssd_epi32(acc, a, b); }
#elif defined(__AVXVNNI__)
#define SLM_X86_VNNI256 1
inline __m256i dpbusd256(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_avx_epi32(acc, u, s); }
inline __m256i dpwssd256(__m256i acc, __m256i a, __m256i b) { return _mm256_dpwssd_avx_epi32(acc, a, b); }
#else
#define SLM_X86_VNNI256 0
#endif

// Signed x signed (codes in -127..127): the sign trick. maddubs multiplies unsigned by signed
// bytes, so use |w| and a * sign(w); pairs sum to at most 2 * 127 * 127 < 2^15, no saturation.
inline __m256i dot_s8s8(__m256i w, __m256i a) {
  const __m256i uw = _mm256_sign_epi8(w, w), sa = _mm256_sign_epi8(a, w);
#if SLM_X86_VNNI256
  return dpbusd256(_mm256_setzero_si256(), uw, sa);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(uw, sa), _mm256_set1_epi16(1));
#endif
}

// Unsigned (0..15 nibbles) x signed: pairs sum to at most 2 * 15 * 127, no saturation.
inline __m256i dot_u4s8(__m256i w, __m256i a) {
#if SLM_X86_VNNI256
  return dpbusd256(_mm256_setzero_si256(), w, a);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1));
#endif
}

// Q4_0 block nibbles -> 32 bytes 0..15 in element order (low nibbles are elements 0..15).
inline __m256i unpack_q4_0(const uint8_t* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

// Software prefetch distance for the weight stream: a few KiB ahead keeps enough misses in
// flight for one core to approach DRAM bandwidth; the hardware prefetcher stops at 4 KiB pages.
constexpr size_t kPrefetchBytes = 4096;

inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

// ============================================================================================
// Row kernels: one output at a time, blocks in order with one float accumulator per lane, so a
// result depends only on its row and token. For several tokens the row is reread from L1/L2.

template <class RowDot>
void rows_loop(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
               int64_t n_tokens, float* y, int64_t ldy, RowDot dot) {
  for (int64_t r = r0; r < r1; ++r) {
    const auto* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride;
    for (int64_t t = 0; t < n_tokens; ++t)
      y[t * ldy + r] = dot(row, static_cast<const uint8_t*>(act) + t * act_stride, w.n_cols);
  }
}

// dw * da of 8 consecutive blocks: one gather of the f16 weight scales (the 4-byte loads stay
// inside each block), one vcvtph2ps, one multiply; the same products as computing each block's
// _cvtsh_ss(d) * da alone, for a quarter of the instructions.
template <class Block>
inline __m256 block_scales8(const Block* blocks, const float* da) {
  const __m256i offsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                             _mm256_set1_epi32(static_cast<int>(sizeof(Block))));
  const __m256i d32 = _mm256_i32gather_epi32(reinterpret_cast<const int*>(blocks), offsets, 1);
  // Low 16 bits of each lane -> 8 packed halves.
  const __m256i pick = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 4, 5, 8, 9,
                                        12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(d32, pick), 0x08);
  return _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(packed)), _mm256_loadu_ps(da));
}

inline __m256 lane(__m256 v, int j) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(j)); }

// Row kernels for the 32-code block formats: per block an 8-lane integer dot (Dot), converted
// and scaled into one of two float accumulators (even / odd blocks), scales 8 blocks at a time.
template <class Block, class Dot>
inline float dot_blocks_q8x(const uint8_t* row, const uint8_t* act_row, int64_t n, Dot dot) {
  const auto* wb = reinterpret_cast<const Block*>(row);
  const ActQ8x a = act_q8x_view(act_row, n);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const int64_t nb = n / 32;
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    prefetch(reinterpret_cast<const uint8_t*>(wb + b) + kPrefetchBytes);
    prefetch(reinterpret_cast<const uint8_t*>(wb + b) + kPrefetchBytes + 64 * ((sizeof(Block) * 8) / 128));
    const __m256 s = block_scales8(wb + b, a.d + b);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j += 2) {
      acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot(wb[b + j], a, b + j)), lane(s, j), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot(wb[b + j + 1], a, b + j + 1)), lane(s, j + 1), acc1);
    }
  }
  for (; b < nb; ++b) {
    const __m256 p = _mm256_cvtepi32_ps(dot(wb[b], a, b));
    const __m256 scale = _mm256_set1_ps(_cvtsh_ss(wb[b].d) * a.d[b]);
    if (b % 2 == 0) acc0 = _mm256_fmadd_ps(p, scale, acc0);
    else acc1 = _mm256_fmadd_ps(p, scale, acc1);
  }
  return hsum_ps(_mm256_add_ps(acc0, acc1));
}

inline __m256i block_dot_q8_0(const quant::block_q8_0& w, const ActQ8x& a, int64_t i) {
  return dot_s8s8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs)),
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * i)));
}

// sum((q - 8) * a) = sum(q * a) - 8 * sum(a): each of the 8 partial-sum lanes starts at
// -sum(a), which adds up to -8 * sum(a).
inline __m256i block_dot_q4_0(const quant::block_q4_0& w, const ActQ8x& a, int64_t i) {
  const __m256i a8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * i));
  const __m256i q = unpack_q4_0(w.qs);
#if SLM_X86_VNNI256
  return dpbusd256(_mm256_set1_epi32(-a.sum[i]), q, a8);
#else
  return _mm256_sub_epi32(dot_u4s8(q, a8), _mm256_set1_epi32(a.sum[i]));
#endif
}

inline float dot_q8_0_q8x(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  return dot_blocks_q8x<quant::block_q8_0>(row, act_row, n, block_dot_q8_0);
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// Q4_0 with 512-bit vectors: two blocks per zmm. The 16 nibble bytes of block b go to 128-bit
// lanes 0 and 1, those of b + 1 to lanes 2 and 3; lanes 1 and 3 take the high nibbles (elements
// 16..31), so the zmm lines up with the 64 contiguous activation codes of the two blocks. One
// vpdpbusd then gives 8 partial sums per block (lanes 0-7: block b, 8-15: b + 1), started at
// -sum(a) so that they add up to sum((q - 8) a); the scales of 8 blocks come from one gather
// and are spread to the lane halves with one permute per pair. About 9 vector operations per
// block pair against ~18 for the 256-bit kernel: the GEMV is then memory-bound.
// NR rows (1, 2 or 4) at once share the activation loads and the bias permutes; each row's
// arithmetic is the same for NR = 1 and 2, so results do not depend on how rows are grouped.
// GCC 12 reports the _mm512_undefined_* operand inside its own broadcast/permute/convert
// intrinsics as maybe-uninitialized (a false positive, as in kernels_avx512vnni.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <int NR>
inline void dot_q4_0_q8x_rows(const uint8_t* row, size_t row_stride, const uint8_t* act_row, int64_t n, float* out) {
  const quant::block_q4_0* wb[NR];
  for (int r = 0; r < NR; ++r) wb[r] = reinterpret_cast<const quant::block_q4_0*>(row + r * row_stride);
  const ActQ8x a = act_q8x_view(act_row, n);
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  // Pair j of a group of 8 blocks: lanes 0-7 read element 2j, lanes 8-15 element 2j + 1.
  const __m512i pair_idx[4] = {
      _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
      _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
      _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5),
      _mm512_setr_epi32(6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7)};
  __m512 acc0[NR], acc1[NR];
  for (int r = 0; r < NR; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  const int64_t nb = n / 32;
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    __m512 s[NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const auto* bytes = reinterpret_cast<const uint8_t*>(wb[r] + b);
      prefetch(bytes + kPrefetchBytes);
      prefetch(bytes + kPrefetchBytes + 64);
      prefetch(bytes + kPrefetchBytes + 128);  // 8 blocks = 144 bytes: up to 3 lines
      s[r] = _mm512_castps256_ps512(block_scales8(wb[r] + b, a.d + b));
    }
    const __m512i neg_sum = _mm512_castsi256_si512(
        _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sum + b))));
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512i av = _mm512_loadu_si512(a.qs + 32 * (b + 2 * j));
      const __m512i init = _mm512_permutexvar_epi32(pair_idx[j], neg_sum);
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        const quant::block_q4_0& x0 = wb[r][b + 2 * j];
        const quant::block_q4_0& x1 = wb[r][b + 2 * j + 1];
        __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x0.qs)));
        v = _mm512_mask_broadcast_i32x4(v, 0xff00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x1.qs)));
        v = _mm512_mask_srli_epi16(v, 0xff00ff00u, v, 4);  // 16-bit lanes 8-15 and 24-31: 128-bit lanes 1, 3
        const __m512i q = _mm512_and_si512(v, low4);
        const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init, q, av));
        const __m512 sc = _mm512_permutexvar_ps(pair_idx[j], s[r]);
        if (j % 2 == 0) acc0[r] = _mm512_fmadd_ps(p, sc, acc0[r]);
        else acc1[r] = _mm512_fmadd_ps(p, sc, acc1[r]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) {
    __m256 tail = _mm256_setzero_ps();
    for (int64_t t = b; t < nb; ++t)
      tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_dot_q4_0(wb[r][t], a, t)),
                             _mm256_set1_ps(_cvtsh_ss(wb[r][t].d) * a.d[t]), tail);
    // Through memory: GCC 12's 512->256-bit extracts (and _mm512_reduce_add_ps) trip its
    // -Wuninitialized on their own _mm512_undefined operand.
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, _mm512_add_ps(acc0[r], acc1[r]));
    out[r] = hsum_ps(_mm256_add_ps(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8))) + hsum_ps(tail);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

inline float dot_q4_0_q8x(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  float out;
  dot_q4_0_q8x_rows<1>(row, 0, act_row, n, &out);
  return out;
}
#else
inline float dot_q4_0_q8x(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  return dot_blocks_q8x<quant::block_q4_0>(row, act_row, n, block_dot_q4_0);
}
#endif

void rows_q8_0_q8x(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                   int64_t n_tokens, float* y, int64_t ldy) {
  rows_loop(w, r0, r1, act, act_stride, n_tokens, y, ldy, dot_q8_0_q8x);
}

void rows_q4_0_q8x(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                   int64_t n_tokens, float* y, int64_t ldy) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  // Four, then two rows per pass for one token (decode): the rows share the activation loads
  // and give the core four independent streams to keep in flight; each row's arithmetic is the
  // same as alone, so the results are too.
  if (n_tokens == 1) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      float out[4];
      dot_q4_0_q8x_rows<4>(static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride, w.row_stride,
                           static_cast<const uint8_t*>(act), w.n_cols, out);
      for (int i = 0; i < 4; ++i) y[r + i] = out[i];
    }
    for (; r + 2 <= r1; r += 2) {
      float out[2];
      dot_q4_0_q8x_rows<2>(static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride, w.row_stride,
                           static_cast<const uint8_t*>(act), w.n_cols, out);
      y[r] = out[0];
      y[r + 1] = out[1];
    }
    if (r < r1) y[r] = dot_q4_0_q8x(static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride,
                                    static_cast<const uint8_t*>(act), w.n_cols);
    return;
  }
#endif
  rows_loop(w, r0, r1, act, act_stride, n_tokens, y, ldy, dot_q4_0_q8x);
}

// ============================================================================================
// K-quants against Q8_K activations (quantize_act_q8_k: the bytes of quantize_row_q8_k_ref). The
// integer sums are formed exactly as the reference does and each super-block is added to the
// float result with the reference's expression, so results equal vec_dot_*_ref bit for bit.

inline size_t act_q8_k_row_bytes(int64_t n_cols) {
  return (static_cast<size_t>(n_cols / 256) * sizeof(quant::block_q8_k) + 63) / 64 * 64;
}

// f32 -> Q8_K in SIMD, the same bytes as quantize_row_q8_k_ref (test_kernels compares them with
// memcmp), following its steps:
//   max = the first element whose |x| is the block's largest (a NaN never is; all zeros or NaNs
//         give a zero block), iscale = -127 / max, d = 1 / iscale;
//   q   = clamp(nearest_int(iscale * x), -127, 127), nearest_int being the reference's trick
//         (add 1.5 * 2^23 to the product, keep the low 23 bits: a product, then a sum, never
//         fused; NaN and Inf products give what the scalar code gives);
//   bsums = sums of 16 codes: vpsadbw of the codes + 128 (two 8-byte sums) minus 16 * 128.
// With AVX-512 the same steps run on 16 lanes.
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12: _mm512_undefined_* in vpmovdb
#endif
void quantize_act_q8_k(const float* x, void* dst, int64_t n_cols) {
  constexpr int kBlock = 256;
  auto* y = static_cast<quant::block_q8_k*>(dst);
  for (int64_t b = 0; b < n_cols / kBlock; ++b, x += kBlock) {
    quant::block_q8_k& out = y[b];
#if defined(__AVX512F__)
    constexpr int kW = 16;
    __m512 vmax = _mm512_setzero_ps();
    for (int i = 0; i < kBlock; i += kW) vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), vmax);
    alignas(64) float lanes[kW];
    _mm512_store_ps(lanes, vmax);
    float amax = 0.0f;
    for (float v : lanes) amax = v > amax ? v : amax;
#else
    constexpr int kW = 8;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 vmax = _mm256_setzero_ps();
    // vmaxps returns its second operand when either is NaN: a NaN lane keeps vmax.
    for (int i = 0; i < kBlock; i += kW) vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), vmax);
    const float amax = hmax_ps(vmax);
#endif
    if (amax == 0.0f) {
      std::memset(&out, 0, sizeof out);
      continue;
    }
    int first = 0;
    for (int i = 0; i < kBlock; i += kW) {
#if defined(__AVX512F__)
      const unsigned m = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + i)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
#else
      const auto m = static_cast<unsigned>(_mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), _mm256_set1_ps(amax), _CMP_EQ_OQ)));
#endif
      if (m != 0) {
        first = i + __builtin_ctz(m);
        break;
      }
    }
    const float iscale = -127.f / x[first];
    const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
    // Sums of the 16 codes at c: vpsadbw adds 8 unsigned bytes (code + 128) per 64-bit half.
    auto bsum16 = [&](__m128i c) {
      const __m128i s = _mm_sad_epu8(_mm_xor_si128(c, flip), _mm_setzero_si128());
      return static_cast<int16_t>(_mm_cvtsi128_si32(s) + _mm_extract_epi32(s, 2) - 16 * 128);
    };
#if defined(__AVX512F__)
    const __m512 vs = _mm512_set1_ps(iscale), magic = _mm512_set1_ps(12582912.0f);
    const __m512i low23 = _mm512_set1_epi32(0x007fffff), offset = _mm512_set1_epi32(0x00400000);
    const __m512i hi = _mm512_set1_epi32(127), lo = _mm512_set1_epi32(-127);
    for (int i = 0; i < kBlock; i += 16) {
      const __m512 t = _mm512_add_ps(_mm512_mul_ps(vs, _mm512_loadu_ps(x + i)), magic);
      const __m512i v = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(t), low23), offset);
      const __m128i q = _mm512_cvtepi32_epi8(_mm512_max_epi32(_mm512_min_epi32(v, hi), lo));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out.qs + i), q);
      out.bsums[i / 16] = bsum16(q);
    }
#else
    const __m256 vs = _mm256_set1_ps(iscale), magic = _mm256_set1_ps(12582912.0f);
    const __m256i low23 = _mm256_set1_epi32(0x007fffff), offset = _mm256_set1_epi32(0x00400000);
    const __m256i hi = _mm256_set1_epi32(127), lo = _mm256_set1_epi32(-127);
    for (int i = 0; i < kBlock; i += 32) {
      __m256i q[4];
      for (int k = 0; k < 4; ++k) {
        const __m256 t = _mm256_add_ps(_mm256_mul_ps(vs, _mm256_loadu_ps(x + i + 8 * k)), magic);
        const __m256i v = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), low23), offset);
        q[k] = _mm256_max_epi32(_mm256_min_epi32(v, hi), lo);
      }
      // packs interleave 128-bit lanes; the permute restores element order.
      const __m256i q01 = _mm256_packs_epi32(q[0], q[1]), q23 = _mm256_packs_epi32(q[2], q[3]);
      const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q01, q23),
                                                     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.qs + i), q8);
      out.bsums[i / 16] = bsum16(_mm256_castsi256_si128(q8));
      out.bsums[i / 16 + 1] = bsum16(_mm256_extracti128_si256(q8, 1));
    }
#endif
    out.d = 1 / iscale;
  }
}
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// maddubs, then madd with the sub-block scale instead of ones: the scale multiplies the 16-bit
// pair sums (|pair| <= 2 * 63 * 127) and the products are summed in 32 bits, exactly. With
// 256-bit VNNI, vpdpwssd does the madd and the accumulation in one instruction.
inline __m256i dot_scaled_u8s8_acc(__m256i acc, __m256i w, __m256i a, __m256i scale16) {
#if SLM_X86_VNNI256
  return dpwssd256(acc, _mm256_maddubs_epi16(w, a), scale16);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), scale16));
#endif
}

// The 12-byte Q4_K/Q5_K scale field (blocks.hpp) as two 32-bit-word operations per half:
// returns sc[0..7] in bytes 0..7 and m[0..7] in bytes 8..15.
inline __m128i unpack_scale_min_k4(const uint8_t* scales) {
  uint32_t w[3];
  std::memcpy(w, scales, 12);
  const uint32_t six = 0x3f3f3f3f, four = 0x0f0f0f0f, two = 0x03030303;
  const uint32_t sc_lo = w[0] & six, m_lo = w[1] & six;
  const uint32_t sc_hi = (w[2] & four) | ((w[0] >> 6) & two) << 4;
  const uint32_t m_hi = ((w[2] >> 4) & four) | ((w[1] >> 6) & two) << 4;
  return _mm_setr_epi32(static_cast<int>(sc_lo), static_cast<int>(sc_hi), static_cast<int>(m_lo),
                        static_cast<int>(m_hi));
}

// Shuffle masks that broadcast 16-bit lane i of a 128-bit vector (bytes 2i, 2i+1) everywhere.
inline __m256i broadcast_epi16_lane(__m256i v, int i) {
  const __m256i mask = _mm256_set1_epi16(static_cast<short>((2 * i) | (2 * i + 1) << 8));
  return _mm256_shuffle_epi8(v, mask);
}

// Q4_K and Q5_K (Block = quant::block_q4_k / block_q5_k) for NT tokens at once: codes 0..15,
// or 0..31 with the fifth bit of sub-block j taken from bit j of qh[l]. The weights are unpacked
// once per super-block and reused for every token; each token's arithmetic is the same as with
// NT = 1, so grouping tokens never changes a result.
template <class Block, int NT>
inline void dot_q45_k_q8_k_n(const uint8_t* row, const uint8_t* act, size_t act_stride, int64_t n, float* out) {
  constexpr bool kQ5 = sizeof(Block) == sizeof(quant::block_q5_k);
  const auto* x = reinterpret_cast<const Block*>(row);
  const quant::block_q8_k* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = reinterpret_cast<const quant::block_q8_k*>(act + t * act_stride);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  float acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  for (int64_t b = 0; b < n / 256; ++b) {
    prefetch(reinterpret_cast<const uint8_t*>(x + b) + kPrefetchBytes);
    const __m128i scm = unpack_scale_min_k4(x[b].scales);
    // sc as 16-bit lanes, in both 128-bit halves (vpshufb works per half).
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scm));
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kQ5) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qh));
    __m256i sumi[NT];
    for (int t = 0; t < NT; ++t) sumi[t] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * c));
      __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      if constexpr (kQ5) {
        // Bit 2c of qh[l] -> bit 4 of the even sub-block's code, bit 2c+1 -> the odd one's.
        const __m256i bit = _mm256_set1_epi8(0x10);
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit));
        qh = _mm256_srli_epi16(qh, 2);
      }
      const __m256i sc_lo = broadcast_epi16_lane(sc16, 2 * c), sc_hi = broadcast_epi16_lane(sc16, 2 * c + 1);
      for (int t = 0; t < NT; ++t) {
        const __m256i a_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].qs + 64 * c));
        const __m256i a_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].qs + 64 * c + 32));
        sumi[t] = dot_scaled_u8s8_acc(sumi[t], lo, a_lo, sc_lo);
        sumi[t] = dot_scaled_u8s8_acc(sumi[t], hi, a_hi, sc_hi);
      }
    }
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(scm, scm));
    const float dw = _cvtsh_ss(x[b].d), dminw = _cvtsh_ss(x[b].dmin);
    for (int t = 0; t < NT; ++t) {
      // summ = sum_j m[j] * (bsums[2j] + bsums[2j+1]); pair sums <= 32 * 127 fit in 16 bits.
      const __m128i bs_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[t][b].bsums));
      const __m128i bs_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[t][b].bsums + 8));
      __m128i mm = _mm_madd_epi16(m16, _mm_hadd_epi16(bs_lo, bs_hi));
      mm = _mm_add_epi32(mm, _mm_shuffle_epi32(mm, 0x4e));
      mm = _mm_add_epi32(mm, _mm_shuffle_epi32(mm, 0xb1));
      const int32_t summ = _mm_cvtsi128_si32(mm);
      const float d = dw * y[t][b].d;
      const float dmin = dminw * y[t][b].d;
      acc[t] += d * static_cast<float>(hsum_epi32(sumi[t])) - dmin * static_cast<float>(summ);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

// Q6_K for NT tokens: codes 0..63 stand for q - 32; sum_s sc_s * (dot_s - 32 * bsum_s) with the
// 32 * bsum part done on the cached block sums.
template <int NT>
inline void dot_q6_k_q8_k_n(const uint8_t* row, const uint8_t* act, size_t act_stride, int64_t n, float* out) {
  const auto* x = reinterpret_cast<const quant::block_q6_k*>(row);
  const quant::block_q8_k* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = reinterpret_cast<const quant::block_q8_k*>(act + t * act_stride);
  const __m256i low4 = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(0x03);
  float acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  for (int64_t b = 0; b < n / 256; ++b) {
    prefetch(reinterpret_cast<const uint8_t*>(x + b) + kPrefetchBytes);
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
    const __m256i sc16all = _mm256_cvtepi8_epi16(sc8);
    __m256i sumi[NT];
    for (int t = 0; t < NT; ++t) {
      // 32 * sum_s sc_s * bsum_s, spread over 8 lanes, subtracted up front.
      const __m256i offset =
          _mm256_madd_epi16(sc16all, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].bsums)));
      sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
    }
    __m128i pick = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qh + 32 * h));
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, two), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), two), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), two), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), two), 4));
      for (int k = 0; k < 4; ++k) {
        // Elements 0..15 of the vector use scale s = 8h + 2k, 16..31 scale s + 1 (16-element
        // sub-blocks): bytes s x8 then s+1 x8, widened to 16 bits, give that in the two halves.
        const __m256i scale16 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick));
        pick = _mm_add_epi8(pick, _mm_set1_epi8(2));
        for (int t = 0; t < NT; ++t) {
          const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].qs + 128 * h + 32 * k));
          sumi[t] = dot_scaled_u8s8_acc(sumi[t], q[k], a, scale16);
        }
      }
    }
    const float dw = _cvtsh_ss(x[b].d);
    for (int t = 0; t < NT; ++t) acc[t] += (dw * y[t][b].d) * static_cast<float>(hsum_epi32(sumi[t]));
  }
  for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

// Rows x tokens for the K-quants: tokens in groups of 4 share each row's unpacking.
template <void (*Dot1)(const uint8_t*, const uint8_t*, size_t, int64_t, float*),
          void (*Dot4)(const uint8_t*, const uint8_t*, size_t, int64_t, float*)>
void rows_k_quant(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
                  float* y, int64_t ldy) {
  const auto* a = static_cast<const uint8_t*>(act);
  for (int64_t r = r0; r < r1; ++r) {
    const auto* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride;
    int64_t t = 0;
    for (; t + 4 <= n_tokens; t += 4) {
      float out[4];
      Dot4(row, a + t * act_stride, act_stride, w.n_cols, out);
      for (int i = 0; i < 4; ++i) y[(t + i) * ldy + r] = out[i];
    }
    for (; t < n_tokens; ++t) Dot1(row, a + t * act_stride, act_stride, w.n_cols, &y[t * ldy + r]);
  }
}

void rows_q4_k_q8_k(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                    int64_t n_tokens, float* y, int64_t ldy) {
  rows_k_quant<dot_q45_k_q8_k_n<quant::block_q4_k, 1>, dot_q45_k_q8_k_n<quant::block_q4_k, 4>>(
      w, r0, r1, act, act_stride, n_tokens, y, ldy);
}

void rows_q5_k_q8_k(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                    int64_t n_tokens, float* y, int64_t ldy) {
  rows_k_quant<dot_q45_k_q8_k_n<quant::block_q5_k, 1>, dot_q45_k_q8_k_n<quant::block_q5_k, 4>>(
      w, r0, r1, act, act_stride, n_tokens, y, ldy);
}

void rows_q6_k_q8_k(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                    int64_t n_tokens, float* y, int64_t ldy) {
  rows_k_quant<dot_q6_k_q8_k_n<1>, dot_q6_k_q8_k_n<4>>(w, r0, r1, act, act_stride, n_tokens, y, ldy);
}

// Float weights against float activations (x used in place): 8-lane FMA, 4 accumulators to
// cover the FMA latency (4 cycles x 2 ports), scalar tail for K % 8.
struct LoadF32 {
  static constexpr int kBytes = 4;
  static __m256 load8(const uint8_t* row, int64_t k) { return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k); }
  static float load1(const uint8_t* row, int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
};
struct LoadF16 {
  static constexpr int kBytes = 2;
  static __m256 load8(const uint8_t* row, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
  }
  static float load1(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    return _cvtsh_ss(h);
  }
};
struct LoadBF16 {
  static constexpr int kBytes = 2;
  static __m256 load8(const uint8_t* row, int64_t k) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float load1(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

template <class L>
float dot_float_row(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  const auto* x = reinterpret_cast<const float*>(act_row);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    prefetch(row + k * L::kBytes + kPrefetchBytes);
    for (int i = 0; i < 4; ++i) acc[i] = _mm256_fmadd_ps(L::load8(row, k + 8 * i), _mm256_loadu_ps(x + k + 8 * i), acc[i]);
  }
  for (; k + 8 <= n; k += 8) acc[0] = _mm256_fmadd_ps(L::load8(row, k), _mm256_loadu_ps(x + k), acc[0]);
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; k < n; ++k) sum = std::fma(L::load1(row, k), x[k], sum);
  return sum;
}

// GEMM for float weights (prefill): a panel of 16 rows x 256 k is widened to f32 and transposed
// (panel[k][row]) once, then each 16-row x 6-token register tile does one FMA per 8 products:
//   acc[t][rows] = fma(panel[k][rows], broadcast(x[t][k]), acc[t][rows])   for k in order,
// so each output is a sequential FMA chain over k whatever the tiling (the K chunks go through
// y exactly). 12 accumulators + 2 weight vectors + 1 broadcast fit AVX2's 16 registers.
//
// With AVX-512 (every level from avx512 up) the panel is 48 rows (three zmm) x 512 k (96 KiB
// on the stack, L2) and the tile 48 rows x 8 tokens: 24 accumulators + 3 weight vectors, the
// token's x[k] broadcast from memory into the FMA; per k 3 weight loads + 8 broadcasts feed 24
// FMAs. Long K chunks pay (the 8 activation streams run 2 KiB each per tile: 128 k gave ~25%
// less on 1536x1536 x 512 tokens). The per-output FMA chain is the same as above (from 0, k in
// order), so both give the same bits.
constexpr int64_t kFloatMinGemmTokens = 4;
#if defined(__AVX512F__)
constexpr int kFloatPanelRows = 48;
constexpr int kFloatChunk = 512;
constexpr int kFloatTileTokens = 8;

inline __mmask16 float_rows_mask(int n_rows) {
  return n_rows >= 16 ? static_cast<__mmask16>(0xFFFF)
                      : static_cast<__mmask16>((1u << static_cast<unsigned>(std::max(n_rows, 0))) - 1u);
}

template <int NT>
void float_gemm_tile(const float* panel, int nk, const float* x, int64_t ldx, float* y, int64_t ldy, bool first,
                     int n_rows) {
  const __mmask16 m0 = float_rows_mask(n_rows);
  const __mmask16 m1 = float_rows_mask(n_rows - 16);
  const __mmask16 m2 = float_rows_mask(n_rows - 32);
  __m512 acc0[NT], acc1[NT], acc2[NT];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    acc0[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m0, y + t * ldy);
    acc1[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m1, y + t * ldy + 16);
    acc2[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m2, y + t * ldy + 32);
  }
  for (int k = 0; k < nk; ++k) {
    const __m512 w0 = _mm512_load_ps(panel + k * kFloatPanelRows);
    const __m512 w1 = _mm512_load_ps(panel + k * kFloatPanelRows + 16);
    const __m512 w2 = _mm512_load_ps(panel + k * kFloatPanelRows + 32);
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512 xv = _mm512_set1_ps(x[t * ldx + k]);
      acc0[t] = _mm512_fmadd_ps(w0, xv, acc0[t]);
      acc1[t] = _mm512_fmadd_ps(w1, xv, acc1[t]);
      acc2[t] = _mm512_fmadd_ps(w2, xv, acc2[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, m0, acc0[t]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, m1, acc1[t]);
    _mm512_mask_storeu_ps(y + t * ldy + 32, m2, acc2[t]);
  }
}
#else
constexpr int kFloatPanelRows = 16;
constexpr int kFloatChunk = 256;
constexpr int kFloatTileTokens = 6;

template <int NT>
void float_gemm_tile(const float* panel, int nk, const float* x, int64_t ldx, float* y, int64_t ldy, bool first,
                     int n_rows) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n_rows), idx);
  const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n_rows - 8), idx);
  __m256 acc0[NT], acc1[NT];
#pragma GCC unroll 6
  for (int t = 0; t < NT; ++t) {
    acc0[t] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(y + t * ldy, mask0);
    acc1[t] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(y + t * ldy + 8, mask1);
  }
  for (int k = 0; k < nk; ++k) {
    const __m256 w0 = _mm256_load_ps(panel + k * kFloatPanelRows);
    const __m256 w1 = _mm256_load_ps(panel + k * kFloatPanelRows + 8);
#pragma GCC unroll 6
    for (int t = 0; t < NT; ++t) {
      const __m256 xv = _mm256_broadcast_ss(x + t * ldx + k);
      acc0[t] = _mm256_fmadd_ps(w0, xv, acc0[t]);
      acc1[t] = _mm256_fmadd_ps(w1, xv, acc1[t]);
    }
  }
#pragma GCC unroll 6
  for (int t = 0; t < NT; ++t) {
    _mm256_maskstore_ps(y + t * ldy, mask0, acc0[t]);
    _mm256_maskstore_ps(y + t * ldy + 8, mask1, acc1[t]);
  }
}
#endif

// v[i][j] -> v[j][i] for an 8x8 block of floats.
inline void transpose8_ps(__m256 v[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
  const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

template <class L>
void rows_float(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                int64_t n_tokens, float* y, int64_t ldy) {
  if (n_tokens < kFloatMinGemmTokens) {
    rows_loop(w, r0, r1, act, act_stride, n_tokens, y, ldy, dot_float_row<L>);
    return;
  }
  using TileFn = void (*)(const float*, int, const float*, int64_t, float*, int64_t, bool, int);
  constexpr TileFn tiles[kFloatTileTokens + 1] = {nullptr,
                                                  float_gemm_tile<1>,
                                                  float_gemm_tile<2>,
                                                  float_gemm_tile<3>,
                                                  float_gemm_tile<4>,
                                                  float_gemm_tile<5>,
                                                  float_gemm_tile<6>,
#if defined(__AVX512F__)
                                                  float_gemm_tile<7>,
                                                  float_gemm_tile<8>
#endif
  };
  const auto* x = static_cast<const float*>(act);
  const int64_t ldx = static_cast<int64_t>(act_stride / sizeof(float));
  alignas(64) float panel[kFloatChunk * kFloatPanelRows];
  for (int64_t r = r0; r < r1; r += kFloatPanelRows) {
    const int n = static_cast<int>(std::min<int64_t>(kFloatPanelRows, r1 - r));
    for (int64_t k0 = 0; k0 < w.n_cols; k0 += kFloatChunk) {
      const int nk = static_cast<int>(std::min<int64_t>(kFloatChunk, w.n_cols - k0));
      // Rows past n repeat the last (never stored). 8 rows x 8 k at a time through an 8x8
      // transpose in registers, the K tail one value at a time.
      const int nk8 = nk & ~7;
      for (int g = 0; g < kFloatPanelRows; g += 8) {
        const uint8_t* rows[8];
        for (int i = 0; i < 8; ++i)
          rows[i] = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r + std::min(g + i, n - 1)) * w.row_stride;
        for (int k = 0; k < nk8; k += 8) {
          __m256 v[8];
          for (int i = 0; i < 8; ++i) v[i] = L::load8(rows[i], k0 + k);
          transpose8_ps(v);
          for (int j = 0; j < 8; ++j) _mm256_store_ps(panel + (k + j) * kFloatPanelRows + g, v[j]);
        }
        for (int i = 0; i < 8; ++i)
          for (int k = nk8; k < nk; ++k) panel[k * kFloatPanelRows + g + i] = L::load1(rows[i], k0 + k);
      }
      for (int64_t t = 0; t < n_tokens; t += kFloatTileTokens) {
        const int nt = static_cast<int>(std::min<int64_t>(kFloatTileTokens, n_tokens - t));
        tiles[nt](panel, nk, x + t * ldx + k0, ldx, y + t * ldy + r, ldy, k0 == 0, n);
      }
    }
  }
}

// ============================================================================================
// weighted_row_sum (attention's value sum): out[d] = 0, then out[d] + w[p] * v[p][d] for p in
// order, a product and a sum per step (no FMA) so results equal the scalar loop bit for bit.
// 64 outputs at a time in 8 accumulators; the rows are read once per 64-column chunk.
struct RowF16 {
  static __m256 load8(const uint8_t* row, int64_t d) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * d)));
  }
  static float load1(const uint8_t* row, int64_t d) {
    uint16_t h;
    std::memcpy(&h, row + 2 * d, 2);
    return _cvtsh_ss(h);
  }
};
struct RowF32 {
  static __m256 load8(const uint8_t* row, int64_t d) { return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + d); }
  static float load1(const uint8_t* row, int64_t d) { return reinterpret_cast<const float*>(row)[d]; }
};

template <class L>
void weighted_sum_x86(const void* rows, size_t row_stride, int64_t n_rows, const float* weights, int64_t n,
                      float* out) {
  const auto* base = static_cast<const uint8_t*>(rows);
  int64_t d0 = 0;
  for (; d0 + 64 <= n; d0 += 64) {
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t p = 0; p < n_rows; ++p) {
      const uint8_t* row = base + static_cast<size_t>(p) * row_stride;
      const __m256 a = _mm256_broadcast_ss(weights + p);
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(a, L::load8(row, d0 + 8 * i)));
    }
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + d0 + 8 * i, acc[i]);
  }
  for (; d0 + 8 <= n; d0 += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t p = 0; p < n_rows; ++p)
      acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_broadcast_ss(weights + p),
                                             L::load8(base + static_cast<size_t>(p) * row_stride, d0)));
    _mm256_storeu_ps(out + d0, acc);
  }
  for (; d0 < n; ++d0) {
    float acc = 0.0f;
    for (int64_t p = 0; p < n_rows; ++p) {
      const float prod = weights[p] * L::load1(base + static_cast<size_t>(p) * row_stride, d0);
      acc = acc + prod;
    }
    out[d0] = acc;
  }
}

// ============================================================================================
// Vector traits of the elementwise ops (vec_ops.hpp: exp, SiLU, softmax, RMSNorm, add): 8 lanes
// with AVX2 + FMA, 16 when this copy is compiled with AVX-512 (the avx512 level and above). Both
// compute exp with the same operations and one rounding of e^r * 2^n, so they agree bit for bit.

struct VecAvx2 {
  using F = __m256;
  using D = __m256d;
  static constexpr int kLanes = 8;
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F round(F v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // vmaxps / vminps return their second operand when either is NaN: x goes second.
  static F clamp(F x, F lo, F hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, x)); }
  // 2^n in two halves n1 = floor(n / 2), n2 = n - n1, both in [-75, 64] (normal floats): p * 2^n1
  // is exact for p in [0.7, 1.5], the second product rounds once (to a subnormal, 0 or inf too).
  static F scale_pow2(F p, F n) {
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const F s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const F s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  }
  static float hmax(F v) { return hmax_ps(v); }
  static D dzero() { return _mm256_setzero_pd(); }
  // A float squared is exact in double (48 significant bits), so the FMA is the add of the square.
  static void acc_squares(D acc[2], const float* p) {
    const D lo = _mm256_cvtps_pd(_mm_loadu_ps(p)), hi = _mm256_cvtps_pd(_mm_loadu_ps(p + 4));
    acc[0] = _mm256_fmadd_pd(lo, lo, acc[0]);
    acc[1] = _mm256_fmadd_pd(hi, hi, acc[1]);
  }
  static void acc_values(D acc[2], const float* p) {
    acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm_loadu_ps(p)));
    acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm_loadu_ps(p + 4)));
  }
  static double hsum(const D acc[2]) {
    alignas(32) double lanes[8];
    _mm256_store_pd(lanes, acc[0]);
    _mm256_store_pd(lanes + 4, acc[1]);
    double s = 0.0;
    for (double v : lanes) s += v;
    return s;
  }
};

#if defined(__AVX512F__)
// GCC 12 implements _mm512_max_ps, _min_, _roundscale_, _scalef_ and _cvtps_pd as the masked
// builtin with an _mm512_undefined_* pass-through and then reports that operand as maybe
// uninitialized where they inline: the masked forms with an all-ones mask and a defined
// pass-through are the same instruction without the warning. Horizontal reductions go through
// memory for the same reason (512 -> 256-bit extracts, see dot_q4_0_q8x_rows).
constexpr __mmask16 kAll16 = 0xffff;
struct VecAvx512 {
  using F = __m512;
  using D = __m512d;
  static constexpr int kLanes = 16;
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F neg(F a) {  // vxorps on zmm needs AVX512DQ; the integer xor does the same
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN)));
  }
  static F max(F a, F b) { return _mm512_mask_max_ps(a, kAll16, a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F round(F v) { return _mm512_mask_roundscale_ps(v, kAll16, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // vmaxps / vminps return their second operand when either is NaN: x goes second.
  static F clamp(F x, F lo, F hi) {
    return _mm512_mask_min_ps(x, kAll16, hi, _mm512_mask_max_ps(x, kAll16, lo, x));
  }
  // vscalefps: p * 2^floor(n) with one rounding, subnormal and overflowing results included.
  static F scale_pow2(F p, F n) { return _mm512_mask_scalef_ps(p, kAll16, p, n); }
  static float hmax(F v) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    float m = lanes[0];
    for (float x : lanes) m = x > m ? x : m;
    return m;
  }
  static D dzero() { return _mm512_setzero_pd(); }
  static D widen(const float* p) { return _mm512_mask_cvtps_pd(_mm512_setzero_pd(), 0xff, _mm256_loadu_ps(p)); }
  static void acc_squares(D acc[2], const float* p) {
    const D lo = widen(p), hi = widen(p + 8);
    acc[0] = _mm512_fmadd_pd(lo, lo, acc[0]);
    acc[1] = _mm512_fmadd_pd(hi, hi, acc[1]);
  }
  static void acc_values(D acc[2], const float* p) {
    acc[0] = _mm512_add_pd(acc[0], widen(p));
    acc[1] = _mm512_add_pd(acc[1], widen(p + 8));
  }
  static double hsum(const D acc[2]) {
    alignas(64) double lanes[16];
    _mm512_store_pd(lanes, acc[0]);
    _mm512_store_pd(lanes + 8, acc[1]);
    double s = 0.0;
    for (double v : lanes) s += v;
    return s;
  }
};
using VecX86 = VecAvx512;
#else
using VecX86 = VecAvx2;
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__)
// ============================================================================================
// Panel packing for the AVX-512 GEMMs (VNNI and AMX): 16 weight rows at a time, with one gather
// per group of 4 codes. For block b (of nb starting at b0) and group g, 64 bytes hold the codes
// 4g..4g+3 of each of the 16 rows:  codes[b * block_bytes + g * group_bytes + 4 * row + 0..3],
// each plus `add` (mod 256). Rows at or past n_valid read the last valid row and get scale 0.
// Gathers take int32 byte offsets: callers check 16 * row_stride fits (pack16_fits).

struct Pack16 {
  const uint8_t* first_row;
  size_t row_stride;
  int n_valid;  // 1..16
  uint8_t* codes;
  int block_bytes, group_bytes;
  float* scales;
  int scale_block;
};

inline bool pack16_fits(size_t row_stride) { return row_stride <= (size_t{1} << 26); }

inline __m512i pack16_row_offsets(const Pack16& p) {
  const __m512i r = _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                     _mm512_set1_epi32(p.n_valid - 1));
  return _mm512_mullo_epi32(r, _mm512_set1_epi32(static_cast<int>(p.row_stride)));
}

inline void pack16_scales(const Pack16& p, __m512i off, const uint8_t* blk, int b) {
  const __m512i d = _mm512_i32gather_epi32(off, blk, 1);  // f16 d in the low half of each lane
  const __m512 s = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
  const __mmask16 valid = static_cast<__mmask16>((1u << p.n_valid) - 1);
  _mm512_storeu_ps(p.scales + b * p.scale_block, _mm512_maskz_mov_ps(valid, s));
}

inline void pack16_q8_0(const Pack16& p, int64_t b0, int nb, int8_t add) {
  const __m512i off = pack16_row_offsets(p);
  const __m512i vadd = _mm512_set1_epi8(add);
  for (int b = 0; b < nb; ++b) {
    const uint8_t* blk = p.first_row + (b0 + b) * sizeof(quant::block_q8_0);
    pack16_scales(p, off, blk, b);
    uint8_t* out = p.codes + b * p.block_bytes;
    for (int g = 0; g < 8; ++g) {
      const __m512i v = _mm512_i32gather_epi32(off, blk + offsetof(quant::block_q8_0, qs) + 4 * g, 1);
      _mm512_storeu_si512(out + g * p.group_bytes, _mm512_add_epi8(v, vadd));
    }
  }
}

// Q4_0: qs dword k holds elements 4k..4k+3 (low nibbles) and 16+4k..16+4k+3 (high nibbles).
inline void pack16_q4_0(const Pack16& p, int64_t b0, int nb, int8_t add) {
  const __m512i off = pack16_row_offsets(p);
  const __m512i vadd = _mm512_set1_epi8(add), low4 = _mm512_set1_epi8(0x0f);
  for (int b = 0; b < nb; ++b) {
    const uint8_t* blk = p.first_row + (b0 + b) * sizeof(quant::block_q4_0);
    pack16_scales(p, off, blk, b);
    uint8_t* out = p.codes + b * p.block_bytes;
    for (int k = 0; k < 4; ++k) {
      const __m512i v = _mm512_i32gather_epi32(off, blk + offsetof(quant::block_q4_0, qs) + 4 * k, 1);
      _mm512_storeu_si512(out + k * p.group_bytes, _mm512_add_epi8(_mm512_and_si512(v, low4), vadd));
      _mm512_storeu_si512(out + (4 + k) * p.group_bytes,
                          _mm512_add_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), vadd));
    }
  }
}
#endif

// ============================================================================================
// Q4_1, Q5_0 and Q5_1 row kernels (GEMV; also used for a few tokens and for prefill).
//
// Activations, as the scalar table quantizes them (traits.dot_type): Q5_0 dots with Q8_0, so it
// reads the q8x layout above; Q4_1 and Q5_1 dot with Q8_1, whose codes and d are Q8_0's plus
// s = f16(d * sum(q)) with d the float amax / 127 BEFORE its f16 rounding (quantize_row_q8_1_ref).
// Layout "q8x1": a q8x row followed by
//   float s[K/32]      the f16 s of each block, widened
// padded to a multiple of 64 bytes (act_q8x_view reads its q8x prefix unchanged).
//
// Per block the weight codes are unsigned (nibbles 0..15, or 0..31 with the fifth bit), so one
// vpmaddubsw + vpmaddwd (AVX2) or vpdpbusd (VNNI) gives 8 int32 partial sums (pairs at most
// 2 * 31 * 127 < 2^15: no saturation):
//   Q5_0: sum((q - 16) a) = sum(q a) - 16 sum(a): each of the 8 lanes starts at -2 sum(a);
//   Q4_1, Q5_1: sum(q a) as is; the offset term m * s of each block is added separately, 8
//   blocks at a time (one gather of the f16 m, one fma into a third accumulator).
// As in dot_blocks_q8x, blocks go in order into fixed accumulators: a result depends only on
// its row and token, never on the row range, the token count or the thread split.

inline size_t act_q8x1_row_bytes(int64_t n_cols) {
  const size_t nb = static_cast<size_t>(n_cols / 32);
  return (static_cast<size_t>(n_cols) + nb * 20 + 63) / 64 * 64;
}

inline const float* act_q8x1_s(const uint8_t* act_row, int64_t n_cols) {
  return reinterpret_cast<const float*>(act_row + n_cols + static_cast<size_t>(n_cols / 32) * 16);
}

inline void quantize_act_q8x1(const float* x, void* dst, int64_t n_cols) {
  quantize_act_q8x(x, dst, n_cols);
  auto* bytes = static_cast<uint8_t*>(dst);
  const ActQ8x a = act_q8x_view(bytes, n_cols);
  auto* s_out = reinterpret_cast<float*>(bytes + n_cols + static_cast<size_t>(n_cols / 32) * 16);
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n_cols / 32; ++b, x += 32) {
    // The same amax (and so the same float d) as quantize_act_q8x computed for this block.
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, _mm256_loadu_ps(x + 8 * i)));
    const float d = hmax_ps(amax) / 127.0f;
    const float s = static_cast<float>(a.sum[b]) * d;
    s_out[b] = _cvtsh_ss(_cvtss_sh(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

// The f16 field at byte `offset` of 8 consecutive blocks, widened (one gather, one vcvtph2ps).
template <class Block>
inline __m256 block_halves8(const Block* blocks, size_t offset) {
  const __m256i offsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                             _mm256_set1_epi32(static_cast<int>(sizeof(Block))));
  const auto* base = reinterpret_cast<const uint8_t*>(blocks) + offset;
  const __m256i h32 = _mm256_i32gather_epi32(reinterpret_cast<const int*>(base), offsets, 1);
  const __m256i pick = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 4, 5, 8, 9,
                                        12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(h32, pick), 0x08);
  return _mm256_cvtph_ps(_mm256_castsi256_si128(packed));
}

// Q5 fifth bits (qh, bit i = element i) -> 32 bytes in element order, 0x10 where the bit is set.
inline __m256i unpack_q5_high(const uint8_t* qh) {
  int32_t h;
  std::memcpy(&h, qh, 4);
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  // Bit i of qh is byte i's mask bit: one masked move.
  return _mm256_maskz_mov_epi8(static_cast<__mmask32>(static_cast<uint32_t>(h)), _mm256_set1_epi8(0x10));
#else
  // Bytes 0..15 (elements 0..15) read qh bytes 0 and 1, bytes 16..31 qh bytes 2 and 3.
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                          3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(h), spread), bit);
  return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
#endif
}

inline __m256i block_dot_q4_1(const quant::block_q4_1& w, const ActQ8x& a, int64_t i) {
  return dot_u4s8(unpack_q4_0(w.qs), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * i)));
}

inline __m256i block_dot_q5_1(const quant::block_q5_1& w, const ActQ8x& a, int64_t i) {
  const __m256i q = _mm256_or_si256(unpack_q4_0(w.qs), unpack_q5_high(w.qh));
  return dot_u4s8(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * i)));
}

// sum((q - 16) a) = sum(q a) - 16 sum(a): 8 lanes of -2 sum(a).
inline __m256i block_dot_q5_0(const quant::block_q5_0& w, const ActQ8x& a, int64_t i) {
  const __m256i a8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * i));
  const __m256i q = _mm256_or_si256(unpack_q4_0(w.qs), unpack_q5_high(w.qh));
#if SLM_X86_VNNI256
  return dpbusd256(_mm256_set1_epi32(-2 * a.sum[i]), q, a8);
#else
  return _mm256_sub_epi32(dot_u4s8(q, a8), _mm256_set1_epi32(2 * a.sum[i]));
#endif
}

// Q4_1 / Q5_1: dot_blocks_q8x's two scaled accumulators plus accm += m * s, 8 blocks per step;
// blocks past the last group of 8 add m * s into a float in block order.
template <class Block, class Dot>
inline float dot_blocks_q8x1(const uint8_t* row, const uint8_t* act_row, int64_t n, Dot dot) {
  const auto* wb = reinterpret_cast<const Block*>(row);
  const ActQ8x a = act_q8x_view(act_row, n);
  const float* s = act_q8x1_s(act_row, n);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  const int64_t nb = n / 32;
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(wb + b);
    prefetch(bytes + kPrefetchBytes);
    prefetch(bytes + kPrefetchBytes + 64);
    prefetch(bytes + kPrefetchBytes + 128);  // 8 blocks = 160 or 192 bytes: up to 4 lines
    if constexpr (sizeof(Block) * 8 > 192) prefetch(bytes + kPrefetchBytes + 192);
    const __m256 sc = block_scales8(wb + b, a.d + b);
    accm = _mm256_fmadd_ps(block_halves8(wb + b, offsetof(Block, m)), _mm256_loadu_ps(s + b), accm);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j += 2) {
      acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot(wb[b + j], a, b + j)), lane(sc, j), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot(wb[b + j + 1], a, b + j + 1)), lane(sc, j + 1), acc1);
    }
  }
  float tail_m = 0.0f;
  for (; b < nb; ++b) {
    const __m256 p = _mm256_cvtepi32_ps(dot(wb[b], a, b));
    const __m256 scale = _mm256_set1_ps(_cvtsh_ss(wb[b].d) * a.d[b]);
    if (b % 2 == 0) acc0 = _mm256_fmadd_ps(p, scale, acc0);
    else acc1 = _mm256_fmadd_ps(p, scale, acc1);
    tail_m += _cvtsh_ss(wb[b].m) * s[b];
  }
  return hsum_ps(_mm256_add_ps(acc0, acc1)) + (hsum_ps(accm) + tail_m);
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// With 512-bit vectors: two blocks per zmm, as dot_q4_0_q8x_rows lays them out (bytes 0..31 are
// the codes of block b in element order, bytes 32..63 those of block b + 1), so one vpdpbusd
// against the 64 contiguous activation codes gives 8 partial sums per block. The fifth bits of
// both blocks form one 64-bit byte mask (qh of b, then qh of b + 1): a masked add of 0x10.
// Q5_0's lanes start at -2 sum(a) (spread from the 8 block sums with one permute per pair);
// Q4_1 / Q5_1 add m * s 8 blocks at a time as dot_blocks_q8x1 does. Blocks past the last group
// of 8 take the 256-bit block dots above. Fixed per row and length: thread-count invariant.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <class Block, bool kHigh, bool kMin, class Dot>
inline float dot_q4_1_q5_q8x_512(const uint8_t* row, const uint8_t* act_row, int64_t n, Dot tail_dot) {
  const auto* wb = reinterpret_cast<const Block*>(row);
  const ActQ8x a = act_q8x_view(act_row, n);
  const __m512i low4 = _mm512_set1_epi8(0x0f), five = _mm512_set1_epi8(0x10);
  const __m512i pair_idx[4] = {
      _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
      _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
      _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5),
      _mm512_setr_epi32(6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7)};
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m256 accm = _mm256_setzero_ps();
  const int64_t nb = n / 32;
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(wb + b);
    prefetch(bytes + kPrefetchBytes);
    prefetch(bytes + kPrefetchBytes + 64);
    prefetch(bytes + kPrefetchBytes + 128);
    if constexpr (sizeof(Block) * 8 > 192) prefetch(bytes + kPrefetchBytes + 192);
    const __m512 sc = _mm512_castps256_ps512(block_scales8(wb + b, a.d + b));
    __m512i bias = _mm512_setzero_si512();
    if constexpr (kMin) {
      const float* s = act_q8x1_s(act_row, n);
      accm = _mm256_fmadd_ps(block_halves8(wb + b, offsetof(Block, m)), _mm256_loadu_ps(s + b), accm);
    } else {
      const __m256i sum8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sum + b));
      bias = _mm512_castsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum8, 1)));
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const Block& x0 = wb[b + 2 * j];
      const Block& x1 = wb[b + 2 * j + 1];
      const __m512i av = _mm512_loadu_si512(a.qs + 32 * (b + 2 * j));
      __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x0.qs)));
      v = _mm512_mask_broadcast_i32x4(v, 0xff00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x1.qs)));
      v = _mm512_mask_srli_epi16(v, 0xff00ff00u, v, 4);  // 128-bit lanes 1 and 3: the high nibbles
      __m512i q = _mm512_and_si512(v, low4);
      if constexpr (kHigh) {
        uint32_t h0, h1;
        std::memcpy(&h0, x0.qh, 4);
        std::memcpy(&h1, x1.qh, 4);
        q = _mm512_mask_add_epi8(q, static_cast<__mmask64>(h0) | static_cast<__mmask64>(h1) << 32, q, five);
      }
      const __m512i init = kMin ? _mm512_setzero_si512() : _mm512_permutexvar_epi32(pair_idx[j], bias);
      const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init, q, av));
      const __m512 scale = _mm512_permutexvar_ps(pair_idx[j], sc);
      if (j % 2 == 0) acc0 = _mm512_fmadd_ps(p, scale, acc0);
      else acc1 = _mm512_fmadd_ps(p, scale, acc1);
    }
  }
  __m256 tail = _mm256_setzero_ps();
  float tail_m = 0.0f;
  for (; b < nb; ++b) {
    tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tail_dot(wb[b], a, b)), _mm256_set1_ps(_cvtsh_ss(wb[b].d) * a.d[b]),
                           tail);
    if constexpr (kMin) tail_m += _cvtsh_ss(wb[b].m) * act_q8x1_s(act_row, n)[b];
  }
  alignas(64) float lanes[16];  // through memory, as dot_q4_0_q8x_rows (GCC 12 warnings)
  _mm512_store_ps(lanes, _mm512_add_ps(acc0, acc1));
  const float sum = hsum_ps(_mm256_add_ps(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8))) + hsum_ps(tail);
  return kMin ? sum + (hsum_ps(accm) + tail_m) : sum;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

inline float dot_q4_1_q8x1(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  return dot_q4_1_q5_q8x_512<quant::block_q4_1, false, true>(row, act_row, n, block_dot_q4_1);
}

inline float dot_q5_1_q8x1(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  return dot_q4_1_q5_q8x_512<quant::block_q5_1, true, true>(row, act_row, n, block_dot_q5_1);
}

inline float dot_q5_0_q8x(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  return dot_q4_1_q5_q8x_512<quant::block_q5_0, true, false>(row, act_row, n, block_dot_q5_0);
}
#else
inline float dot_q4_1_q8x1(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  return dot_blocks_q8x1<quant::block_q4_1>(row, act_row, n, block_dot_q4_1);
}

inline float dot_q5_1_q8x1(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  return dot_blocks_q8x1<quant::block_q5_1>(row, act_row, n, block_dot_q5_1);
}

inline float dot_q5_0_q8x(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  return dot_blocks_q8x<quant::block_q5_0>(row, act_row, n, block_dot_q5_0);
}
#endif

inline void rows_q4_1_q8x1(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                           int64_t n_tokens, float* y, int64_t ldy) {
  rows_loop(w, r0, r1, act, act_stride, n_tokens, y, ldy, dot_q4_1_q8x1);
}

inline void rows_q5_0_q8x(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                          int64_t n_tokens, float* y, int64_t ldy) {
  rows_loop(w, r0, r1, act, act_stride, n_tokens, y, ldy, dot_q5_0_q8x);
}

inline void rows_q5_1_q8x1(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                           int64_t n_tokens, float* y, int64_t ldy) {
  rows_loop(w, r0, r1, act, act_stride, n_tokens, y, ldy, dot_q5_1_q8x1);
}

// The Q4_1 / Q5_0 / Q5_1 entries (each ISA file names them with its suffix).
inline void add_x86_q4_1_q5_kernels(KernelTable& table, const char* q4_1_name, const char* q5_0_name,
                                    const char* q5_1_name) {
  table.by_type[static_cast<int>(DType::Q4_1)] =
      TypeKernels{q4_1_name, act_q8x1_row_bytes, quantize_act_q8x1, rows_q4_1_q8x1};
  table.by_type[static_cast<int>(DType::Q5_0)] =
      TypeKernels{q5_0_name, act_q8x_row_bytes, quantize_act_q8x, rows_q5_0_q8x};
  table.by_type[static_cast<int>(DType::Q5_1)] =
      TypeKernels{q5_1_name, act_q8x1_row_bytes, quantize_act_q8x1, rows_q5_1_q8x1};
}

// Fills the entries every x86 level shares (each ISA file names them with its suffix).
inline void add_x86_row_kernels(KernelTable& table, const char* q8_0_name, const char* q4_0_name,
                                const char* q4_k_name, const char* q5_k_name, const char* q6_k_name,
                                const char* f32_name,
                                const char* f16_name, const char* bf16_name) {
  auto set = [&](DType t, const char* name, ActRowBytesFn bytes, QuantizeActFn quant, MatmulRowsFn rows) {
    TypeKernels& k = table.by_type[static_cast<int>(t)];
    k = TypeKernels{name, bytes, quant, rows};
  };
  set(DType::Q8_0, q8_0_name, act_q8x_row_bytes, quantize_act_q8x, rows_q8_0_q8x);
  set(DType::Q4_0, q4_0_name, act_q8x_row_bytes, quantize_act_q8x, rows_q4_0_q8x);
  set(DType::Q4_K, q4_k_name, act_q8_k_row_bytes, quantize_act_q8_k, rows_q4_k_q8_k);
  set(DType::Q5_K, q5_k_name, act_q8_k_row_bytes, quantize_act_q8_k, rows_q5_k_q8_k);
  set(DType::Q6_K, q6_k_name, act_q8_k_row_bytes, quantize_act_q8_k, rows_q6_k_q8_k);
  set(DType::F32, f32_name, nullptr, nullptr, rows_float<LoadF32>);
  set(DType::F16, f16_name, nullptr, nullptr, rows_float<LoadF16>);
  set(DType::BF16, bf16_name, nullptr, nullptr, rows_float<LoadBF16>);
  table.weighted_sum_f16 = weighted_sum_x86<RowF16>;
  table.weighted_sum_f32 = weighted_sum_x86<RowF32>;
  add_vector_ops<VecX86>(table);
}

}  // namespace
}  // namespace slm::kernels::detail
