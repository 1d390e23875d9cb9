// Internal: the K-quant GEMM (Q4_K, Q5_K, Q6_K x Q8_K) on AMX tiles, for prefill. Include after
// x86_simd.hpp and gemm_kquant_x86.hpp, only from kernels_amx.cpp (-mamx-tile -mamx-int8 + the
// AVX-512 VNNI flags).
//
// The sub-block scales are folded into the weights at packing time, so that one tile product
// runs over a whole 64-code K step and the vector units touch each output once per 256-code
// super-block instead of once per sub-block:
//     v = sc_j * q           (Q4_K, Q5_K: 0..1953)      v = sc_s * (q - 32)    (Q6_K: |v| <= 4096)
// v fits in int16; its two bytes v = lo + 256 * hi (lo unsigned, hi signed: the two's-complement
// bytes) go into two B tiles, and per super-block
//     isum = A.lo (tdpbsud) + 256 * A.hi (tdpbssd)  =  sum_k v_k a_k
// which is the reference's integer (sum_j sc_j sum_l q a, or sum_s sc_s sum_l (q - 32) a),
// exactly. The mins term and the float step are gemm_kquant_x86.hpp's, so the outputs equal
// the scalar table bit for bit as well.
#pragma once

#if !(defined(__AMX_TILE__) || defined(__AMXTILE__)) || !(defined(__AMX_INT8__) || defined(__AMXINT8__))
#error "gemm_kquant_amx.hpp needs -mamx-tile -mamx-int8"
#endif

namespace slm::kernels::detail {
namespace {

// Super-blocks per packed chunk: 4 x 17 KiB (L2). Measured a little faster than 2 (L1-sized),
// as the tile work of one super-block overlaps the vector pass of the previous one only within
// a chunk.
constexpr int kKqAmxChunk = 4;
constexpr int kKqAmxTileTokens = 16;

template <class F>
struct KqAmxSb {
  alignas(64) uint8_t lo[2][64 * 64];  // [row half][group G = k / 4][row * 4 + k % 4]: low bytes of v
  alignas(64) uint8_t hi[2][64 * 64];  // the high bytes, same layout
  alignas(64) int32_t pairs[F::kPairs * kKqPanelRows];
  alignas(64) float d[kKqPanelRows];
  alignas(64) float dmin[kKqPanelRows];
};

template <class F>
struct KqAmxPanel {
  KqAmxSb<F> sb[kKqAmxChunk];
};

// Packs through the VNNI panel (codes, per-row scales), then scales and splits the codes.
template <class Block>
void kq_amx_pack(const Matrix& w, int64_t r, int n, int64_t sb0, int nsb, KqPanelSb<KqFormat<Block>>& tmp,
                 KqAmxPanel<KqFormat<Block>>& p) {
  using F = KqFormat<Block>;
  const __m512i m00ff = _mm512_set1_epi16(0x00ff), mff00 = _mm512_set1_epi16(static_cast<short>(0xff00));
  const __m512i lo16 = _mm512_set1_epi32(0xffff);
  for (int s = 0; s < nsb; ++s) {
    kq_pack_panel<Block>(w, r, n, sb0 + s, 1, &tmp);  // one super-block at a time
    const KqPanelSb<F>& src = tmp;
    KqAmxSb<F>& dst = p.sb[s];
    for (int half = 0; half < 2; ++half) {
      for (int G = 0; G < F::kSubs * F::kGroups; ++G) {
        const int j = G / F::kGroups;
        const __m512i c = _mm512_load_si512(src.codes + G * 128 + 64 * half);
        const __m512i sc = _mm512_load_si512(src.sc + j * kKqPanelRows + 16 * half);
        const __m512i sc16 = _mm512_or_si512(_mm512_and_si512(sc, lo16), _mm512_slli_epi32(sc, 16));
        __m512i ev = _mm512_and_si512(c, m00ff), od = _mm512_srli_epi16(c, 8);
        if constexpr (!F::kMins) {
          ev = _mm512_sub_epi16(ev, _mm512_set1_epi16(32));
          od = _mm512_sub_epi16(od, _mm512_set1_epi16(32));
        }
        const __m512i e = _mm512_mullo_epi16(ev, sc16), o = _mm512_mullo_epi16(od, sc16);
        _mm512_store_si512(dst.lo[half] + G * 64, _mm512_or_si512(_mm512_and_si512(e, m00ff), _mm512_slli_epi16(o, 8)));
        _mm512_store_si512(dst.hi[half] + G * 64, _mm512_or_si512(_mm512_srli_epi16(e, 8), _mm512_and_si512(o, mff00)));
      }
    }
    std::memcpy(dst.pairs, src.pairs, sizeof dst.pairs);
    std::memcpy(dst.d, src.d, sizeof dst.d);
    std::memcpy(dst.dmin, src.dmin, sizeof dst.dmin);
  }
}

struct alignas(64) KqTileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(KqTileConfig) == 64, "LDTILECFG reads 64 bytes");

// Tiles: 0 = A (tokens x 64 activation codes); 1, 2, 7 = B (16 groups x 64 bytes); 3, 4 = C lo/hi
// of rows 0-15, 5, 6 = C lo/hi of rows 16-31 (tokens x 16 int32).
inline void kq_amx_configure(int tokens) {
  KqTileConfig cfg{};
  cfg.palette_id = 1;
  for (int t : {0, 3, 4, 5, 6}) {
    cfg.rows[t] = static_cast<uint8_t>(tokens);
    cfg.colsb[t] = 64;
  }
  for (int t : {1, 2, 7}) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  asm volatile("" ::: "memory");  // GCC 12 may drop the stores ldtilecfg reads otherwise
  _tile_loadconfig(&cfg);
}

// 32 rows x M tokens (tiles configured for M) over nsb super-blocks from sb0.
template <class F>
void kq_amx_tile(const KqAmxPanel<F>& p, int nsb, int64_t sb0, const uint8_t* act, size_t act_stride, int M,
                 bool first_chunk, float* y, int64_t ldy, __mmask16 mask0, __mmask16 mask1) {
  alignas(64) float acc[kKqAmxTileTokens][kKqPanelRows];
  for (int t = 0; t < M; ++t) {
    _mm512_store_ps(acc[t], first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask0, y + t * ldy));
    _mm512_store_ps(acc[t] + 16, first_chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask1, y + t * ldy + 16));
  }
  const auto stride = static_cast<long>(act_stride);
  // Tile work of super-block s into c[s & 1]; issued one super-block ahead of the vector pass, so
  // the tile unit computes s + 1 while the vector units finish s.
  alignas(64) int32_t c[2][4][kKqAmxTileTokens * 16];
  auto issue = [&](int s) {
    const KqAmxSb<F>& ps = p.sb[s];
    const uint8_t* aq = act + static_cast<size_t>(sb0 + s) * kKqActBlockBytes + kKqActQs;
    _tile_zero(3);
    _tile_zero(4);
    _tile_zero(5);
    _tile_zero(6);
    for (int kk = 0; kk < 4; ++kk) {
      _tile_loadd(0, aq + 64 * kk, stride);
      _tile_loadd(1, ps.lo[0] + kk * 1024, 64);
      _tile_loadd(2, ps.hi[0] + kk * 1024, 64);
      _tile_loadd(7, ps.lo[1] + kk * 1024, 64);
      _tile_dpbsud(3, 0, 1);
      _tile_dpbssd(4, 0, 2);
      _tile_dpbsud(5, 0, 7);
      _tile_loadd(1, ps.hi[1] + kk * 1024, 64);
      _tile_dpbssd(6, 0, 1);
    }
    int32_t(*cs)[kKqAmxTileTokens * 16] = c[s & 1];
    _tile_stored(3, cs[0], 64);
    _tile_stored(4, cs[1], 64);
    _tile_stored(5, cs[2], 64);
    _tile_stored(6, cs[3], 64);
  };
  issue(0);
  for (int s = 0; s < nsb; ++s) {
    if (s + 1 < nsb) issue(s + 1);
    const KqAmxSb<F>& ps = p.sb[s];
    const int32_t(*cs)[kKqAmxTileTokens * 16] = c[s & 1];
    const size_t a_off = static_cast<size_t>(sb0 + s) * kKqActBlockBytes;
    const __m512 dw0 = _mm512_load_ps(ps.d), dw1 = _mm512_load_ps(ps.d + 16);
    for (int t = 0; t < M; ++t) {
      const uint8_t* ab = act + t * act_stride + a_off;
      const __m512 da = _mm512_set1_ps(*reinterpret_cast<const float*>(ab));
      const __m512i i0 = _mm512_add_epi32(_mm512_load_si512(cs[0] + 16 * t), _mm512_slli_epi32(_mm512_load_si512(cs[1] + 16 * t), 8));
      const __m512i i1 = _mm512_add_epi32(_mm512_load_si512(cs[2] + 16 * t), _mm512_slli_epi32(_mm512_load_si512(cs[3] + 16 * t), 8));
      const __m512 d0 = _mm512_mul_ps(dw0, da), d1 = _mm512_mul_ps(dw1, da);
      if constexpr (F::kMins) {
        alignas(16) int32_t bs[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(bs),
                        _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ab + kKqActBsums)),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(ab + kKqActBsums + 16))));
        __m512i p0 = _mm512_setzero_si512(), p1 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int k = 0; k < F::kPairs; ++k) {
          const __m512i b = _mm512_set1_epi32(bs[k]);
          p0 = _mm512_dpwssd_epi32(p0, _mm512_load_si512(ps.pairs + k * kKqPanelRows), b);
          p1 = _mm512_dpwssd_epi32(p1, _mm512_load_si512(ps.pairs + k * kKqPanelRows + 16), b);
        }
        const __m512 dm0 = _mm512_mul_ps(_mm512_load_ps(ps.dmin), da);
        const __m512 dm1 = _mm512_mul_ps(_mm512_load_ps(ps.dmin + 16), da);
        const __m512 r0 = _mm512_sub_ps(_mm512_mul_ps(d0, _mm512_cvtepi32_ps(i0)), _mm512_mul_ps(dm0, _mm512_cvtepi32_ps(p0)));
        const __m512 r1 = _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(i1)), _mm512_mul_ps(dm1, _mm512_cvtepi32_ps(p1)));
        _mm512_store_ps(acc[t], _mm512_add_ps(_mm512_load_ps(acc[t]), r0));
        _mm512_store_ps(acc[t] + 16, _mm512_add_ps(_mm512_load_ps(acc[t] + 16), r1));
      } else {
        _mm512_store_ps(acc[t], _mm512_add_ps(_mm512_load_ps(acc[t]), _mm512_mul_ps(d0, _mm512_cvtepi32_ps(i0))));
        _mm512_store_ps(acc[t] + 16, _mm512_add_ps(_mm512_load_ps(acc[t] + 16), _mm512_mul_ps(d1, _mm512_cvtepi32_ps(i1))));
      }
    }
  }
  for (int t = 0; t < M; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, mask0, _mm512_load_ps(acc[t]));
    _mm512_mask_storeu_ps(y + t * ldy + 16, mask1, _mm512_load_ps(acc[t] + 16));
  }
}

template <class Block, MatmulRowsFn rows_fallback>
void gemm_kquant_amx(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
                     float* y, int64_t ldy) {
  using F = KqFormat<Block>;
  if (n_tokens < kKqMinGemmTokens || !pack16_fits(w.row_stride)) {
    rows_fallback(w, r0, r1, act, act_stride, n_tokens, y, ldy);
    return;
  }
  const auto* act_bytes = static_cast<const uint8_t*>(act);
  const int64_t n_sb = w.n_cols / 256;
  KqPanelSb<F> tmp;
  KqAmxPanel<F> panel;
  int configured = 0;
  const int64_t k_block = kq_k_block(n_sb, n_tokens, kKqAmxChunk);
  for (int64_t kb = 0; kb < n_sb; kb += k_block) {
    const int64_t kb_end = std::min(n_sb, kb + k_block);
    for (int64_t r = r0; r < r1; r += kKqPanelRows) {
      const int n = static_cast<int>(std::min<int64_t>(kKqPanelRows, r1 - r));
      const auto mask0 = static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1);
      const auto mask1 = static_cast<__mmask16>(n <= 16 ? 0 : n >= 32 ? 0xffff : (1u << (n - 16)) - 1);
      for (int64_t sb0 = kb; sb0 < kb_end; sb0 += kKqAmxChunk) {
        const int nsb = static_cast<int>(std::min<int64_t>(kKqAmxChunk, kb_end - sb0));
        kq_amx_pack<Block>(w, r, n, sb0, nsb, tmp, panel);
        for (int64_t t = 0; t < n_tokens; t += kKqAmxTileTokens) {
          const int nt = static_cast<int>(std::min<int64_t>(kKqAmxTileTokens, n_tokens - t));
          if (nt != configured) {  // at most twice per chunk: full tiles, then the tail
            kq_amx_configure(nt);
            configured = nt;
          }
          kq_amx_tile<F>(panel, nsb, sb0, act_bytes + t * act_stride, act_stride, nt, sb0 == 0, y + t * ldy + r,
                         ldy, mask0, mask1);
        }
      }
    }
  }
  _tile_release();
}

inline void add_amx_kquant_gemm(KernelTable& table) {
  TypeKernels& q4 = table.by_type[static_cast<int>(DType::Q4_K)];
  q4.name = "gemm_q4_k_q8_k_amx";
  q4.rows = gemm_kquant_amx<quant::block_q4_k, rows_q4_k_q8_k>;
  TypeKernels& q5 = table.by_type[static_cast<int>(DType::Q5_K)];
  q5.name = "gemm_q5_k_q8_k_amx";
  q5.rows = gemm_kquant_amx<quant::block_q5_k, rows_q5_k_q8_k>;
  TypeKernels& q6 = table.by_type[static_cast<int>(DType::Q6_K)];
  q6.name = "gemm_q6_k_q8_k_amx";
  q6.rows = gemm_kquant_amx<quant::block_q6_k, rows_q6_k_q8_k>;
  // Interleaved Q4_K / Q6_K: the AVX-512 VNNI GEMV, and these AMX GEMMs from 4 tokens on.
  add_x86_kquant_x16<gemm_kquant_amx<quant::block_q4_k, rows_q4_k_q8_k>, gemm_kquant_amx<quant::block_q6_k, rows_q6_k_q8_k>>(
      table, "gemm_q4_k_x16_q8_k_amx", "gemm_q6_k_x16_q8_k_amx");
}

}  // namespace
}  // namespace slm::kernels::detail
