// Internal: the register-blocked prefill GEMM for Q4_1, Q5_0 and Q5_1 weights with AVX-512 VNNI
// (activations: q8x1 for Q4_1 / Q5_1, q8x for Q5_0; x86_simd.hpp). Include after x86_simd.hpp,
// only from files compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni
// (kernels_avx512vnni.cpp; the amx table inherits these entries).
//
// A panel of 32 weight rows is repacked per chunk of 32-element blocks so that one zmm holds 4
// consecutive codes of each of 16 rows, as unsigned bytes:
//     codes[b][g][half][row][0..3] = u(w[16 * half + row][32 * (b0 + b) + 4g + 0..3])   (g = 0..7)
// with u = q for Q4_1 (0..15) and Q5_1 (0..31), and u = q + 112 for Q5_0 (q - 16 + 128: 96..127),
// next to the per-row f16 d (and m) of each block, widened. vpdpbusd(acc, codes, broadcast of
// the token's 4 activation codes) then forms, in lane `row`, the exact integer dot of one block:
//     Q4_1 / Q5_1: acc starts at 0:                  isum = sum_j q_j a_j
//     Q5_0:        acc starts at -128 sum(a)         isum = sum_j (q_j - 16) a_j
//                  (the q8x row's bias field)
// and per block, in block order, the float step is the reference's own expression
// (vec_dot_q*_ref in src/quant/quant_legacy.cpp):
//     Q4_1 / Q5_1: acc = acc + ((dw * da) * float(isum) + m * s)     (s: the Q8_1 block's d*sum)
//     Q5_0:        acc = acc + (dw * da) * float(isum)
// dw * da and m * s are products of two f16 values (11-bit significands), exact in float, so
// only the multiply by float(isum) and the two adds round; m * s + (...) may then be one FMA,
// but (dw * da) * float(isum) + acc may not.
// The integers are the reference's and the float operations are its operations in its order,
// so every output equals the scalar table bit for bit whatever the row range, the token count
// (from kQ45MinGemmTokens on), the tiling or the K blocking (the float accumulator passes
// through y between chunks unchanged). Below kQ45MinGemmTokens tokens the row kernels run
// (x86_simd.hpp; their own fixed arithmetic, close to but not bit-equal to the reference);
// matmul splits rows, never tokens, over threads, so no result depends on the thread count.
#pragma once

#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "gemm_q45_x86.hpp needs -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

#include <algorithm>
#include <cstddef>

// GCC 12 reports the _mm512_undefined_* operand inside its own intrinsics (gathers, broadcasts)
// as maybe-uninitialized, a false positive (see gemm_kquant_x86.hpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace slm::kernels::detail {
namespace {

constexpr int kQ45PanelRows = 32;         // two zmm of 16 rows: each broadcast feeds 2 vpdpbusd
constexpr int kQ45ChunkBlocks = 32;       // packed chunk: 32 KiB of codes + 8 KiB of d, m
constexpr int kQ45TileTokens = 6;         // 6 tokens x (2 int + 2 float) = 24 zmm accumulators
constexpr int64_t kQ45MinGemmTokens = 4;  // below this the row kernels (no repacking) win

// The per-format constants: kMin (an f16 m after d, the Q8_1 s term), kHigh (qh fifth bits),
// kAdd (added to every code), kAct (activation bytes per block: qs, d, sum, bias, bias8 [, s]).
template <class Block>
struct Q45Format;
template <>
struct Q45Format<quant::block_q4_1> {
  static constexpr bool kMin = true, kHigh = false;
  static constexpr int kAdd = 0;
  static constexpr size_t kQh = 0;
};
template <>
struct Q45Format<quant::block_q5_0> {
  static constexpr bool kMin = false, kHigh = true;
  static constexpr int kAdd = 112;
  static constexpr size_t kQh = offsetof(quant::block_q5_0, qh);
};
template <>
struct Q45Format<quant::block_q5_1> {
  static constexpr bool kMin = true, kHigh = true;
  static constexpr int kAdd = 0;
  static constexpr size_t kQh = offsetof(quant::block_q5_1, qh);
};

struct Q45Panel {
  alignas(64) uint8_t codes[kQ45ChunkBlocks * 8 * 2 * 64];  // [b][g][half][row][4]
  alignas(64) float d[kQ45ChunkBlocks * kQ45PanelRows];     // [b][row]
  alignas(64) float m[kQ45ChunkBlocks * kQ45PanelRows];     // [b][row] (Q4_1 / Q5_1)
};

// 16 rows starting at first_row (n_valid of them, 0..16; rows past the last valid one read it
// again and get d = m = 0) of blocks [b0, b0 + nb) -> row half `half` of the panel.
// qs dword k holds elements 4k..4k+3 (low nibbles) and 16+4k..16+4k+3 (high nibbles); their
// fifth bits are qh bits 4k..4k+3 and 16+4k..16+4k+3, i.e. nibble (k & 1) of qh byte k >> 1
// (low) or 2 + (k >> 1) (high).
template <class Block>
void q45_pack16(const uint8_t* first_row, size_t row_stride, int n_valid, int64_t b0, int nb, int half,
                Q45Panel& p) {
  using F = Q45Format<Block>;
  const __m512i off = _mm512_mullo_epi32(
      _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                       _mm512_set1_epi32(std::max(1, n_valid) - 1)),
      _mm512_set1_epi32(static_cast<int>(row_stride)));
  const auto valid = static_cast<__mmask16>((1u << n_valid) - 1);
  const __m512i low4 = _mm512_set1_epi8(0x0f), five = _mm512_set1_epi8(0x10), vadd = _mm512_set1_epi8(F::kAdd);
  // vpshufb indexes within 128-bit lanes: bytes 0..3 of dword i (of 4 per lane) <- its byte
  // `src` at 4i + src; then the bits of nibble 0 (1, 2, 4, 8) or nibble 1 tested byte by byte.
  const __m512i dword_base = _mm512_setr_epi32(0, 0x04040404, 0x08080808, 0x0c0c0c0c, 0, 0x04040404, 0x08080808,
                                               0x0c0c0c0c, 0, 0x04040404, 0x08080808, 0x0c0c0c0c, 0, 0x04040404,
                                               0x08080808, 0x0c0c0c0c);
  const __m512i bits[2] = {_mm512_set1_epi32(0x08040201), _mm512_set1_epi32(static_cast<int>(0x80402010u))};
  for (int b = 0; b < nb; ++b) {
    const uint8_t* blk = first_row + static_cast<size_t>(b0 + b) * sizeof(Block);
    const __m512i hdr = _mm512_i32gather_epi32(off, blk, 1);  // f16 d | f16 m << 16 (Q5_0: d | qh)
    _mm512_store_ps(p.d + b * kQ45PanelRows + 16 * half,
                    _mm512_maskz_mov_ps(valid, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(hdr))));
    if constexpr (F::kMin)
      _mm512_store_ps(p.m + b * kQ45PanelRows + 16 * half,
                      _mm512_maskz_mov_ps(valid, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(hdr, 16)))));
    __m512i qh = _mm512_setzero_si512();
    if constexpr (F::kHigh) qh = _mm512_i32gather_epi32(off, blk + F::kQh, 1);
    uint8_t* out = p.codes + b * (8 * 128) + half * 64;
    for (int k = 0; k < 4; ++k) {
      const __m512i v = _mm512_i32gather_epi32(off, blk + offsetof(Block, qs) + 4 * k, 1);
      __m512i lo = _mm512_and_si512(v, low4);
      __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      if constexpr (F::kHigh) {
        const __m512i idx_lo = _mm512_add_epi32(dword_base, _mm512_set1_epi32(0x01010101 * (k >> 1)));
        const __m512i idx_hi = _mm512_add_epi32(dword_base, _mm512_set1_epi32(0x01010101 * (2 + (k >> 1))));
        lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, idx_lo), bits[k & 1]), lo, five);
        hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, idx_hi), bits[k & 1]), hi, five);
      }
      _mm512_store_si512(out + k * 128, _mm512_add_epi8(lo, vadd));
      _mm512_store_si512(out + (4 + k) * 128, _mm512_add_epi8(hi, vadd));
    }
  }
}

// Rows [r0, r0 + n) (n = 1..32), blocks [b0, b0 + nb) -> panel.
template <class Block>
void q45_pack_panel(const Matrix& w, int64_t r0, int n, int64_t b0, int nb, Q45Panel& p) {
  for (int half = 0; half < 2; ++half) {
    const int n_valid = std::max(0, std::min(16, n - 16 * half));
    const int64_t first = std::min<int64_t>(r0 + 16 * half, r0 + n - 1);
    q45_pack16<Block>(static_cast<const uint8_t*>(w.data) + static_cast<size_t>(first) * w.row_stride, w.row_stride,
                      n_valid, b0, nb, half, p);
  }
}

// One register tile: 32 rows x NT tokens over the panel's nb blocks starting at block b0.
template <class Block, int NT>
void q45_tile(const Q45Panel& p, int nb, int64_t b0, const uint8_t* act, size_t act_stride, int64_t n_cols,
              bool first_chunk, float* y, int64_t ldy, __mmask16 mask0, __mmask16 mask1) {
  using F = Q45Format<Block>;
  const uint8_t* row[NT];
  __m512 accf0[NT], accf1[NT];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    row[t] = act + t * act_stride;
    accf0[t] = first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask0, y + t * ldy);
    accf1[t] = first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask1, y + t * ldy + 16);
  }
  // Activation row (x86_simd.hpp): qs[K], float d[K/32], int32 sum, bias, bias8 [, float s].
  const int64_t nblocks_row = n_cols / 32;
  size_t q_off = static_cast<size_t>(32 * b0);
  size_t d_off = static_cast<size_t>(n_cols + 4 * b0);
  size_t bias_off = static_cast<size_t>(n_cols + 8 * nblocks_row + 4 * b0);
  size_t s_off = static_cast<size_t>(n_cols + 16 * nblocks_row + 4 * b0);
  const uint8_t* codes = p.codes;
  const float* dw = p.d;
  const float* mw = p.m;
  for (int b = 0; b < nb; ++b, codes += 8 * 128, dw += kQ45PanelRows, mw += kQ45PanelRows, q_off += 32, d_off += 4,
           bias_off += 4, s_off += 4) {
    __m512i acci0[NT], acci1[NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      if constexpr (F::kMin) acci0[t] = _mm512_setzero_si512();
      else acci0[t] = _mm512_broadcastd_epi32(_mm_loadu_si32(row[t] + bias_off));
      acci1[t] = acci0[t];
    }
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      const __m512i w0 = _mm512_load_si512(codes + g * 128);
      const __m512i w1 = _mm512_load_si512(codes + g * 128 + 64);
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        const __m512i a = _mm512_broadcastd_epi32(_mm_loadu_si32(row[t] + q_off + 4 * g));
        acci0[t] = _mm512_dpbusd_epi32(acci0[t], w0, a);
        acci1[t] = _mm512_dpbusd_epi32(acci1[t], w1, a);
      }
    }
    const __m512 dw0 = _mm512_load_ps(dw), dw1 = _mm512_load_ps(dw + 16);
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512 da = _mm512_set1_ps(*reinterpret_cast<const float*>(row[t] + d_off));
      __m512 v0 = _mm512_mul_ps(_mm512_mul_ps(dw0, da), _mm512_cvtepi32_ps(acci0[t]));
      __m512 v1 = _mm512_mul_ps(_mm512_mul_ps(dw1, da), _mm512_cvtepi32_ps(acci1[t]));
      if constexpr (F::kMin) {
        const __m512 s = _mm512_set1_ps(*reinterpret_cast<const float*>(row[t] + s_off));
        // m * s is exact in float (two f16 significands: 22 bits), so the fused form rounds
        // once, exactly as the reference's (d * da) * isum + m * s does.
        v0 = _mm512_fmadd_ps(_mm512_load_ps(mw), s, v0);
        v1 = _mm512_fmadd_ps(_mm512_load_ps(mw + 16), s, v1);
      }
      accf0[t] = _mm512_add_ps(accf0[t], v0);
      accf1[t] = _mm512_add_ps(accf1[t], v1);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, mask0, accf0[t]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, mask1, accf1[t]);
  }
}

// Blocks per K block: the driver runs all its panels over one K block before the next, so that
// the activations of a block (n_tokens x k_block x ~50 bytes) stay in L2 while the panels stream
// past; the float accumulators go through y between blocks, exactly. Below about 1 MiB of
// activations in all, one block (panel after panel over the whole K).
inline int64_t q45_k_block(int64_t n_blocks, int64_t n_tokens, size_t act_stride, int64_t n_cols) {
  const int64_t bytes_per_block = n_tokens * static_cast<int64_t>(act_stride) / std::max<int64_t>(1, n_cols / 32) + 1;
  if (n_blocks * bytes_per_block <= (int64_t{1} << 20)) return n_blocks;
  const int64_t fit = (int64_t{512} << 10) / bytes_per_block;
  return std::max<int64_t>(kQ45ChunkBlocks, fit / kQ45ChunkBlocks * kQ45ChunkBlocks);
}

// The MatmulRowsFn: the row kernel `rows_fallback` below kQ45MinGemmTokens tokens (or when the
// gathers' int32 offsets cannot span 16 rows), else 32-row panels, 32-block chunks, 6-token tiles.
template <class Block, MatmulRowsFn rows_fallback>
void gemm_q45(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
              float* y, int64_t ldy) {
  if (n_tokens < kQ45MinGemmTokens || w.n_cols < 32 || !pack16_fits(w.row_stride)) {
    rows_fallback(w, r0, r1, act, act_stride, n_tokens, y, ldy);
    return;
  }
  using TileFn = void (*)(const Q45Panel&, int, int64_t, const uint8_t*, size_t, int64_t, bool, float*, int64_t,
                          __mmask16, __mmask16);
  static constexpr TileFn kTiles[kQ45TileTokens + 1] = {nullptr,
                                                        q45_tile<Block, 1>,
                                                        q45_tile<Block, 2>,
                                                        q45_tile<Block, 3>,
                                                        q45_tile<Block, 4>,
                                                        q45_tile<Block, 5>,
                                                        q45_tile<Block, 6>};
  const auto* act_bytes = static_cast<const uint8_t*>(act);
  const int64_t n_blocks = w.n_cols / 32;
  Q45Panel panel;
  const int64_t k_block = q45_k_block(n_blocks, n_tokens, act_stride, w.n_cols);
  for (int64_t kb = 0; kb < n_blocks; kb += k_block) {
    const int64_t kb_end = std::min(n_blocks, kb + k_block);
    for (int64_t r = r0; r < r1; r += kQ45PanelRows) {
      const int n = static_cast<int>(std::min<int64_t>(kQ45PanelRows, r1 - r));
      const auto mask0 = static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1);
      const auto mask1 = static_cast<__mmask16>(n <= 16 ? 0 : n >= 32 ? 0xffff : (1u << (n - 16)) - 1);
      for (int64_t b0 = kb; b0 < kb_end; b0 += kQ45ChunkBlocks) {
        const int nb = static_cast<int>(std::min<int64_t>(kQ45ChunkBlocks, kb_end - b0));
        q45_pack_panel<Block>(w, r, n, b0, nb, panel);
        for (int64_t t = 0; t < n_tokens; t += kQ45TileTokens) {
          const int nt = static_cast<int>(std::min<int64_t>(kQ45TileTokens, n_tokens - t));
          kTiles[nt](panel, nb, b0, act_bytes + t * act_stride, act_stride, w.n_cols, b0 == 0, y + t * ldy + r, ldy,
                     mask0, mask1);
        }
      }
    }
  }
}

// Overrides the Q4_1 / Q5_0 / Q5_1 entries that add_x86_q4_1_q5_kernels set (same activations).
inline void add_x86_q45_gemm(KernelTable& table, const char* q4_1_name, const char* q5_0_name, const char* q5_1_name) {
  TypeKernels& q4_1 = table.by_type[static_cast<int>(DType::Q4_1)];
  q4_1.name = q4_1_name;
  q4_1.rows = gemm_q45<quant::block_q4_1, rows_q4_1_q8x1>;
  TypeKernels& q5_0 = table.by_type[static_cast<int>(DType::Q5_0)];
  q5_0.name = q5_0_name;
  q5_0.rows = gemm_q45<quant::block_q5_0, rows_q5_0_q8x>;
  TypeKernels& q5_1 = table.by_type[static_cast<int>(DType::Q5_1)];
  q5_1.name = q5_1_name;
  q5_1.rows = gemm_q45<quant::block_q5_1, rows_q5_1_q8x1>;
}

}  // namespace
}  // namespace slm::kernels::detail
