// Kernels compiled with AVX-512 (F/BW/VL/VNNI) + AMX-TILE/AMX-INT8 flags (see CMakeLists.txt):
// the Q8_0 / Q4_0 GEMM on AMX tiles for prefill. Reached only when cpu.cpp found AMX-INT8 and
// Linux granted this process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM).
#include <algorithm>

#include "kernels/x86_simd.hpp"
#include "kernels/x16_x86.hpp"
#include "kernels/gemm_kquant_x86.hpp"
#include "kernels/gemm_kquant_amx.hpp"

// GCC spells the feature macros __AMX_TILE__ / __AMX_INT8__, clang __AMXTILE__ / __AMXINT8__.
#if !(defined(__AMX_TILE__) || defined(__AMXTILE__)) || !(defined(__AMX_INT8__) || defined(__AMXINT8__)) || \
    !defined(__AVX512VNNI__)
#error "kernels_amx.cpp needs -mamx-tile -mamx-int8 and the AVX-512 VNNI flags"
#endif

// GCC 12 reports the _mm512_undefined_* operand inside its own intrinsics as maybe-uninitialized
// (a false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace slm::kernels::detail {
namespace {

// ============================================================================================
// One tdpbssd multiplies a tile A of M x 32 signed bytes (M tokens, one 32-code block of the
// activation rows, loaded in place from the q8x scratch with the row stride) by a tile B of
// 8 x 64 bytes holding 16 weight rows in the "4 codes of each row per 64-byte line" layout,
// and adds the M x 16 int32 block dot products to C. Per block the int32 results are stored,
// converted and accumulated in float:  acc[t][row] = fma(float(C[t][row]), dw[row] * da[t], ...)
// in block order, so a result depends only on its row and token (any thread split, any tile).
// The block scales make K = 32 per tile product (half of AMX's 64); the float work per block
// (cvt + mul + fma per 16 outputs) and the tile latencies (load -> product -> store -> vector
// load) bound this kernel, so the tile work is pipelined a block ahead of the vector pass.
// (In A, the token rows are the q8x activation rows themselves: no repacking of activations.)

constexpr int kPanelRows = 32;    // two B tiles of 16 rows
// 64 blocks (2048 codes) per chunk: 64 KiB of packed codes + 8 KiB of scales on the stack; K up
// to 2048 (1536 here) needs one chunk, so the outputs are written once.
constexpr int kChunkBlocks = 64;
// A / C tile rows: 16 tokens (full tiles: each tile instruction does twice the work of 8 for
// about the same latency); the 16 x 32 float accumulators live in L1.
constexpr int kTileTokens = 16;
constexpr int64_t kMinGemmTokens = 4;

struct Panel {
  // codes[((b * 8 + g) * 2 + half) * 64 + row_in_half * 4 + 0..3] = w[16 * half + row][32b + 4g + 0..3]
  alignas(64) int8_t codes[kChunkBlocks * 8 * 2 * 64];
  alignas(64) float scales[kChunkBlocks * kPanelRows];
};

// Rows [r0, r0 + n) blocks [b0, b0 + nb) -> panel as signed codes (tdpbssd): Q8_0 as stored,
// Q4_0's nibble q as q - 8. Two 16-row gathers per block (x86_simd.hpp).
template <bool kQ4>
void pack_panel_signed(const Matrix& w, int64_t r0, int n, int64_t b0, int nb, Panel& p) {
  for (int half = 0; half < 2; ++half) {
    const int rows = std::max(1, std::min(16, n - 16 * half));
    const int64_t first = std::min<int64_t>(r0 + 16 * half, r0 + n - 1);
    const Pack16 pk{static_cast<const uint8_t*>(w.data) + static_cast<size_t>(first) * w.row_stride,
                    w.row_stride, n > 16 * half ? rows : 1, reinterpret_cast<uint8_t*>(p.codes) + half * 64,
                    8 * 128, 128, p.scales + half * 16, kPanelRows};
    if constexpr (kQ4) pack16_q4_0(pk, b0, nb, -8);
    else pack16_q8_0(pk, b0, nb, 0);
    if (n <= 16 * half)
      for (int b = 0; b < nb; ++b) _mm512_storeu_ps(p.scales + b * kPanelRows + 16, _mm512_setzero_ps());
  }
}

// The tile configuration (Intel SDM, LDTILECFG): palette 1, bytes per row and rows per tile.
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

// Tile configuration for tiles of `tokens` rows (16, or the n_tokens % 16 tail): two sets
// {A, C rows 0-15, C rows 16-31} = {0, 3, 4} and {5, 6, 7} for even and odd blocks, so that the
// tile unit can work on two blocks at once; 1/2 = B for rows 0-15 / 16-31 (8 x 64 B).
void configure_tiles(int tokens) {
  TileConfig cfg{};
  cfg.palette_id = 1;
  auto set = [&](int tile, int rows, int bytes) {
    cfg.rows[tile] = static_cast<uint8_t>(rows);
    cfg.colsb[tile] = static_cast<uint16_t>(bytes);
  };
  set(0, tokens, 32);
  set(5, tokens, 32);
  set(1, 8, 64);
  set(2, 8, 64);
  set(3, tokens, 64);
  set(4, tokens, 64);
  set(6, tokens, 64);
  set(7, tokens, 64);
  // GCC 12 may drop the stores above as dead (it does not see that ldtilecfg reads them)
  // unless a compiler barrier comes first.
  asm volatile("" ::: "memory");
  _tile_loadconfig(&cfg);
}

// The tile work of one block: C = A (tokens x 32 codes) . B (32 codes x 16 rows) for both row
// halves, left in the C tiles of set kOdd; store_block writes them out (token-major, 16 int32
// per token). Split so that the stores of block b come one block after its products: the tile
// unit's latency is hidden behind the next block's products and the vector pass.
// (The tile numbers must be literals: the intrinsics paste them into the instruction text.)
template <bool kOdd>
inline void compute_block(const int8_t* codes, const uint8_t* a, size_t act_stride) {
  if constexpr (kOdd) {
    _tile_loadd(5, a, static_cast<long>(act_stride));
    _tile_loadd(1, codes, 128);
    _tile_loadd(2, codes + 64, 128);
    _tile_zero(6);
    _tile_zero(7);
    _tile_dpbssd(6, 5, 1);
    _tile_dpbssd(7, 5, 2);
  } else {
    _tile_loadd(0, a, static_cast<long>(act_stride));
    _tile_loadd(1, codes, 128);
    _tile_loadd(2, codes + 64, 128);
    _tile_zero(3);
    _tile_zero(4);
    _tile_dpbssd(3, 0, 1);
    _tile_dpbssd(4, 0, 2);
  }
}

template <bool kOdd>
inline void store_block(int32_t* c0, int32_t* c1) {
  if constexpr (kOdd) {
    _tile_stored(6, c0, 64);
    _tile_stored(7, c1, 64);
  } else {
    _tile_stored(3, c0, 64);
    _tile_stored(4, c1, 64);
  }
}

// 32 rows x NT tokens over the panel's nb blocks, float accumulators in L1 (16 tokens x 32 rows
// do not fit in registers). Software-pipelined over three blocks: in step b the tile unit stores
// block b (one block after its products, so their latency is hidden) and starts block b + 1,
// while the vector units convert and scale block b - 1.
template <int NT>
void amx_tile(const Panel& p, int nb, int64_t b0, const uint8_t* act, size_t act_stride, int64_t n_cols,
              bool first_chunk, float* y, int64_t ldy, __mmask16 mask0, __mmask16 mask1) {
  alignas(64) int32_t c[3][2][kTileTokens * 16];  // [block % 3][row half][token * 16 + row]
  alignas(64) float acc[NT][kPanelRows];
  for (int t = 0; t < NT; ++t) {
    _mm512_store_ps(acc[t], first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask0, y + t * ldy));
    _mm512_store_ps(acc[t] + 16, first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask1, y + t * ldy + 16));
  }
  const float* da = reinterpret_cast<const float*>(act + n_cols) + b0;  // d[blk] of token 0
  const uint8_t* a = act + 32 * b0;
  auto compute = [&](int b) {
    if (b & 1) compute_block<true>(p.codes + b * 8 * 128, a + 32 * b, act_stride);
    else compute_block<false>(p.codes + b * 8 * 128, a + 32 * b, act_stride);
  };
  auto store = [&](int b) {
    if (b & 1) store_block<true>(c[b % 3][0], c[b % 3][1]);
    else store_block<false>(c[b % 3][0], c[b % 3][1]);
  };
  compute(0);
  for (int b = 0; b <= nb; ++b) {
    if (b < nb) store(b);
    if (b + 1 < nb) compute(b + 1);
    // The A tiles gather 16 token rows from L2; bring block b + 4's lines to L1 ahead of them.
    if (b + 4 < nb) {
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t)
        _mm_prefetch(reinterpret_cast<const char*>(a + t * act_stride + 32 * (b + 4)), _MM_HINT_T0);
    }
    if (b == 0) continue;
    const int v = b - 1;  // the block the vector units scale
    const int32_t* c0 = c[v % 3][0];
    const int32_t* c1 = c[v % 3][1];
    const __m512 dw0 = _mm512_load_ps(&p.scales[v * kPanelRows]);
    const __m512 dw1 = _mm512_load_ps(&p.scales[v * kPanelRows + 16]);
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      const __m512 d = _mm512_broadcastss_ps(
          _mm_load_ss(reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(da + v) + t * act_stride)));
      _mm512_store_ps(acc[t], _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c0 + 16 * t)),
                                              _mm512_mul_ps(dw0, d), _mm512_load_ps(acc[t])));
      _mm512_store_ps(acc[t] + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c1 + 16 * t)),
                                                   _mm512_mul_ps(dw1, d), _mm512_load_ps(acc[t] + 16)));
    }
  }
  for (int t = 0; t < NT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, mask0, _mm512_load_ps(acc[t]));
    _mm512_mask_storeu_ps(y + t * ldy + 16, mask1, _mm512_load_ps(acc[t] + 16));
  }
}

using TileFn = void (*)(const Panel&, int, int64_t, const uint8_t*, size_t, int64_t, bool, float*, int64_t,
                        __mmask16, __mmask16);
constexpr TileFn kTiles[kTileTokens + 1] = {
    nullptr,      amx_tile<1>,  amx_tile<2>,  amx_tile<3>,  amx_tile<4>,  amx_tile<5>,
    amx_tile<6>,  amx_tile<7>,  amx_tile<8>,  amx_tile<9>,  amx_tile<10>, amx_tile<11>,
    amx_tile<12>, amx_tile<13>, amx_tile<14>, amx_tile<15>, amx_tile<16>};

using PackFn = void (*)(const Matrix&, int64_t, int, int64_t, int, Panel&);

template <PackFn pack, MatmulRowsFn rows_fallback>
void gemm_amx(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
              float* y, int64_t ldy) {
  if (n_tokens < kMinGemmTokens || !pack16_fits(w.row_stride)) {
    rows_fallback(w, r0, r1, act, act_stride, n_tokens, y, ldy);
    return;
  }
  const auto* act_bytes = static_cast<const uint8_t*>(act);
  const int64_t n_blocks = w.n_cols / 32;
  int configured = 0;  // rows the tiles are configured for
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
        if (nt != configured) {  // at most twice per chunk: full tiles, then the tail
          configure_tiles(nt);
          configured = nt;
        }
        kTiles[nt](panel, nb, b0, act_bytes + t * act_stride, act_stride, w.n_cols, b0 == 0, y + t * ldy + r, ldy,
                   mask0, mask1);
      }
    }
  }
  _tile_release();
}

}  // namespace

void add_amx_kernels(KernelTable& table) {
  TypeKernels& q8 = table.by_type[static_cast<int>(DType::Q8_0)];
  q8 = TypeKernels{"gemm_q8_0_q8_0_amx", act_q8x_row_bytes, quantize_act_q8x, gemm_amx<pack_panel_signed<false>, rows_q8_0_q8x>};
  TypeKernels& q4 = table.by_type[static_cast<int>(DType::Q4_0)];
  q4 = TypeKernels{"gemm_q4_0_q8_0_amx", act_q8x_row_bytes, quantize_act_q8x, gemm_amx<pack_panel_signed<true>, rows_q4_0_q8x>};
  q8.name_x16 = "gemm_q8_0_x16_q8_0_amx";
  q8.rows_x16 = gemm_amx<pack_panel_x16<Panel, kPanelRows, false, -128>, rows_q8_0_x16_gemv>;
  q4.name_x16 = "gemm_q4_0_x16_q8_0_amx";
  q4.rows_x16 = gemm_amx<pack_panel_x16<Panel, kPanelRows, true, -8>, rows_q4_0_x16_gemv>;
  add_amx_kquant_gemm(table);  // K-quants: scales folded into the tiles (gemm_kquant_amx.hpp)
}

}  // namespace slm::kernels::detail
