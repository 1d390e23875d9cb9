// Internal: the register-blocked Q8_0 / Q4_0 GEMM for prefill on 256-bit vectors, shared by
// kernels_avx2.cpp (vpmaddubsw + vpmaddwd) and kernels_avxvnni.cpp (vpdpbusd). Include only
// after x86_simd.hpp, from a file compiled with at least -mavx2 -mfma -mf16c: internal linkage,
// each ISA file gets its own copy built with its own flags.
#pragma once

#include <algorithm>

#include "kernels/x86_simd.hpp"

namespace slm::kernels::detail {
namespace {

// ============================================================================================
// GEMM for Q8_0 / Q4_0 weights x q8x activations with the 8-bit multiplies of AVX2, or with
// 256-bit VNNI (vpdpbusd) where the including file is compiled with it (SLM_X86_VNNI256).
//
// A panel of 8 weight rows is repacked so that one ymm holds 4 consecutive codes of each row:
//     panel[block][g][row][0..3] = code[row][32 * block + 4g + 0..3]      (g = 0..7)
// and each token's 4 activation codes a[4g..4g+3] are broadcast to all 8 lanes. vpmaddubsw
// multiplies unsigned by signed bytes with 16-bit pair sums, vpmaddwd(ones) finishes the 4-code
// sums per row lane (vpdpbusd does both and the accumulation in one instruction, the same sums):
//   Q4_0: the nibbles q (0..15) are the unsigned side as they are (pairs <= 2 * 15 * 127, no
//         saturation); sum((q - 8) a) = sum(q a) - 8 sum(a): the accumulator starts at bias8.
//   Q8_0: |w| is the unsigned side and a * sign(w) the signed one (pairs <= 2 * 127 * 127).
// Lane `row` of a token's accumulator is one output; per block
//     acc[row] = fma(float(isum), dw[row] * da, acc[row])
// in block order, whatever the tiling, so results do not depend on the row split.

constexpr int kPanelRows = 8;
constexpr int kChunkBlocks = 32;  // 8 KiB of codes + 1 KiB of scales per chunk (stack, L1)
constexpr int kTileTokens = 4;    // 4 int32 + 4 float accumulators + weights, ones, temps: 16 ymm
constexpr int64_t kMinGemmTokens = 4;

struct Panel {
  alignas(32) uint8_t codes[kChunkBlocks * 8 * 32];
  alignas(32) float scales[kChunkBlocks * kPanelRows];
};

inline void store_quads(Panel& p, int b, int r, __m256i v) {
  uint32_t quad[8];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(quad), v);
  for (int g = 0; g < 8; ++g) std::memcpy(&p.codes[(b * 8 + g) * 32 + r * 4], &quad[g], 4);
}

// Rows [r0, r0 + n) blocks [b0, b0 + nb) -> panel; rows beyond n repeat the last row with scale 0.
template <class Block>
void pack(const Matrix& w, int64_t r0, int n, int64_t b0, int nb, Panel& p) {
  for (int r = 0; r < kPanelRows; ++r) {
    const auto* blocks = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w.data) +
                                                        static_cast<size_t>(r0 + std::min(r, n - 1)) * w.row_stride);
    for (int b = 0; b < nb; ++b) {
      const Block& blk = blocks[b0 + b];
      p.scales[b * kPanelRows + r] = r < n ? _cvtsh_ss(blk.d) : 0.0f;
      if constexpr (sizeof(Block) == sizeof(quant::block_q4_0)) store_quads(p, b, r, unpack_q4_0(blk.qs));
      else store_quads(p, b, r, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs)));
    }
  }
}

template <bool kQ4, int NT>
void gemm_tile(const Panel& p, int nb, int64_t b0, const uint8_t* act, size_t act_stride, int64_t n_cols,
               bool first_chunk, float* y, int64_t ldy, int n_rows) {
  const uint8_t* row[NT];
  __m256 accf[NT];
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n_rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) {
    row[t] = act + t * act_stride;
    accf[t] = first_chunk ? _mm256_setzero_ps() : _mm256_maskload_ps(y + t * ldy, mask);
  }
  const int64_t nblocks_row = n_cols / 32;
#if !SLM_X86_VNNI256
  const __m256i ones = _mm256_set1_epi16(1);
#endif
  size_t q_off = static_cast<size_t>(32 * b0);
  size_t d_off = static_cast<size_t>(n_cols + 4 * b0);
  size_t s_off = static_cast<size_t>(n_cols + 12 * nblocks_row + 4 * b0);  // bias8[blk]
  const uint8_t* codes = p.codes;
  for (int b = 0; b < nb; ++b, codes += 8 * 32, q_off += 32, d_off += 4, s_off += 4) {
    __m256i acci[NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      if constexpr (kQ4) {
        int32_t bias8;
        std::memcpy(&bias8, row[t] + s_off, 4);
        acci[t] = _mm256_set1_epi32(bias8);
      } else {
        acci[t] = _mm256_setzero_si256();
      }
    }
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      const __m256i wv = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes + g * 32));
      const __m256i uw = kQ4 ? wv : _mm256_sign_epi8(wv, wv);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        int32_t quad;
        std::memcpy(&quad, row[t] + q_off + 4 * g, 4);
        __m256i a = _mm256_set1_epi32(quad);
        if constexpr (!kQ4) a = _mm256_sign_epi8(a, wv);
#if SLM_X86_VNNI256
        acci[t] = dpbusd256(acci[t], uw, a);
#else
        acci[t] = _mm256_add_epi32(acci[t], _mm256_madd_epi16(_mm256_maddubs_epi16(uw, a), ones));
#endif
      }
    }
    const __m256 dw = _mm256_load_ps(&p.scales[b * kPanelRows]);
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      float d;
      std::memcpy(&d, row[t] + d_off, 4);
      accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acci[t]), _mm256_mul_ps(dw, _mm256_set1_ps(d)), accf[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) _mm256_maskstore_ps(y + t * ldy, mask, accf[t]);
}

template <class Block, MatmulRowsFn rows_fallback>
void gemm_avx2(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
               float* y, int64_t ldy) {
  if (n_tokens < kMinGemmTokens) {
    rows_fallback(w, r0, r1, act, act_stride, n_tokens, y, ldy);
    return;
  }
  constexpr bool kQ4 = sizeof(Block) == sizeof(quant::block_q4_0);
  using TileFn = void (*)(const Panel&, int, int64_t, const uint8_t*, size_t, int64_t, bool, float*, int64_t, int);
  constexpr TileFn tiles[kTileTokens + 1] = {nullptr, gemm_tile<kQ4, 1>, gemm_tile<kQ4, 2>, gemm_tile<kQ4, 3>,
                                             gemm_tile<kQ4, 4>};
  const auto* act_bytes = static_cast<const uint8_t*>(act);
  const int64_t n_blocks = w.n_cols / 32;
  Panel panel;
  for (int64_t r = r0; r < r1; r += kPanelRows) {
    const int n = static_cast<int>(std::min<int64_t>(kPanelRows, r1 - r));
    for (int64_t b0 = 0; b0 < n_blocks; b0 += kChunkBlocks) {
      const int nb = static_cast<int>(std::min<int64_t>(kChunkBlocks, n_blocks - b0));
      pack<Block>(w, r, n, b0, nb, panel);
      for (int64_t t = 0; t < n_tokens; t += kTileTokens) {
        const int nt = static_cast<int>(std::min<int64_t>(kTileTokens, n_tokens - t));
        tiles[nt](panel, nb, b0, act_bytes + t * act_stride, act_stride, w.n_cols, b0 == 0, y + t * ldy + r, ldy, n);
      }
    }
  }
}

}  // namespace
}  // namespace slm::kernels::detail
