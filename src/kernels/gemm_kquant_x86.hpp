// Internal: the register-blocked GEMM for the K-quants (Q4_K, Q5_K, Q6_K weights x Q8_K
// activations) with AVX-512 VNNI, for prefill. Include after x86_simd.hpp, only from files
// compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni (kernels_avx512vnni.cpp, and
// kernels_amx.cpp, whose gemm_kquant_amx.hpp packs through these panels).
//
// A panel of 32 weight rows is repacked per chunk of super-blocks so that one zmm holds 4
// consecutive codes of each of 16 rows, as unsigned bytes (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63):
//     codes[sb][sub][g][half][row][0..3] = code of w[16 * half + row][256 sb + E * sub + 4g + 0..3]
// with E = 32 (Q4_K/Q5_K sub-blocks) or 16 (Q6_K), next to per-row int32 vectors of the sub-block
// scales and the super-block's d (and dmin). vpdpbusd(dot, codes, broadcast of the token's 4
// activation codes) forms, in lane `row`, the exact integer dot of one sub-block; then
//     isum += dot * sc[row]                                                (vpmulld, exact)
// per sub-block, and once per super-block, exactly as vec_dot_q*_k_q8_k_ref:
//     Q4_K/Q5_K: msum = sum_j m_j * (bsums[2j] + bsums[2j+1])              (vpdpwssd, exact)
//                acc = acc + ((dw * da) * float(isum) - (dminw * da) * float(msum))
//     Q6_K:      isum -= 32 * sum_s sc_s * bsums[s]                        (vpdpwssd, exact)
//                acc = acc + (dw * da) * float(isum)
// The integers are the reference's and the float steps are its expression in its order, so each
// output equals the scalar table (and the row kernels) bit for bit, whatever the row range, the
// token count or the tiling (the float accumulator goes through y between chunks unchanged).
#pragma once

#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "gemm_kquant_x86.hpp needs -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

#include <algorithm>
#include <cstddef>
#include <type_traits>

// GCC 12 reports the _mm512_undefined_* operand inside its own intrinsics (gathers, broadcasts,
// conversions) as maybe-uninitialized, a false positive; as in the files that include this one,
// the warning is off for the rest of the translation unit (middle-end warnings are checked
// where the code is emitted, so a push/pop around the functions does not reach them).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace slm::kernels::detail {
namespace {

constexpr int kKqPanelRows = 32;          // two zmm of 16 rows: each broadcast feeds 2 vpdpbusd
constexpr int kKqTileTokens = 6;          // 6 tokens x (2 dot + 2 isum) = 24 zmm
constexpr int64_t kKqMinGemmTokens = 4;   // below this the row kernels (no repacking) win
constexpr int kKqActBlockBytes = static_cast<int>(sizeof(quant::block_q8_k));
constexpr int kKqActQs = static_cast<int>(offsetof(quant::block_q8_k, qs));
constexpr int kKqActBsums = static_cast<int>(offsetof(quant::block_q8_k, bsums));

// The per-format constants. kPairs: int16 pairs per row for the vpdpwssd term (Q4_K/Q5_K: the
// mins (m_2k, m_2k+1) against (bsum32_2k, bsum32_2k+1); Q6_K: the scales (sc_2k, sc_2k+1)
// against the Q8_K bsums (bsums_2k, bsums_2k+1)). kChunk: super-blocks per packed chunk (the
// chunk stays in L1: ~40 KiB).
template <class Block>
struct KqFormat;
template <>
struct KqFormat<quant::block_q4_k> {
  static constexpr int kSubs = 8, kGroups = 8, kPairs = 4, kChunk = 4;
  static constexpr bool kMins = true, kHigh = false;
};
template <>
struct KqFormat<quant::block_q5_k> {
  static constexpr int kSubs = 8, kGroups = 8, kPairs = 4, kChunk = 4;
  static constexpr bool kMins = true, kHigh = true;
};
template <>
struct KqFormat<quant::block_q6_k> {
  static constexpr int kSubs = 16, kGroups = 4, kPairs = 8, kChunk = 3;
  static constexpr bool kMins = false, kHigh = false;
};

// One super-block of a 32-row panel.
template <class F>
struct KqPanelSb {
  alignas(64) uint8_t codes[F::kSubs * F::kGroups * 2 * 64];  // [sub][g][half][row][4]
  alignas(64) int32_t sc[F::kSubs * kKqPanelRows];            // [sub][row]
  alignas(64) int32_t pairs[F::kPairs * kKqPanelRows];        // [pair][row]: two int16
  alignas(64) float d[kKqPanelRows];
  alignas(64) float dmin[kKqPanelRows];                       // Q4_K/Q5_K only
};

template <class F>
struct KqPanel {
  KqPanelSb<F> sb[F::kChunk];
};

// Byte offsets of 16 rows (rows at or past n_valid read the last valid row; their scales are
// zeroed). Gathers take int32 offsets: the caller checks pack16_fits(row_stride).
inline __m512i kq_row_offsets(int n_valid, size_t row_stride) {
  const __m512i r = _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                     _mm512_set1_epi32(n_valid - 1));
  return _mm512_mullo_epi32(r, _mm512_set1_epi32(static_cast<int>(row_stride)));
}

inline __m512i kq_gather(__m512i off, const uint8_t* base) { return _mm512_i32gather_epi32(off, base, 1); }

// 16 rows (first_row, n_valid of them) of super-blocks [sb0, sb0 + nsb) -> row half `half` of the
// panel. Q4_K / Q5_K.
template <class Block>
void kq_pack16_q45(const uint8_t* first_row, size_t row_stride, int n_valid, int64_t sb0, int nsb, int half,
                   KqPanelSb<KqFormat<Block>>* sbs) {
  using F = KqFormat<Block>;
  const __m512i off = kq_row_offsets(n_valid, row_stride);
  const __mmask16 valid = static_cast<__mmask16>((1u << n_valid) - 1);
  const __m512i low4 = _mm512_set1_epi8(0x0f), byte = _mm512_set1_epi32(0xff);
  const __m512i six = _mm512_set1_epi32(0x3f3f3f3f), four = _mm512_set1_epi32(0x0f0f0f0f),
                two = _mm512_set1_epi32(0x03030303), one = _mm512_set1_epi32(0x01010101);
  for (int s = 0; s < nsb; ++s) {
    const uint8_t* blk = first_row + static_cast<size_t>(sb0 + s) * sizeof(Block);
    KqPanelSb<F>& out = sbs[s];
    const __m512i hdr = kq_gather(off, blk);  // f16 d | f16 dmin << 16
    _mm512_storeu_ps(out.d + 16 * half, _mm512_maskz_mov_ps(valid, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(hdr))));
    _mm512_storeu_ps(out.dmin + 16 * half,
                     _mm512_maskz_mov_ps(valid, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(hdr, 16)))));
    // The 12-byte scale field (blocks.hpp) per lane: bytes of sc[0..3], sc[4..7], m[0..3], m[4..7].
    const __m512i w0 = kq_gather(off, blk + offsetof(Block, scales));
    const __m512i w1 = kq_gather(off, blk + offsetof(Block, scales) + 4);
    const __m512i w2 = kq_gather(off, blk + offsetof(Block, scales) + 8);
    const __m512i sc_lo = _mm512_and_si512(w0, six), m_lo = _mm512_and_si512(w1, six);
    const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(w2, four),
                                          _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w0, 6), two), 4));
    const __m512i m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), four),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w1, 6), two), 4));
    for (int j = 0; j < 4; ++j) {
      _mm512_store_si512(out.sc + j * kKqPanelRows + 16 * half,
                         _mm512_and_si512(_mm512_srli_epi32(sc_lo, 8 * j), byte));
      _mm512_store_si512(out.sc + (j + 4) * kKqPanelRows + 16 * half,
                         _mm512_and_si512(_mm512_srli_epi32(sc_hi, 8 * j), byte));
    }
    // (m_2k, m_2k+1) as two int16 in one dword: bytes 0,1 -> halves; bytes 2,3 -> halves.
    const __m512i lo16 = _mm512_set1_epi32(0xff), hi16 = _mm512_set1_epi32(0xff0000);
    const __m512i mm[2] = {m_lo, m_hi};
    for (int h = 0; h < 2; ++h) {
      const __m512i pair01 = _mm512_or_si512(_mm512_and_si512(mm[h], lo16), _mm512_and_si512(_mm512_slli_epi32(mm[h], 8), hi16));
      const __m512i pair23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(mm[h], 16), lo16),
                                             _mm512_and_si512(_mm512_srli_epi32(mm[h], 8), hi16));
      _mm512_store_si512(out.pairs + (2 * h) * kKqPanelRows + 16 * half, pair01);
      _mm512_store_si512(out.pairs + (2 * h + 1) * kKqPanelRows + 16 * half, pair23);
    }
    // Codes: qs dword i of chunk c holds elements 4i..4i+3 of sub-block 2c (low nibbles) and of
    // sub-block 2c + 1 (high nibbles); Q5_K's fifth bits of those elements are bits 2c / 2c + 1
    // of qh dword i.
    for (int i = 0; i < 8; ++i) {
      __m512i qh = _mm512_setzero_si512();
      if constexpr (F::kHigh) qh = kq_gather(off, blk + offsetof(quant::block_q5_k, qh) + 4 * i);
      for (int c = 0; c < 4; ++c) {
        const __m512i v = kq_gather(off, blk + offsetof(Block, qs) + 32 * c + 4 * i);
        __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        if constexpr (F::kHigh) {
          lo = _mm512_or_si512(lo, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh, 2 * c), one), 4));
          hi = _mm512_or_si512(hi, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh, 2 * c + 1), one), 4));
        }
        _mm512_store_si512(out.codes + ((2 * c) * F::kGroups + i) * 128 + 64 * half, lo);
        _mm512_store_si512(out.codes + ((2 * c + 1) * F::kGroups + i) * 128 + 64 * half, hi);
      }
    }
  }
}

// Q6_K: element e = 128h + 32k + l has its low nibble in ql[64h + 32(k % 2) + l] (k < 2: low,
// else high) and its top two bits at bits 2k..2k+1 of qh[32h + l]; sub-block s = e / 16.
inline void kq_pack16_q6(const uint8_t* first_row, size_t row_stride, int n_valid, int64_t sb0, int nsb, int half,
                         KqPanelSb<KqFormat<quant::block_q6_k>>* sbs) {
  using F = KqFormat<quant::block_q6_k>;
  using B = quant::block_q6_k;
  const __m512i off = kq_row_offsets(n_valid, row_stride);
  const __mmask16 valid = static_cast<__mmask16>((1u << n_valid) - 1);
  const __m512i low4 = _mm512_set1_epi8(0x0f), two = _mm512_set1_epi8(0x03), lo16 = _mm512_set1_epi32(0xffff);
  for (int s = 0; s < nsb; ++s) {
    const uint8_t* blk = first_row + static_cast<size_t>(sb0 + s) * sizeof(B);
    KqPanelSb<F>& out = sbs[s];
    // d is the block's last two bytes: the dword ending there keeps the gather inside the block.
    const __m512i dw = kq_gather(off, blk + offsetof(B, d) - 2);
    _mm512_storeu_ps(out.d + 16 * half,
                     _mm512_maskz_mov_ps(valid, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dw, 16)))));
    for (int q = 0; q < 4; ++q) {
      const __m512i v = kq_gather(off, blk + offsetof(B, scales) + 4 * q);
      __m512i sc[4];
      for (int b = 0; b < 4; ++b) {  // sign-extended byte b
        sc[b] = _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * b), 24);
        _mm512_store_si512(out.sc + (4 * q + b) * kKqPanelRows + 16 * half, sc[b]);
      }
      _mm512_store_si512(out.pairs + (2 * q) * kKqPanelRows + 16 * half,
                         _mm512_or_si512(_mm512_and_si512(sc[0], lo16), _mm512_slli_epi32(sc[1], 16)));
      _mm512_store_si512(out.pairs + (2 * q + 1) * kKqPanelRows + 16 * half,
                         _mm512_or_si512(_mm512_and_si512(sc[2], lo16), _mm512_slli_epi32(sc[3], 16)));
    }
    for (int h = 0; h < 2; ++h) {
      for (int l4 = 0; l4 < 8; ++l4) {
        const __m512i qa = kq_gather(off, blk + offsetof(B, ql) + 64 * h + 4 * l4);
        const __m512i qb = kq_gather(off, blk + offsetof(B, ql) + 64 * h + 32 + 4 * l4);
        const __m512i qh = kq_gather(off, blk + offsetof(B, qh) + 32 * h + 4 * l4);
        const __m512i code[4] = {
            _mm512_or_si512(_mm512_and_si512(qa, low4), _mm512_slli_epi16(_mm512_and_si512(qh, two), 4)),
            _mm512_or_si512(_mm512_and_si512(qb, low4),
                            _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh, 2), two), 4)),
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(qa, 4), low4),
                            _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh, 4), two), 4)),
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(qb, 4), low4),
                            _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh, 6), two), 4))};
        for (int k = 0; k < 4; ++k) {
          const int sub = 8 * h + 2 * k + l4 / 4, g = l4 % 4;
          _mm512_store_si512(out.codes + (sub * F::kGroups + g) * 128 + 64 * half, code[k]);
        }
      }
    }
  }
}

// Rows [r0, r0 + n) super-blocks [sb0, sb0 + nsb) -> sbs[0 .. nsb).
template <class Block>
void kq_pack_panel(const Matrix& w, int64_t r0, int n, int64_t sb0, int nsb, KqPanelSb<KqFormat<Block>>* sbs) {
  for (int half = 0; half < 2; ++half) {
    // An empty half packs the last row again (finite values; its outputs are never stored).
    const int rows = n > 16 * half ? std::min(16, n - 16 * half) : 1;
    const int64_t first = std::min<int64_t>(r0 + 16 * half, r0 + n - 1);
    const uint8_t* first_row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(first) * w.row_stride;
    if constexpr (std::is_same_v<Block, quant::block_q6_k>)
      kq_pack16_q6(first_row, w.row_stride, rows, sb0, nsb, half, sbs);
    else
      kq_pack16_q45<Block>(first_row, w.row_stride, rows, sb0, nsb, half, sbs);
  }
}

// One register tile: 32 rows x NT tokens over the panel's nsb super-blocks starting at sb0.
// The float accumulators live in a small stack array (touched once per super-block); the
// integer ones (2 dot + 2 isum per token) in registers.
template <class Block, int NT>
void kq_tile(const KqPanel<KqFormat<Block>>& p, int nsb, int64_t sb0, const uint8_t* act, size_t act_stride,
             bool first_chunk, float* y, int64_t ldy, __mmask16 mask0, __mmask16 mask1) {
  using F = KqFormat<Block>;
  constexpr int kSubElems = 256 / F::kSubs;
  const uint8_t* row[NT];
  alignas(64) float acc[NT][kKqPanelRows];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    row[t] = act + t * act_stride;
    _mm512_store_ps(acc[t], first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask0, y + t * ldy));
    _mm512_store_ps(acc[t] + 16, first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask1, y + t * ldy + 16));
  }
  for (int s = 0; s < nsb; ++s) {
    const KqPanelSb<F>& ps = p.sb[s];
    const size_t a_off = static_cast<size_t>(sb0 + s) * kKqActBlockBytes;
    __m512i isum0[NT], isum1[NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) isum0[t] = isum1[t] = _mm512_setzero_si512();
    const uint8_t* codes = ps.codes;
    for (int j = 0; j < F::kSubs; ++j) {
      __m512i dot0[NT], dot1[NT];
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) dot0[t] = dot1[t] = _mm512_setzero_si512();
      const size_t q_off = a_off + kKqActQs + static_cast<size_t>(kSubElems * j);
#pragma GCC unroll 8
      for (int g = 0; g < F::kGroups; ++g, codes += 128) {
        const __m512i w0 = _mm512_load_si512(codes), w1 = _mm512_load_si512(codes + 64);
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          const __m512i a = _mm512_broadcastd_epi32(_mm_loadu_si32(row[t] + q_off + 4 * g));
          dot0[t] = _mm512_dpbusd_epi32(dot0[t], w0, a);
          dot1[t] = _mm512_dpbusd_epi32(dot1[t], w1, a);
        }
      }
      const __m512i sc0 = _mm512_load_si512(ps.sc + j * kKqPanelRows);
      const __m512i sc1 = _mm512_load_si512(ps.sc + j * kKqPanelRows + 16);
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        isum0[t] = _mm512_add_epi32(isum0[t], _mm512_mullo_epi32(dot0[t], sc0));
        isum1[t] = _mm512_add_epi32(isum1[t], _mm512_mullo_epi32(dot1[t], sc1));
      }
    }
    const __m512 dw0 = _mm512_load_ps(ps.d), dw1 = _mm512_load_ps(ps.d + 16);
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const uint8_t* ab = row[t] + a_off;
      const __m512 da = _mm512_set1_ps(*reinterpret_cast<const float*>(ab));
      __m512i p0 = _mm512_setzero_si512(), p1 = _mm512_setzero_si512();
      if constexpr (F::kMins) {
        // bsum32_j = bsums[2j] + bsums[2j+1] (|.| <= 32 * 127: int16), 8 of them = 4 pairs.
        const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ab + kKqActBsums)),
                                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(ab + kKqActBsums + 16)));
        const __m512i bsv = _mm512_zextsi128_si512(bs);
#pragma GCC unroll 4
        for (int k = 0; k < F::kPairs; ++k) {
          const __m512i b = _mm512_permutexvar_epi32(_mm512_set1_epi32(k), bsv);
          p0 = _mm512_dpwssd_epi32(p0, _mm512_load_si512(ps.pairs + k * kKqPanelRows), b);
          p1 = _mm512_dpwssd_epi32(p1, _mm512_load_si512(ps.pairs + k * kKqPanelRows + 16), b);
        }
        const __m512 dm0 = _mm512_mul_ps(_mm512_load_ps(ps.dmin), da);
        const __m512 dm1 = _mm512_mul_ps(_mm512_load_ps(ps.dmin + 16), da);
        const __m512 d0 = _mm512_mul_ps(dw0, da), d1 = _mm512_mul_ps(dw1, da);
        const __m512 r0 = _mm512_sub_ps(_mm512_mul_ps(d0, _mm512_cvtepi32_ps(isum0[t])),
                                        _mm512_mul_ps(dm0, _mm512_cvtepi32_ps(p0)));
        const __m512 r1 = _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(isum1[t])),
                                        _mm512_mul_ps(dm1, _mm512_cvtepi32_ps(p1)));
        _mm512_store_ps(acc[t], _mm512_add_ps(_mm512_load_ps(acc[t]), r0));
        _mm512_store_ps(acc[t] + 16, _mm512_add_ps(_mm512_load_ps(acc[t] + 16), r1));
      } else {
        // 32 * sum_s sc_s * bsums_s: 16 int16 bsums = 8 pairs against (sc_2k, sc_2k+1).
        const __m512i bsv = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + kKqActBsums)));
#pragma GCC unroll 8
        for (int k = 0; k < F::kPairs; ++k) {
          const __m512i b = _mm512_permutexvar_epi32(_mm512_set1_epi32(k), bsv);
          p0 = _mm512_dpwssd_epi32(p0, _mm512_load_si512(ps.pairs + k * kKqPanelRows), b);
          p1 = _mm512_dpwssd_epi32(p1, _mm512_load_si512(ps.pairs + k * kKqPanelRows + 16), b);
        }
        const __m512i i0 = _mm512_sub_epi32(isum0[t], _mm512_slli_epi32(p0, 5));
        const __m512i i1 = _mm512_sub_epi32(isum1[t], _mm512_slli_epi32(p1, 5));
        const __m512 d0 = _mm512_mul_ps(dw0, da), d1 = _mm512_mul_ps(dw1, da);
        _mm512_store_ps(acc[t], _mm512_add_ps(_mm512_load_ps(acc[t]), _mm512_mul_ps(d0, _mm512_cvtepi32_ps(i0))));
        _mm512_store_ps(acc[t] + 16,
                        _mm512_add_ps(_mm512_load_ps(acc[t] + 16), _mm512_mul_ps(d1, _mm512_cvtepi32_ps(i1))));
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, mask0, _mm512_load_ps(acc[t]));
    _mm512_mask_storeu_ps(y + t * ldy + 16, mask1, _mm512_load_ps(acc[t] + 16));
  }
}
// Super-blocks per K block: the drivers run all their panels over one K block before the next,
// so that the activations of a block (n_tokens x k_block x 292 bytes) stay in L2 while the
// panels stream past; the float accumulators go through y between blocks, exactly. Below about
// 1 MiB of activations in all, one block (panel after panel over the whole K).
inline int64_t kq_k_block(int64_t n_sb, int64_t n_tokens, int chunk) {
  const int64_t act_bytes_per_sb = n_tokens * kKqActBlockBytes;
  if (n_sb * act_bytes_per_sb <= (int64_t{1} << 20)) return n_sb;
  const int64_t fit = (int64_t{512} << 10) / act_bytes_per_sb;
  return std::max<int64_t>(chunk, fit / chunk * chunk);
}

// The MatmulRowsFn: the row kernel `rows_fallback` below kKqMinGemmTokens tokens (or when the
// gathers' int32 offsets cannot span 16 rows), else 32-row panels, super-block chunks, 6-token tiles.
template <class Block, MatmulRowsFn rows_fallback>
void gemm_kquant(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
                 float* y, int64_t ldy) {
  using F = KqFormat<Block>;
  if (n_tokens < kKqMinGemmTokens || !pack16_fits(w.row_stride)) {
    rows_fallback(w, r0, r1, act, act_stride, n_tokens, y, ldy);
    return;
  }
  using TileFn = void (*)(const KqPanel<F>&, int, int64_t, const uint8_t*, size_t, bool, float*, int64_t,
                          __mmask16, __mmask16);
  static constexpr TileFn kTiles[kKqTileTokens + 1] = {nullptr,           kq_tile<Block, 1>, kq_tile<Block, 2>,
                                                       kq_tile<Block, 3>, kq_tile<Block, 4>, kq_tile<Block, 5>,
                                                       kq_tile<Block, 6>};
  const auto* act_bytes = static_cast<const uint8_t*>(act);
  const int64_t n_sb = w.n_cols / 256;
  KqPanel<F> panel;
  const int64_t k_block = kq_k_block(n_sb, n_tokens, F::kChunk);
  for (int64_t kb = 0; kb < n_sb; kb += k_block) {
    const int64_t kb_end = std::min(n_sb, kb + k_block);
    for (int64_t r = r0; r < r1; r += kKqPanelRows) {
      const int n = static_cast<int>(std::min<int64_t>(kKqPanelRows, r1 - r));
      const auto mask0 = static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1);
      const auto mask1 = static_cast<__mmask16>(n <= 16 ? 0 : n >= 32 ? 0xffff : (1u << (n - 16)) - 1);
      for (int64_t sb0 = kb; sb0 < kb_end; sb0 += F::kChunk) {
        const int nsb = static_cast<int>(std::min<int64_t>(F::kChunk, kb_end - sb0));
        kq_pack_panel<Block>(w, r, n, sb0, nsb, panel.sb);
        for (int64_t t = 0; t < n_tokens; t += kKqTileTokens) {
          const int nt = static_cast<int>(std::min<int64_t>(kKqTileTokens, n_tokens - t));
          kTiles[nt](panel, nsb, sb0, act_bytes + t * act_stride, act_stride, sb0 == 0, y + t * ldy + r, ldy, mask0,
                     mask1);
        }
      }
    }
  }
}

// Overrides the K-quant entries that add_x86_row_kernels set (same activation layout).
inline void add_x86_kquant_gemm(KernelTable& table, const char* q4_k_name, const char* q5_k_name,
                                const char* q6_k_name) {
  TypeKernels& q4 = table.by_type[static_cast<int>(DType::Q4_K)];
  q4.name = q4_k_name;
  q4.rows = gemm_kquant<quant::block_q4_k, rows_q4_k_q8_k>;
  TypeKernels& q5 = table.by_type[static_cast<int>(DType::Q5_K)];
  q5.name = q5_k_name;
  q5.rows = gemm_kquant<quant::block_q5_k, rows_q5_k_q8_k>;
  TypeKernels& q6 = table.by_type[static_cast<int>(DType::Q6_K)];
  q6.name = q6_k_name;
  q6.rows = gemm_kquant<quant::block_q6_k, rows_q6_k_q8_k>;
}

}  // namespace
}  // namespace slm::kernels::detail

#include "kernels/x16_kquant_x86.hpp"

namespace slm::kernels::detail {
namespace {

// Interleaved Q4_K / Q6_K (load-time layout, x16_kquant_x86.hpp): the GEMV for 1-3 tokens, the
// table's K-quant GEMM (set before this call) from 4 tokens on.
template <MatmulRowsFn PlainQ4, MatmulRowsFn PlainQ6>
inline void add_x86_kquant_x16(KernelTable& table, const char* q4_k_name, const char* q6_k_name) {
  TypeKernels& q4 = table.by_type[static_cast<int>(DType::Q4_K)];
  q4.name_x16 = q4_k_name;
  q4.rows_x16 = rows_q4_k_x16<PlainQ4>;
  TypeKernels& q6 = table.by_type[static_cast<int>(DType::Q6_K)];
  q6.name_x16 = q6_k_name;
  q6.rows_x16 = rows_q6_k_x16<PlainQ6>;
}

}  // namespace
}  // namespace slm::kernels::detail
