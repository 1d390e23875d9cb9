// Kernels compiled with AVX2 + AVX-512 F/BW/VL + VNNI flags (see CMakeLists.txt): the row
// kernels with vpdpbusd, and the register-blocked Q8_0 / Q4_0 GEMM for prefill.
#include <algorithm>

#include "kernels/x86_simd.hpp"
#include "kernels/x16_x86.hpp"
#include "kernels/gemm_kquant_x86.hpp"
#include "kernels/gemm_q45_x86.hpp"

// GCC 12 reports the _mm512_undefined_* operand inside its own broadcast/convert intrinsics as
// maybe-uninitialized (a false positive); nothing in this file reads uninitialised data.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "kernels_avx512vnni.cpp needs -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

namespace slm::kernels::detail {
namespace {

// ============================================================================================
// GEMM for 8-bit-code weights (Q8_0, Q4_0) x q8x activations.
//
// A panel of 32 weight rows is repacked so that one zmm holds 4 consecutive codes of each of 16
// rows, stored as unsigned bytes w + 128:
//     panel[block][g][half][row][0..3] = w[16 * half + row][32 * block + 4g + 0..3] + 128  (g = 0..7)
// vpdpbusd(acc, panel vector, broadcast of the token's 4 codes a[4g..4g+3]) then adds, in lane
// `row`, sum_j (w_j + 128) * a_j: after the 8 groups of a block the lane holds the block's
// integer dot plus 128 * sum(a), removed by starting the accumulator at -128 * sum(a). Each lane
// is one (row, token) output: no horizontal sums, and per block
//     acc[row] = fma(float(isum), dw[row] * da, acc[row])
// in block order, whatever the tile, so results do not depend on the row split or token count.
// Per block and token: 16 vpdpbusd + 2 x (cvt + mul + fma) on the vector ports: about 70% of the
// issue slots on the dot product.

constexpr int kPanelRows = 32;  // two zmm of 16 rows: each activation broadcast feeds 2 vpdpbusd
// K is processed in chunks of 32 blocks (1024 codes): the packed panel chunk is 32 KiB + 4 KiB
// of scales (stack), and all tokens' activations for the chunk (1 KiB each) stay in L2.
constexpr int kChunkBlocks = 32;
// Tokens per register tile: 4 accumulators per token (2 int32 + 2 float) x 6 = 24 zmm, plus the
// two weight vectors, two scale vectors and temporaries: 32 registers.
constexpr int kTileTokens = 6;
// Below this many tokens the repacking does not pay for itself: use the row kernels.
constexpr int64_t kMinGemmTokens = 4;

struct Panel {
  // codes[((b * 8 + g) * 2 + half) * 64 + row_in_half * 4 + 0..3]
  alignas(64) uint8_t codes[kChunkBlocks * 8 * 2 * 64];
  alignas(64) float scales[kChunkBlocks * kPanelRows];  // scales[b * 32 + row]
};

// Rows [r0, r0 + n) blocks [b0, b0 + nb) -> panel, two 16-row gathers per block (x86_simd.hpp).
// Codes are stored as w + 128: Q8_0 adds 128 (mod 256), Q4_0's nibble q stands for q - 8, so
// q + 120.
template <bool kQ4>
void pack_panel(const Matrix& w, int64_t r0, int n, int64_t b0, int nb, Panel& p) {
  for (int half = 0; half < 2; ++half) {
    const int rows = std::max(1, std::min(16, n - 16 * half));
    const int64_t first = std::min<int64_t>(r0 + 16 * half, r0 + n - 1);
    const Pack16 pk{static_cast<const uint8_t*>(w.data) + static_cast<size_t>(first) * w.row_stride,
                    w.row_stride, n > 16 * half ? rows : 1, p.codes + half * 64, 8 * 128, 128,
                    p.scales + half * 16, kPanelRows};
    if constexpr (kQ4) pack16_q4_0(pk, b0, nb, 120);
    else pack16_q8_0(pk, b0, nb, static_cast<int8_t>(-128));
    if (n <= 16 * half)  // an empty half: zero scales so its (unstored) outputs stay finite
      for (int b = 0; b < nb; ++b) _mm512_storeu_ps(p.scales + b * kPanelRows + 16, _mm512_setzero_ps());
  }
}

// One register tile: 32 rows x NT tokens over the panel's nb blocks starting at block b0.
template <int NT>
void gemm_tile(const Panel& p, int nb, int64_t b0, const uint8_t* act, size_t act_stride, int64_t n_cols,
               bool first_chunk, float* y, int64_t ldy, __mmask16 mask0, __mmask16 mask1) {
  // The token loops are fully unrolled so that the 4 * NT accumulators live in registers; one
  // pointer per token plus shared offsets keeps the addresses within the 15 usable GPRs.
  const uint8_t* row[NT];
  __m512 accf0[NT], accf1[NT];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    row[t] = act + t * act_stride;
    accf0[t] = first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask0, y + t * ldy);
    accf1[t] = first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask1, y + t * ldy + 16);
  }
  const int64_t nblocks_row = n_cols / 32;
  size_t q_off = static_cast<size_t>(32 * b0);                            // qs[32 * blk]
  size_t d_off = static_cast<size_t>(n_cols + 4 * b0);                    // d[blk]
  size_t s_off = static_cast<size_t>(n_cols + 8 * nblocks_row + 4 * b0);  // bias[blk]
  const uint8_t* codes = p.codes;
  const float* scales = p.scales;
  for (int b = 0; b < nb; ++b, codes += 8 * 128, scales += kPanelRows, q_off += 32, d_off += 4, s_off += 4) {
    __m512i acci0[NT], acci1[NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      acci0[t] = _mm512_broadcastd_epi32(_mm_loadu_si32(row[t] + s_off));
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
    const __m512 dw0 = _mm512_load_ps(scales), dw1 = _mm512_load_ps(scales + 16);
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512 d = _mm512_broadcastss_ps(_mm_load_ss(reinterpret_cast<const float*>(row[t] + d_off)));
      accf0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acci0[t]), _mm512_mul_ps(dw0, d), accf0[t]);
      accf1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acci1[t]), _mm512_mul_ps(dw1, d), accf1[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, mask0, accf0[t]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, mask1, accf1[t]);
  }
}

using TileFn = void (*)(const Panel&, int, int64_t, const uint8_t*, size_t, int64_t, bool, float*, int64_t,
                        __mmask16, __mmask16);
constexpr TileFn kTiles[kTileTokens + 1] = {nullptr,      gemm_tile<1>, gemm_tile<2>, gemm_tile<3>,
                                            gemm_tile<4>, gemm_tile<5>, gemm_tile<6>};

using PackFn = void (*)(const Matrix&, int64_t, int, int64_t, int, Panel&);

template <PackFn pack, MatmulRowsFn rows_fallback>
void gemm_q8x(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
              float* y, int64_t ldy) {
  if (n_tokens < kMinGemmTokens || !pack16_fits(w.row_stride)) {
    rows_fallback(w, r0, r1, act, act_stride, n_tokens, y, ldy);
    return;
  }
  const auto* act_bytes = static_cast<const uint8_t*>(act);
  const int64_t n_blocks = w.n_cols / 32;
  Panel panel;
  for (int64_t r = r0; r < r1; r += kPanelRows) {
    const int n = static_cast<int>(std::min<int64_t>(kPanelRows, r1 - r));
    const auto mask0 = static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1);
    const auto mask1 = static_cast<__mmask16>(n <= 16 ? 0 : n >= 32 ? 0xffff : (1u << (n - 16)) - 1);
    for (int64_t b0 = 0; b0 < n_blocks; b0 += kChunkBlocks) {
      const int nb = static_cast<int>(std::min<int64_t>(kChunkBlocks, n_blocks - b0));
      pack(w, r, n, b0, nb, panel);
      for (int64_t t = 0; t < n_tokens; t += kTileTokens) {
        const int nt = static_cast<int>(std::min<int64_t>(kTileTokens, n_tokens - t));
        kTiles[nt](panel, nb, b0, act_bytes + t * act_stride, act_stride, w.n_cols, b0 == 0, y + t * ldy + r, ldy,
                   mask0, mask1);
      }
    }
  }
}

}  // namespace

void add_avx512vnni_kernels(KernelTable& table) {
  add_x86_row_kernels(table, "vec_dot_q8_0_q8_0_avx512vnni", "vec_dot_q4_0_q8_0_avx512vnni",
                      "vec_dot_q4_k_q8_k_avx512vnni", "vec_dot_q5_k_q8_k_avx512vnni",
                      "vec_dot_q6_k_q8_k_avx512vnni",
                      "vec_dot_f32_f32_avx512vnni", "vec_dot_f16_f32_avx512vnni", "vec_dot_bf16_f32_avx512vnni");
  table.by_type[static_cast<int>(DType::Q8_0)].name = "gemm_q8_0_q8_0_avx512vnni";
  table.by_type[static_cast<int>(DType::Q8_0)].rows = gemm_q8x<pack_panel<false>, rows_q8_0_q8x>;
  table.by_type[static_cast<int>(DType::Q4_0)].name = "gemm_q4_0_q8_0_avx512vnni";
  table.by_type[static_cast<int>(DType::Q4_0)].rows = gemm_q8x<pack_panel<true>, rows_q4_0_q8x>;
  // Interleaved Q8_0 / Q4_0 (load-time layout): GEMV for up to 3 tokens, the same GEMM above it.
  table.by_type[static_cast<int>(DType::Q8_0)].name_x16 = "gemm_q8_0_x16_q8_0_avx512vnni";
  table.by_type[static_cast<int>(DType::Q8_0)].rows_x16 =
      gemm_q8x<pack_panel_x16<Panel, kPanelRows, false, 0>, rows_q8_0_x16_gemv>;
  table.by_type[static_cast<int>(DType::Q4_0)].name_x16 = "gemm_q4_0_x16_q8_0_avx512vnni";
  table.by_type[static_cast<int>(DType::Q4_0)].rows_x16 =
      gemm_q8x<pack_panel_x16<Panel, kPanelRows, true, 120>, rows_q4_0_x16_gemv>;
  // K-quant prefill GEMM (gemm_kquant_x86.hpp); the row kernels below 4 tokens.
  add_x86_kquant_gemm(table, "gemm_q4_k_q8_k_avx512vnni", "gemm_q5_k_q8_k_avx512vnni", "gemm_q6_k_q8_k_avx512vnni");
  // Interleaved Q4_K / Q6_K (load-time layout): GEMV for up to 3 tokens, the same GEMM above it.
  add_x86_kquant_x16<gemm_kquant<quant::block_q4_k, rows_q4_k_q8_k>, gemm_kquant<quant::block_q6_k, rows_q6_k_q8_k>>(
      table, "gemm_q4_k_x16_q8_k_avx512vnni", "gemm_q6_k_x16_q8_k_avx512vnni");
  add_x86_q4_1_q5_kernels(table, "vec_dot_q4_1_q8_1_avx512vnni", "vec_dot_q5_0_q8_0_avx512vnni", "vec_dot_q5_1_q8_1_avx512vnni");
  // Q4_1 / Q5_0 / Q5_1 prefill GEMM (gemm_q45_x86.hpp); the row kernels above below 4 tokens.
  add_x86_q45_gemm(table, "gemm_q4_1_q8_1_avx512vnni", "gemm_q5_0_q8_0_avx512vnni", "gemm_q5_1_q8_1_avx512vnni");
}

}  // namespace slm::kernels::detail
