// Internal: the elementwise hot-path ops (exp, SiLU-gated product, softmax, RMSNorm, add, and
// RoPE / f32 -> f16 rows with a few ISA-specific lines) written
// once over a vector-traits type V, instantiated by each ISA file with its own V (VecAvx2 and
// VecAvx512 in x86_simd.hpp, VecNeon in arm_neon.hpp). Include only from a per-ISA file, after
// that file's intrinsics header: everything here has internal linkage, like x86_simd.hpp.
//
// V provides, for a vector F of V::kLanes floats and a pair of double vectors D[2] that hold
// V::kLanes doubles:
//   load, store (unaligned), set1, add, sub, mul, div, neg (sign flip), max (for softmax's max),
//   fma(a, b, c) = a * b + c rounded once, round (to nearest, ties to even),
//   clamp(x, lo, hi) (NaN stays NaN), scale_pow2(p, n) = p * 2^n for integral n in [-150, 128]
//   with a single rounding of the final result (so subnormal results are right),
//   hmax (horizontal max of a NaN-free vector), dzero, acc_squares(D[2], const float* p) and
//   acc_values(D[2], const float* p) (add p[i]^2 or p[i], widened to double, lane by lane),
//   hsum(const D[2]) (the lanes in a fixed order).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/kernel_table.hpp"

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace slm::kernels::detail {
namespace {

// ============================================================================================
// exp(x), Cephes-style (S. L. Moshier's expf): n = round(x / ln 2), r = x - n ln 2 in two
// steps (ln 2 = C1 + C2, C1 = 0.693359375 has 9 significant bits, so n * C1 is exact for
// |n| <= 2^15 and the first subtraction loses nothing), then e^r on |r| <= ln2 / 2 as
// 1 + r + r^2 P(r) with Cephes's degree-5 minimax P, and e^x = e^r * 2^n.
//   - x is clamped to [-104, 89] first: exp(-104) < 2^-150 rounds to 0 and exp(89) > FLT_MAX
//     rounds to inf, so results outside are right, and n stays in [-150, 128], which
//     scale_pow2 applies in two halves (2^n alone is not a float for n < -126 or n > 127).
//   - NaN: the clamp keeps it, r and the polynomial are NaN, so the result is NaN.
// Error: ~1-2 ulp over the whole range (test_kernels measures <= 4 ulp against exp in double
// over [-104, 89], subnormal results counted in units of the smallest subnormal).

template <class V>
inline typename V::F exp_v(typename V::F x) {
  using F = typename V::F;
  x = V::clamp(x, V::set1(-104.0f), V::set1(89.0f));
  const F n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  F r = V::fma(n, V::set1(-0.693359375f), x);
  r = V::fma(n, V::set1(2.12194440e-4f), r);  // - n * (ln 2 - C1)
  F p = V::set1(1.9875691500e-4f);
  p = V::fma(p, r, V::set1(1.3981999507e-3f));
  p = V::fma(p, r, V::set1(8.3334519073e-3f));
  p = V::fma(p, r, V::set1(4.1665795894e-2f));
  p = V::fma(p, r, V::set1(1.6666665459e-1f));
  p = V::fma(p, r, V::set1(5.0000001201e-1f));
  const F y = V::add(V::fma(p, V::mul(r, r), r), V::set1(1.0f));
  return V::scale_pow2(y, n);
}

// Tails (n % kLanes elements) go through a padded copy so that every element is computed by the
// same vector code, wherever it sits in the row.
template <class V>
void exp_rows_v(const float* x, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) V::store(out + i, exp_v<V>(V::load(x + i)));
  if (i < n) {
    float buf[V::kLanes] = {};
    const auto rest = static_cast<size_t>(n - i);
    std::memcpy(buf, x + i, rest * sizeof(float));
    V::store(buf, exp_v<V>(V::load(buf)));
    std::memcpy(out + i, buf, rest * sizeof(float));
  }
}

// gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]: the scalar loop's expression, in its order.
template <class V>
inline typename V::F silu_mul_v(typename V::F g, typename V::F u) {
  return V::mul(V::div(g, V::add(V::set1(1.0f), exp_v<V>(V::neg(g)))), u);
}

template <class V>
void silu_mul_rows_v(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes)
    V::store(gate + i, silu_mul_v<V>(V::load(gate + i), V::load(up + i)));
  if (i < n) {
    float g[V::kLanes] = {}, u[V::kLanes] = {};
    const auto rest = static_cast<size_t>(n - i);
    std::memcpy(g, gate + i, rest * sizeof(float));
    std::memcpy(u, up + i, rest * sizeof(float));
    V::store(g, silu_mul_v<V>(V::load(g), V::load(u)));
    std::memcpy(gate + i, g, rest * sizeof(float));
  }
}

// x = exp(x - max) / sum, the sum in double as the scalar loop keeps it (per-lane partial sums,
// so the sum may differ from the scalar one in the last bits of a double, far below a float ulp).
// A NaN anywhere makes every output NaN (it reaches the sum), as in the scalar loop.
template <class V>
void softmax_v(float* x, int64_t n) {
  using F = typename V::F;
  using D = typename V::D;
  if (n <= 0) return;
  int64_t i = 0;
  F vmax = V::set1(-std::numeric_limits<float>::infinity());
  for (; i + V::kLanes <= n; i += V::kLanes) vmax = V::max(vmax, V::load(x + i));
  float max = i > 0 ? V::hmax(vmax) : x[0];
  for (; i < n; ++i) max = x[i] > max ? x[i] : max;

  const F vm = V::set1(max);
  D acc[2] = {V::dzero(), V::dzero()};
  for (i = 0; i + V::kLanes <= n; i += V::kLanes) {
    V::store(x + i, exp_v<V>(V::sub(V::load(x + i), vm)));
    V::acc_values(acc, x + i);
  }
  if (i < n) {
    float buf[V::kLanes] = {};
    const auto rest = static_cast<size_t>(n - i);
    std::memcpy(buf, x + i, rest * sizeof(float));
    V::store(buf, exp_v<V>(V::sub(V::load(buf), vm)));
    for (size_t k = rest; k < static_cast<size_t>(V::kLanes); ++k) buf[k] = 0.0f;  // padding adds nothing
    V::acc_values(acc, buf);
    std::memcpy(x + i, buf, rest * sizeof(float));
  }
  const float inv = static_cast<float>(1.0 / V::hsum(acc));
  const F vinv = V::set1(inv);
  for (i = 0; i + V::kLanes <= n; i += V::kLanes) V::store(x + i, V::mul(V::load(x + i), vinv));
  for (; i < n; ++i) x[i] *= inv;
}

// out = x * inv * weight with inv = 1 / sqrt(sum(x^2) / n + eps), the sum of squares in double
// (each square is exact in double; per-lane partial sums). The scale is the scalar loop's
// expression, so an output differs from it only when the double sums round inv differently.
template <class V>
void rmsnorm_v(float* out, const float* x, const float* weight, int64_t n, float eps) {
  using D = typename V::D;
  D acc[2] = {V::dzero(), V::dzero()};
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) V::acc_squares(acc, x + i);
  double ss = V::hsum(acc);
  for (int64_t k = i; k < n; ++k) ss += static_cast<double>(x[k]) * x[k];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  const auto vinv = V::set1(inv);
  for (i = 0; i + V::kLanes <= n; i += V::kLanes)
    V::store(out + i, V::mul(V::mul(V::load(x + i), vinv), V::load(weight + i)));
  for (; i < n; ++i) out[i] = x[i] * inv * weight[i];
}

// x += y: the same bits as the scalar loop.
template <class V>
void add_rows_v(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) V::store(x + i, V::add(V::load(x + i), V::load(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

// ============================================================================================
// RoPE and the f32 -> f16 row conversion (KV-cache stores): the scalar loops' arithmetic, lane by
// lane, so every level gives their bits. Rope's products are separate multiplies (vector mul,
// sub, add; the ISA files build with -ffp-contract=off for the scalar tails). The pair layouts:
//   neox (i, i + n_rot/2): both halves are contiguous, any V does it;
//   adjacent (2i, 2i+1): deinterleaved with the ISA's shuffles (AVX2: 8 pairs per step with
//   vshufps / vunpck{l,h}ps; NEON: vld2q / vst2q, 4 pairs), the rest of a head in scalar code.
// f32 -> f16: vcvtps2ph with round-to-nearest-even (F16C) or fcvtn (NEON, FPCR's default
// rounding) and the scalar code's NaN rule (quiet, top payload bits kept); other V: scalar.

inline void rope_pair_scalar(float* v, int64_t ia, int64_t ib, float c, float sn) {
  const float a = v[ia], b = v[ib];
  const float ac = a * c, bs = b * sn, as = a * sn, bc = b * c;
  v[ia] = ac - bs;
  v[ib] = as + bc;
}

template <class V>
void rope_v(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_v, const float* sin_v,
            bool neox) {
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    int64_t i = 0;
    if (neox) {
      for (; i + V::kLanes <= half; i += V::kLanes) {
        const auto a = V::load(v + i), b = V::load(v + half + i);
        const auto c = V::load(cos_v + i), sn = V::load(sin_v + i);
        V::store(v + i, V::sub(V::mul(a, c), V::mul(b, sn)));
        V::store(v + half + i, V::add(V::mul(a, sn), V::mul(b, c)));
      }
      for (; i < half; ++i) rope_pair_scalar(v, i, i + half, cos_v[i], sin_v[i]);
      continue;
    }
#if defined(__AVX2__)
    for (; i + 8 <= half; i += 8) {
      // x0 = a0 b0 a1 b1 | a2 b2 a3 b3, x1 = a4 b4 a5 b5 | a6 b6 a7 b7: vshufps picks per 128-bit
      // lane, so a = a0 a1 a4 a5 | a2 a3 a6 a7 (b alike); cos and sin are permuted to match
      // (64-bit elements 0 2 1 3), and vunpck{l,h}ps restore the pair order.
      const __m256 x0 = _mm256_loadu_ps(v + 2 * i), x1 = _mm256_loadu_ps(v + 2 * i + 8);
      const __m256 a = _mm256_shuffle_ps(x0, x1, 0x88), b = _mm256_shuffle_ps(x0, x1, 0xdd);
      const __m256 c = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_loadu_ps(cos_v + i)), 0xd8));
      const __m256 sn = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_loadu_ps(sin_v + i)), 0xd8));
      const __m256 ra = _mm256_sub_ps(_mm256_mul_ps(a, c), _mm256_mul_ps(b, sn));
      const __m256 rb = _mm256_add_ps(_mm256_mul_ps(a, sn), _mm256_mul_ps(b, c));
      _mm256_storeu_ps(v + 2 * i, _mm256_unpacklo_ps(ra, rb));
      _mm256_storeu_ps(v + 2 * i + 8, _mm256_unpackhi_ps(ra, rb));
    }
#elif defined(__ARM_NEON)
    for (; i + 4 <= half; i += 4) {
      const float32x4x2_t ab = vld2q_f32(v + 2 * i);
      const float32x4_t c = vld1q_f32(cos_v + i), sn = vld1q_f32(sin_v + i);
      float32x4x2_t r;
      r.val[0] = vsubq_f32(vmulq_f32(ab.val[0], c), vmulq_f32(ab.val[1], sn));
      r.val[1] = vaddq_f32(vmulq_f32(ab.val[0], sn), vmulq_f32(ab.val[1], c));
      vst2q_f32(v + 2 * i, r);
    }
#endif
    for (; i < half; ++i) rope_pair_scalar(v, 2 * i, 2 * i + 1, cos_v[i], sin_v[i]);
  }
}

#if defined(__F16C__) || defined(__ARM_NEON)
#if defined(__F16C__)
constexpr int kF16Lanes = 8;
inline void f32_to_f16_lanes(const float* x, uint16_t* out) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                   _mm256_cvtps_ph(_mm256_loadu_ps(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
#else
constexpr int kF16Lanes = 4;
inline void f32_to_f16_lanes(const float* x, uint16_t* out) {
  vst1_u16(out, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x))));
}
#endif

// Tails go through a padded copy, so every element takes the vector instruction.
inline void f32_to_f16_row_v(const float* x, uint16_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + kF16Lanes <= n; i += kF16Lanes) f32_to_f16_lanes(x + i, out + i);
  if (i < n) {
    float buf[kF16Lanes] = {};
    uint16_t h[kF16Lanes];
    const auto rest = static_cast<size_t>(n - i);
    std::memcpy(buf, x + i, rest * sizeof(float));
    f32_to_f16_lanes(buf, h);
    std::memcpy(out + i, h, rest * sizeof(uint16_t));
  }
}
#endif

template <class V>
void add_vector_ops(KernelTable& table) {
  table.exp = exp_rows_v<V>;
  table.silu_mul = silu_mul_rows_v<V>;
  table.softmax = softmax_v<V>;
  table.rmsnorm = rmsnorm_v<V>;
  table.add = add_rows_v<V>;
  table.rope = rope_v<V>;
#if defined(__F16C__) || defined(__ARM_NEON)
  table.f32_to_f16 = f32_to_f16_row_v;
#endif
}

}  // namespace
}  // namespace slm::kernels::detail
