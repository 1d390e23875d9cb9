// Internal: kernels on the interleaved Q4_0 / Q8_0 layout (kernels.hpp Layout::x16) with AVX-512
// VNNI: the decode GEMVs, and the packers that feed the 32-row GEMM panels of
// kernels_avx512vnni.cpp / kernels_amx.cpp from it. Include after x86_simd.hpp, only from files
// compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni.
//
// Arithmetic (the contract of rows_x16_ref in kernel_table.hpp): per row and token, acc = 0,
// then for each block in order acc = fma(float(isum), d_w * d_a, acc), isum the exact integer
// block sum. The GEMMs' tiles do the same per (row, token) lane, so GEMV, GEMM and the scalar
// reference give the same bits.
#pragma once

#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "x16_x86.hpp needs -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

namespace slm::kernels::detail {
namespace {

// Software prefetch distance per weight stream. The GEMV reads four streams at once (four groups
// of 16 rows), so 1 KiB ahead each keeps ~4 KiB in flight: measured on the 1.5B Q4_0 model
// (slm-bench tg64), 4 streams x 1 KiB gave 16.3 / 30.6-31.3 t/s at 1 / 2 threads against 15.0-15.4 /
// 28.4 for 2 streams x 2-4 KiB; 512 B and 4-8 KiB were slower.
constexpr size_t kX16PrefetchBytes = 1024;
constexpr size_t kX16BlockBytes = 16 * sizeof(quant::block_q4_0);    // 288: 4 lines of codes + 16 f16 scales
constexpr size_t kX16Q8BlockBytes = 16 * sizeof(quant::block_q8_0);  // 544: 8 lines of codes + 16 f16 scales

// Start values of a block's integer sum in the q8x layout: bias = -128 * sum(a) for codes stored
// plus 128 (Q8_0), bias8 = -8 * sum(a) for Q4_0's unsigned nibbles q (giving sum((q - 8) * a)).
inline const int32_t* act_q8x_bias(const uint8_t* act_row, int64_t n_cols) {
  return reinterpret_cast<const int32_t*>(act_row + n_cols + static_cast<size_t>(n_cols / 32) * 8);
}
inline const int32_t* act_q8x_bias8(const uint8_t* act_row, int64_t n_cols) {
  return reinterpret_cast<const int32_t*>(act_row + n_cols + static_cast<size_t>(n_cols / 32) * 12);
}

// NG groups of 16 rows (consecutive groups, group_bytes apart) x one token. Per block and group:
// 4 line loads, 8 ands, 8 vpdpbusd (the high nibbles are used in place, as 16 * q: their sum is
// shifted back by 4, exactly), one vcvtph2ps of the 16 scales, a multiply, a convert and an FMA.
// Four groups per pass keep four weight streams in flight and share the activation broadcasts.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <int NG>
inline void gemv_q4_0_x16(const uint8_t* group0, size_t group_bytes, const uint8_t* act_row, int64_t n_cols,
                          float* out) {
  const ActQ8x a = act_q8x_view(act_row, n_cols);
  const int32_t* bias8 = act_q8x_bias8(act_row, n_cols);
  const __m512i low4 = _mm512_set1_epi8(0x0f), high4 = _mm512_set1_epi8(static_cast<char>(0xf0));
  __m512 acc[NG];
  for (int g = 0; g < NG; ++g) acc[g] = _mm512_setzero_ps();
  const int64_t nb = n_cols / 32;
  for (int64_t b = 0; b < nb; ++b) {
    __m512i bcast_lo[4], bcast_hi[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      int32_t lo, hi;
      std::memcpy(&lo, a.qs + 32 * b + 4 * i, 4);
      std::memcpy(&hi, a.qs + 32 * b + 16 + 4 * i, 4);
      bcast_lo[i] = _mm512_set1_epi32(lo);
      bcast_hi[i] = _mm512_set1_epi32(hi);
    }
    const __m512 da = _mm512_set1_ps(a.d[b]);
    const __m512i init = _mm512_set1_epi32(bias8[b]);
#pragma GCC unroll 4
    for (int g = 0; g < NG; ++g) {
      const uint8_t* blk = group0 + g * group_bytes + static_cast<size_t>(b) * kX16BlockBytes;
      prefetch(blk + kX16PrefetchBytes);
      prefetch(blk + kX16PrefetchBytes + 64);
      prefetch(blk + kX16PrefetchBytes + 128);
      prefetch(blk + kX16PrefetchBytes + 192);
      prefetch(blk + kX16PrefetchBytes + 256);
      __m512i lo = init, hi = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const __m512i v = _mm512_loadu_si512(blk + 64 * i);
        lo = _mm512_dpbusd_epi32(lo, _mm512_and_si512(v, low4), bcast_lo[i]);
        hi = _mm512_dpbusd_epi32(hi, _mm512_and_si512(v, high4), bcast_hi[i]);
      }
      const __m512i isum = _mm512_add_epi32(lo, _mm512_srai_epi32(hi, 4));
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 256)));
      acc[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, da), acc[g]);
    }
  }
  for (int g = 0; g < NG; ++g) _mm512_storeu_ps(out + 16 * g, acc[g]);
}

// The same for Q8_0 (codes stored plus 128, sums started at -128 * sum(a)): per block and group
// 8 line loads and 8 vpdpbusd, in two chains of 4, and the same scaling.
template <int NG>
inline void gemv_q8_0_x16(const uint8_t* group0, size_t group_bytes, const uint8_t* act_row, int64_t n_cols,
                          float* out) {
  const ActQ8x a = act_q8x_view(act_row, n_cols);
  const int32_t* bias = act_q8x_bias(act_row, n_cols);
  __m512 acc[NG];
  for (int g = 0; g < NG; ++g) acc[g] = _mm512_setzero_ps();
  const int64_t nb = n_cols / 32;
  for (int64_t b = 0; b < nb; ++b) {
    __m512i bcast[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      int32_t v;
      std::memcpy(&v, a.qs + 32 * b + 4 * i, 4);
      bcast[i] = _mm512_set1_epi32(v);
    }
    const __m512 da = _mm512_set1_ps(a.d[b]);
    const __m512i init = _mm512_set1_epi32(bias[b]);
#pragma GCC unroll 4
    for (int g = 0; g < NG; ++g) {
      const uint8_t* blk = group0 + g * group_bytes + static_cast<size_t>(b) * kX16Q8BlockBytes;
#pragma GCC unroll 9
      for (int l = 0; l < 9; ++l) prefetch(blk + kX16PrefetchBytes + 64 * l);
      __m512i s0 = init, s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(blk + 64 * i), bcast[i]);
        s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(blk + 256 + 64 * i), bcast[4 + i]);
      }
      const __m512i isum = _mm512_add_epi32(s0, s1);
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 512)));
      acc[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, da), acc[g]);
    }
  }
  for (int g = 0; g < NG; ++g) _mm512_storeu_ps(out + 16 * g, acc[g]);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// MatmulRowsFn on the interleaved layout for a few tokens: rows [r0, r1) are whole groups of 16
// (the driver splits at multiples of 32 and n_rows % 16 == 0).
template <void (*Gemv1)(const uint8_t*, size_t, const uint8_t*, int64_t, float*),
          void (*Gemv2)(const uint8_t*, size_t, const uint8_t*, int64_t, float*),
          void (*Gemv4)(const uint8_t*, size_t, const uint8_t*, int64_t, float*)>
void rows_x16_gemv(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
                   float* y, int64_t ldy) {
  const size_t group_bytes = 16 * w.row_stride;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const auto* act_row = static_cast<const uint8_t*>(act) + t * act_stride;
    int64_t r = r0;
    for (; r + 64 <= r1; r += 64)
      Gemv4(base + static_cast<size_t>(r / 16) * group_bytes, group_bytes, act_row, w.n_cols, y + t * ldy + r);
    for (; r + 32 <= r1; r += 32)
      Gemv2(base + static_cast<size_t>(r / 16) * group_bytes, group_bytes, act_row, w.n_cols, y + t * ldy + r);
    for (; r < r1; r += 16)
      Gemv1(base + static_cast<size_t>(r / 16) * group_bytes, group_bytes, act_row, w.n_cols, y + t * ldy + r);
  }
}

constexpr MatmulRowsFn rows_q4_0_x16_gemv = rows_x16_gemv<gemv_q4_0_x16<1>, gemv_q4_0_x16<2>, gemv_q4_0_x16<4>>;
constexpr MatmulRowsFn rows_q8_0_x16_gemv = rows_x16_gemv<gemv_q8_0_x16<1>, gemv_q8_0_x16<2>, gemv_q8_0_x16<4>>;

// Panel packing from the interleaved layout (the GEMMs' Pack16 layout, see x86_simd.hpp): one
// 16-row group, blocks [b0, b0 + nb). Line i's low nibbles are codes 4i..4i+3 (group i of the
// panel), its high nibbles codes 16+4i.. (group 4 + i); each plus `add` (mod 256).
inline void pack16_q4_0_x16(const Pack16& p, const uint8_t* group, int64_t b0, int nb, int8_t add) {
  const __m512i vadd = _mm512_set1_epi8(add), low4 = _mm512_set1_epi8(0x0f);
  for (int b = 0; b < nb; ++b) {
    const uint8_t* blk = group + static_cast<size_t>(b0 + b) * kX16BlockBytes;
    _mm512_storeu_ps(p.scales + b * p.scale_block,
                     _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 256))));
    uint8_t* out = p.codes + b * p.block_bytes;
    for (int i = 0; i < 4; ++i) {
      const __m512i v = _mm512_loadu_si512(blk + 64 * i);
      _mm512_storeu_si512(out + i * p.group_bytes, _mm512_add_epi8(_mm512_and_si512(v, low4), vadd));
      _mm512_storeu_si512(out + (4 + i) * p.group_bytes,
                          _mm512_add_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), vadd));
    }
  }
}

// Q8_0: the lines are the panel's groups already (codes plus 128); `add` moves them to the
// panel's code offset (0 for the unsigned VNNI panels, -128 for AMX's signed ones).
inline void pack16_q8_0_x16(const Pack16& p, const uint8_t* group, int64_t b0, int nb, int8_t add) {
  const __m512i vadd = _mm512_set1_epi8(add);
  for (int b = 0; b < nb; ++b) {
    const uint8_t* blk = group + static_cast<size_t>(b0 + b) * kX16Q8BlockBytes;
    _mm512_storeu_ps(p.scales + b * p.scale_block,
                     _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 512))));
    uint8_t* out = p.codes + b * p.block_bytes;
    for (int i = 0; i < 8; ++i)
      _mm512_storeu_si512(out + i * p.group_bytes, _mm512_add_epi8(_mm512_loadu_si512(blk + 64 * i), vadd));
  }
}

// Fills a 32-row GEMM panel (rows [r0, r0 + n), n = 16 or 32) from the interleaved layout; an
// empty upper half gets zero codes and scales so its (unstored) outputs stay finite. kAdd: what
// the panel adds to a code (Q4_0: to the nibble q; Q8_0: to the stored code + 128).
template <class Panel, int kPanelRows, bool kQ4, int8_t kAdd>
void pack_panel_x16(const Matrix& w, int64_t r0, int n, int64_t b0, int nb, Panel& p) {
  const size_t group_bytes = 16 * w.row_stride;
  for (int half = 0; half < 2; ++half) {
    auto* codes = reinterpret_cast<uint8_t*>(p.codes) + half * 64;
    if (n <= 16 * half) {
      for (int b = 0; b < nb; ++b) {
        _mm512_storeu_ps(p.scales + b * kPanelRows + 16 * half, _mm512_setzero_ps());
        for (int g = 0; g < 8; ++g) _mm512_storeu_si512(codes + b * 8 * 128 + g * 128, _mm512_setzero_si512());
      }
      continue;
    }
    const Pack16 pk{nullptr, 0, 16, codes, 8 * 128, 128, p.scales + half * 16, kPanelRows};
    const uint8_t* group = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r0 / 16 + half) * group_bytes;
    if constexpr (kQ4) pack16_q4_0_x16(pk, group, b0, nb, kAdd);
    else pack16_q8_0_x16(pk, group, b0, nb, kAdd);
  }
}

}  // namespace
}  // namespace slm::kernels::detail
