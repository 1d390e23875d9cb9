// Internal: kernels on the interleaved Q4_K / Q6_K layout (kernels.hpp Layout::x16) with AVX-512
// VNNI: the decode GEMV (1-3 tokens), and for 4 tokens and more the level's plain K-quant GEMM
// on rows de-interleaved into a per-thread buffer. Included by gemm_kquant_x86.hpp (so by
// kernels_avx512vnni.cpp and kernels_amx.cpp), only from files compiled with -mavx512f
// -mavx512bw -mavx512vl -mavx512vnni.
//
// Arithmetic: per row and token the integer sums and float steps of vec_dot_q4_k_q8_k_ref /
// vec_dot_q6_k_q8_k_ref (each sub-block's exact integer dot times its scale, summed; Q4_K's
// mins against the bsums; acc + (d * sumi - dmin * summ) or acc + d * sumi per super-block in
// order), so GEMV, GEMM and the scalar reference give the same bits.
#pragma once

#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "x16_kquant_x86.hpp needs -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/x16_x86.hpp"  // rows_x16_gemv: the row-group loop shared with Q4_0 / Q8_0

namespace slm::kernels::detail {

// interleave.cpp: rows [r0, r0 + n) (whole groups of 16) of an interleaved K-quant matrix back
// to plain rows, row_stride bytes apart, at dst.
void deinterleave_x16_rows(const Matrix& w, int64_t r0, int n, uint8_t* dst);

namespace {

constexpr size_t kKqX16Q4Record = 16 * sizeof(quant::block_q4_k);  // 2304
constexpr size_t kKqX16Q6Record = 16 * sizeof(quant::block_q6_k);  // 3360
constexpr size_t kKqX16Prefetch = 1024;

inline __m512i kq_bcast(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline void kq_prefetch_record(const uint8_t* rec, size_t bytes) {
  for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(rec + kKqX16Prefetch + off), _MM_HINT_T0);
}

// NG groups of 16 rows (group_bytes apart) x one token of Q8_K activations.
template <int NG>
inline void gemv_q4_k_x16(const uint8_t* group0, size_t group_bytes, const uint8_t* act_row, int64_t n_cols,
                          float* out) {
  const auto* act = reinterpret_cast<const quant::block_q8_k*>(act_row);
  const __m512i low4 = _mm512_set1_epi8(0x0f), high4 = _mm512_set1_epi8(static_cast<char>(0xf0));
  const __m512i six = _mm512_set1_epi32(0x3f3f3f3f), four = _mm512_set1_epi32(0x0f0f0f0f),
                two = _mm512_set1_epi32(0x03030303), byte = _mm512_set1_epi32(0xff),
                hi16 = _mm512_set1_epi32(0xff0000);
  __m512 acc[NG];
  for (int g = 0; g < NG; ++g) acc[g] = _mm512_setzero_ps();
  const int64_t n_sb = n_cols / 256;
  for (int64_t sb = 0; sb < n_sb; ++sb) {
    const quant::block_q8_k& a = act[sb];
    // (bsum32_2k, bsum32_2k+1) as two int16 per dword: the mins' partners in vpdpwssd.
    __m512i bpair[4];
    for (int k = 0; k < 4; ++k) {
      const int b0 = a.bsums[4 * k] + a.bsums[4 * k + 1], b1 = a.bsums[4 * k + 2] + a.bsums[4 * k + 3];
      bpair[k] = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(b0)) |
                                                        static_cast<uint32_t>(static_cast<uint16_t>(b1)) << 16));
    }
    const __m512 da = _mm512_set1_ps(a.d);
#pragma GCC unroll 4
    for (int g = 0; g < NG; ++g) {
      const uint8_t* rec = group0 + g * group_bytes + static_cast<size_t>(sb) * kKqX16Q4Record;
      kq_prefetch_record(rec, kKqX16Q4Record);
      const __m512i w0 = _mm512_loadu_si512(rec + 2048), w1 = _mm512_loadu_si512(rec + 2112),
                    w2 = _mm512_loadu_si512(rec + 2176);
      const __m512i sc_lo = _mm512_and_si512(w0, six), m_lo = _mm512_and_si512(w1, six);
      const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(w2, four),
                                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w0, 6), two), 4));
      const __m512i m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), four),
                                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w1, 6), two), 4));
      __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
          const __m512i v = _mm512_loadu_si512(rec + 64 * (8 * c + i));
          lo = _mm512_dpbusd_epi32(lo, _mm512_and_si512(v, low4), kq_bcast(a.qs + 64 * c + 4 * i));
          hi = _mm512_dpbusd_epi32(hi, _mm512_and_si512(v, high4), kq_bcast(a.qs + 64 * c + 32 + 4 * i));
        }
        const __m512i scs = c < 2 ? sc_lo : sc_hi;  // sub-blocks 2c, 2c + 1: bytes 2(c%2), 2(c%2)+1
        const __m512i s0 = _mm512_and_si512(_mm512_srli_epi32(scs, 16 * (c % 2)), byte);
        const __m512i s1 = _mm512_and_si512(_mm512_srli_epi32(scs, 16 * (c % 2) + 8), byte);
        isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(lo, s0));
        isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(_mm512_srai_epi32(hi, 4), s1));  // hi: 16 x the dot
      }
      __m512i msum = _mm512_setzero_si512();
      const __m512i mm[2] = {m_lo, m_hi};
      for (int h = 0; h < 2; ++h) {
        const __m512i p01 = _mm512_or_si512(_mm512_and_si512(mm[h], byte), _mm512_and_si512(_mm512_slli_epi32(mm[h], 8), hi16));
        const __m512i p23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(mm[h], 16), byte),
                                            _mm512_and_si512(_mm512_srli_epi32(mm[h], 8), hi16));
        msum = _mm512_dpwssd_epi32(msum, p01, bpair[2 * h]);
        msum = _mm512_dpwssd_epi32(msum, p23, bpair[2 * h + 1]);
      }
      const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 2240))), da);
      const __m512 dm = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 2272))), da);
      acc[g] = _mm512_add_ps(acc[g], _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(isum)),
                                                   _mm512_mul_ps(dm, _mm512_cvtepi32_ps(msum))));
    }
  }
  for (int g = 0; g < NG; ++g) _mm512_storeu_ps(out + 16 * g, acc[g]);
}

template <int NG>
inline void gemv_q6_k_x16(const uint8_t* group0, size_t group_bytes, const uint8_t* act_row, int64_t n_cols,
                          float* out) {
  const auto* act = reinterpret_cast<const quant::block_q8_k*>(act_row);
  const __m512i low4 = _mm512_set1_epi8(0x0f), hi2 = _mm512_set1_epi8(0x30);
  __m512 acc[NG];
  for (int g = 0; g < NG; ++g) acc[g] = _mm512_setzero_ps();
  const int64_t n_sb = n_cols / 256;
  for (int64_t sb = 0; sb < n_sb; ++sb) {
    const quant::block_q8_k& a = act[sb];
    const __m512 da = _mm512_set1_ps(a.d);
#pragma GCC unroll 4
    for (int g = 0; g < NG; ++g) {
      const uint8_t* rec = group0 + g * group_bytes + static_cast<size_t>(sb) * kKqX16Q6Record;
      kq_prefetch_record(rec, kKqX16Q6Record);
      __m512i isum = _mm512_setzero_si512();
      for (int h = 0; h < 2; ++h) {
        for (int q = 0; q < 2; ++q) {
          // Sub-block 8h + 2k + q's sum starts at -32 * its activation sum: the codes' offset.
          __m512i s[4];
#pragma GCC unroll 4
          for (int k = 0; k < 4; ++k) s[k] = _mm512_set1_epi32(-32 * a.bsums[8 * h + 2 * k + q]);
#pragma GCC unroll 4
          for (int i = 4 * q; i < 4 * q + 4; ++i) {
            const uint8_t* l3 = rec + 64 * (24 * h + 3 * i);
            const __m512i qa = _mm512_loadu_si512(l3), qb = _mm512_loadu_si512(l3 + 64),
                          qh = _mm512_loadu_si512(l3 + 128);
            // code = low nibble | 2 high bits << 4 (0xF8: A | (B & C))
            const __m512i c0 = _mm512_ternarylogic_epi32(_mm512_and_si512(qa, low4), _mm512_slli_epi32(qh, 4), hi2, 0xF8);
            const __m512i c1 = _mm512_ternarylogic_epi32(_mm512_and_si512(qb, low4), _mm512_slli_epi32(qh, 2), hi2, 0xF8);
            const __m512i c2 = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(qa, 4), low4), qh, hi2, 0xF8);
            const __m512i c3 = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(qb, 4), low4),
                                                         _mm512_srli_epi16(qh, 2), hi2, 0xF8);
            const int8_t* aq = a.qs + 128 * h + 4 * i;
            s[0] = _mm512_dpbusd_epi32(s[0], c0, kq_bcast(aq));
            s[1] = _mm512_dpbusd_epi32(s[1], c1, kq_bcast(aq + 32));
            s[2] = _mm512_dpbusd_epi32(s[2], c2, kq_bcast(aq + 64));
            s[3] = _mm512_dpbusd_epi32(s[3], c3, kq_bcast(aq + 96));
          }
#pragma GCC unroll 4
          for (int k = 0; k < 4; ++k) {
            const __m512i sc = _mm512_cvtepi8_epi32(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 3072 + 16 * (8 * h + 2 * k + q))));
            isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(s[k], sc));
          }
        }
      }
      const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 3328))), da);
      acc[g] = _mm512_add_ps(acc[g], _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum)));
    }
  }
  for (int g = 0; g < NG; ++g) _mm512_storeu_ps(out + 16 * g, acc[g]);
}

// deinterleave_x16_rows with scatters: each 64-byte line goes to its 16 rows in one
// vpscatterdd; the f16 fields and Q6_K's byte scales are copied one by one.
inline void deinterleave_x16_rows_avx512(const Matrix& w, int64_t r0, int n, uint8_t* dst) {
  const bool q4 = w.type == DType::Q4_K;
  const size_t bb = q4 ? sizeof(quant::block_q4_k) : sizeof(quant::block_q6_k), rec_bytes = 16 * bb;
  const int64_t n_sb = w.n_cols / 256;
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int>(w.row_stride)));
  for (int g = 0; g < n / 16; ++g) {
    const uint8_t* rec = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r0 / 16 + g) * n_sb * rec_bytes;
    uint8_t* out = dst + static_cast<size_t>(16 * g) * w.row_stride;
    for (int64_t sb = 0; sb < n_sb; ++sb, rec += rec_bytes, out += bb) {
      if (q4) {
        for (int l = 0; l < 32; ++l)
          _mm512_i32scatter_epi32(out + offsetof(quant::block_q4_k, qs) + 4 * l, rows, _mm512_loadu_si512(rec + 64 * l), 1);
        for (int k = 0; k < 3; ++k)
          _mm512_i32scatter_epi32(out + offsetof(quant::block_q4_k, scales) + 4 * k, rows,
                                  _mm512_loadu_si512(rec + 2048 + 64 * k), 1);
        // d | dmin << 16 per row: one dword at offset 0
        const __m512i dd = _mm512_or_si512(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 2240))),
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 2272))), 16));
        _mm512_i32scatter_epi32(out, rows, dd, 1);
      } else {
        for (int h = 0; h < 2; ++h) {
          for (int i = 0; i < 8; ++i) {
            const uint8_t* l3 = rec + 64 * (24 * h + 3 * i);
            _mm512_i32scatter_epi32(out + offsetof(quant::block_q6_k, ql) + 64 * h + 4 * i, rows, _mm512_loadu_si512(l3), 1);
            _mm512_i32scatter_epi32(out + offsetof(quant::block_q6_k, ql) + 64 * h + 32 + 4 * i, rows,
                                    _mm512_loadu_si512(l3 + 64), 1);
            _mm512_i32scatter_epi32(out + offsetof(quant::block_q6_k, qh) + 32 * h + 4 * i, rows,
                                    _mm512_loadu_si512(l3 + 128), 1);
          }
        }
        // Row r's 16 scales: the bytes 16 apart from rec + 3072 + r (a gather of dwords, low bytes).
        const __m512i subs = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                _mm512_set1_epi32(16));
        for (int r = 0; r < 16; ++r) {
          uint8_t* row = out + static_cast<size_t>(r) * w.row_stride;
          _mm_storeu_si128(reinterpret_cast<__m128i*>(row + offsetof(quant::block_q6_k, scales)),
                           _mm512_cvtepi32_epi8(_mm512_i32gather_epi32(subs, rec + 3072 + r, 1)));
          std::memcpy(row + offsetof(quant::block_q6_k, d), rec + 3328 + 2 * r, 2);
        }
      }
    }
  }
}

// MatmulRowsFn on an interleaved K-quant matrix: the GEMV for 1-3 tokens; from 4 tokens on
// (prefill) `Plain`, the level's K-quant GEMM, on up to ~1 MiB of rows at a time de-interleaved
// into a per-thread buffer (a copy of the weights once per call, small next to the GEMM).
// The de-interleave buffer of the calling thread: grown with malloc (never throws), freed when
// the thread exits. Kernels have no error path, so when it cannot grow the product runs on the
// GEMV below instead (slower, the same bits: every path equals the reference).
struct KqDeinterleaveBuffer {
  uint8_t* data = nullptr;
  size_t size = 0;
  KqDeinterleaveBuffer() = default;
  KqDeinterleaveBuffer(const KqDeinterleaveBuffer&) = delete;
  KqDeinterleaveBuffer& operator=(const KqDeinterleaveBuffer&) = delete;
  ~KqDeinterleaveBuffer() { std::free(data); }
  bool reserve(size_t n) {
    if (n <= size) return true;
    std::free(data);
    data = static_cast<uint8_t*>(std::malloc(n));
    size = data ? n : 0;
    return data != nullptr;
  }
};

template <void (*Gemv1)(const uint8_t*, size_t, const uint8_t*, int64_t, float*),
          void (*Gemv2)(const uint8_t*, size_t, const uint8_t*, int64_t, float*),
          void (*Gemv4)(const uint8_t*, size_t, const uint8_t*, int64_t, float*), MatmulRowsFn Plain>
void rows_kquant_x16(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
                     float* y, int64_t ldy) {
  if (n_tokens >= kKqMinGemmTokens) {
    thread_local KqDeinterleaveBuffer buf;  // only threads that run a prefill get one
    const int64_t chunk = std::max<int64_t>(32, static_cast<int64_t>((size_t{1} << 20) / w.row_stride) / 32 * 32);
    if (buf.reserve(static_cast<size_t>(std::min(chunk, r1 - r0)) * w.row_stride)) {
      for (int64_t r = r0; r < r1; r += chunk) {
        const int n = static_cast<int>(std::min(chunk, r1 - r));
        deinterleave_x16_rows_avx512(w, r, n, buf.data);
        Matrix plain = w;
        plain.data = buf.data;
        plain.n_rows = n;
        plain.layout = Layout::rows;
        Plain(plain, 0, n, act, act_stride, n_tokens, y + r, ldy);
      }
      return;
    }
  }
  rows_x16_gemv<Gemv1, Gemv2, Gemv4>(w, r0, r1, act, act_stride, n_tokens, y, ldy);
}

template <MatmulRowsFn Plain>
constexpr MatmulRowsFn rows_q4_k_x16 = rows_kquant_x16<gemv_q4_k_x16<1>, gemv_q4_k_x16<2>, gemv_q4_k_x16<4>, Plain>;
template <MatmulRowsFn Plain>
constexpr MatmulRowsFn rows_q6_k_x16 = rows_kquant_x16<gemv_q6_k_x16<1>, gemv_q6_k_x16<2>, gemv_q6_k_x16<4>, Plain>;

}  // namespace
}  // namespace slm::kernels::detail
