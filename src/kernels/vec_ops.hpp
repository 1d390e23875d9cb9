// Internal: the elementwise hot-path ops (exp, SiLU-gated product, softmax, RMSNorm, add) written
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

template <class V>
void add_vector_ops(KernelTable& table) {
  table.exp = exp_rows_v<V>;
  table.silu_mul = silu_mul_rows_v<V>;
  table.softmax = softmax_v<V>;
  table.rmsnorm = rmsnorm_v<V>;
  table.add = add_rows_v<V>;
}

}  // namespace
}  // namespace slm::kernels::detail
