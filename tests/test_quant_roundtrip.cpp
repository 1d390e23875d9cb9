// Quant formats end to end: round-trip error within stated bounds, stability of
// quantize(dequantize(quantize(x))), robustness to NaN/Inf input, and byte-identity with ggml's
// reference quantizers (hashes of their output on fixed inputs).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "quant/blocks.hpp"
#include "quant/quant.hpp"
#include "slm/dtype.hpp"

using namespace slm::quant;
using slm::DType;

namespace {

// Deterministic inputs built from exact float operations only (no libm in the generator), so
// every platform produces the same bits and the ggml hashes below apply everywhere.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  float uniform() { return static_cast<float>(next() >> 7) * 0x1p-24f; }  // [0, 1)
  float normal() {  // Irwin-Hall: sum of 12 uniforms - 6 (mean 0, variance 1)
    float s12 = 0;
    for (int i = 0; i < 12; ++i) s12 += uniform();
    return s12 - 6.0f;
  }
};

std::vector<float> normal_data(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = rng.normal();
  return x;
}

std::vector<float> sin_data(size_t n) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::sin(0.05 * static_cast<double>(i)));
  return x;
}

// Quantizes and dequantizes a row through the traits table.
std::vector<float> round_trip(DType t, const std::vector<float>& x) {
  const auto& tt = slm::traits(t);
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(*slm::row_bytes(t, n));
  tt.from_float(x.data(), q.data(), n);
  std::vector<float> y(x.size(), std::numeric_limits<float>::quiet_NaN());
  tt.to_float(q.data(), y.data(), n);
  return y;
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += d * d;
  }
  return std::sqrt(s / static_cast<double>(a.size()));
}

// The rms error of rounding to a uniform grid of step `step` is step / sqrt(12) when values are
// spread over many steps. `grid_rms` returns sqrt(mean over groups of step_g^2 / 12) for groups
// of `group` elements whose step is `step_of(group values)`: the error a round-to-nearest
// quantizer with that grid would make.
template <class StepFn>
double grid_rms(const std::vector<float>& x, int group, StepFn step_of) {
  double s = 0;
  const size_t groups = x.size() / static_cast<size_t>(group);
  for (size_t g = 0; g < groups; ++g) {
    const double step = step_of(&x[g * static_cast<size_t>(group)], group);
    s += step * step / 12.0;
  }
  return std::sqrt(s / static_cast<double>(groups));
}

double absmax(const float* x, int n) {
  double m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(x[i])));
  return m;
}
double range(const float* x, int n) {
  const auto [lo, hi] = std::minmax_element(x, x + n);
  return static_cast<double>(*hi) - static_cast<double>(*lo);
}
// K-quants with mins: the grid spans [min(x, 0), max(x)] (the offset is never positive).
double range_with_zero(const float* x, int n) {
  const auto [lo, hi] = std::minmax_element(x, x + n);
  return std::max(0.0, static_cast<double>(*hi)) - std::min(0.0, static_cast<double>(*lo));
}

// The theoretical rms error of each format on x (see grid_rms), from which the bounds below are
// stated as a factor.
double theory_rms(DType t, const std::vector<float>& x) {
  switch (t) {
    case DType::Q8_0: return grid_rms(x, 32, [](const float* g, int n) { return absmax(g, n) / 127; });
    case DType::Q8_K: return grid_rms(x, 256, [](const float* g, int n) { return absmax(g, n) / 127; });
    case DType::Q4_0: return grid_rms(x, 32, [](const float* g, int n) { return absmax(g, n) / 8; });
    case DType::Q5_0: return grid_rms(x, 32, [](const float* g, int n) { return absmax(g, n) / 16; });
    case DType::Q4_1: return grid_rms(x, 32, [](const float* g, int n) { return range(g, n) / 15; });
    case DType::Q5_1: return grid_rms(x, 32, [](const float* g, int n) { return range(g, n) / 31; });
    case DType::Q4_K:
      return grid_rms(x, 32, [](const float* g, int n) { return range_with_zero(g, n) / 15; });
    case DType::Q5_K:
      return grid_rms(x, 32, [](const float* g, int n) { return range_with_zero(g, n) / 31; });
    case DType::Q6_K: return grid_rms(x, 16, [](const float* g, int n) { return absmax(g, n) / 32; });
    case DType::F16:
    case DType::BF16: {
      // Rounding to `mant` fraction bits: the grid step at v is 2^(exponent(v) - mant).
      const int mant = t == DType::F16 ? 10 : 7;
      return grid_rms(x, 1, [mant](const float* g, int) {
        int e;
        std::frexp(static_cast<double>(*g), &e);
        return std::ldexp(1.0, e - 1 - mant);
      });
    }
    default: return 0;
  }
}

}  // namespace

// ============================================================================================
// Round-trip error
// ============================================================================================

namespace {
// Bounds as a factor of theory_rms. Formats that round every value to a fixed grid reach the
// theory (measured 0.95-1.0 on these inputs; below 1 because a block's extreme values land
// exactly on the grid): bound 1.05. The K-quants search their sub-block scales and offsets
// (weighted least squares over several grids) and must beat the plain grid even after their
// scales are themselves quantized (measured 0.86-0.93): bound 0.95 — a quantizer that only took
// max-abs / min-max grids would fail it (checked below). Rounding by truncation instead of to
// nearest doubles the error (rms of a uniform [0, step) error is step/sqrt(3), not
// step/sqrt(12)), a wrong code or scale does worse still.
double bound_factor(DType t) {
  switch (t) {
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return 0.95;
    default: return 1.05;
  }
}
const DType kQuantized[] = {DType::F16,  DType::BF16, DType::Q8_0, DType::Q8_1,
                            DType::Q8_K, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                            DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
}  // namespace

TEST_CASE("round-trip RMSE within the stated bound, on normal and on smooth data") {
  const auto xn = normal_data(256 * 64, 1);
  const auto xs = sin_data(256 * 64);
  for (DType t : kQuantized) {
    const std::string name = slm::dtype_name(t);
    CAPTURE(name);
    const DType theory_type = t == DType::Q8_1 ? DType::Q8_0 : t;  // same grid as Q8_0
    for (const auto* x : {&xn, &xs}) {
      const auto y = round_trip(t, *x);
      const double err = rmse(*x, y);
      const double theory = theory_rms(theory_type, *x);
      CAPTURE(err);
      CAPTURE(theory);
      REQUIRE(theory > 0);
      CHECK(err <= bound_factor(t) * theory);
      // And not suspiciously good: below half the theory the test data or theory is wrong.
      CHECK(err >= 0.5 * theory);
    }
  }
}

TEST_CASE("round-trip bounds reject broken quantizers") {
  const auto x = normal_data(256 * 64, 2);
  // Q8_0 rounding by truncation (the classic bug): about twice the theory, above 1.05.
  {
    std::vector<block_q8_0> q(x.size() / 32);
    quantize_row_q8_0_ref(x.data(), q.data(), static_cast<int64_t>(x.size()));
    for (size_t b = 0; b < q.size(); ++b) {
      const float d = slm::f16_to_f32(q[b].d);
      for (int j = 0; j < 32; ++j) q[b].qs[j] = static_cast<int8_t>(std::trunc(x[32 * b + j] / d));
    }
    std::vector<float> y(x.size());
    dequantize_row_q8_0_ref(q.data(), y.data(), static_cast<int64_t>(x.size()));
    CHECK(rmse(x, y) > 1.05 * theory_rms(DType::Q8_0, x));
  }
  // Q4_K with plain min/max sub-block grids (no scale search), scales quantized to 6 bits as the
  // format requires: fails the 0.95 bound the real quantizer meets.
  {
    std::vector<block_q4_k> q(x.size() / 256);
    for (size_t b = 0; b < q.size(); ++b) {
      const float* xb = &x[256 * b];
      float scale[8], min[8], max_scale = 0, max_min = 0;
      for (int j = 0; j < 8; ++j) {
        const auto [lo, hi] = std::minmax_element(xb + 32 * j, xb + 32 * j + 32);
        min[j] = -std::min(*lo, 0.0f);
        scale[j] = (*hi + min[j]) / 15;
        max_scale = std::max(max_scale, scale[j]);
        max_min = std::max(max_min, min[j]);
      }
      uint8_t ls[8], lm[8];
      for (int j = 0; j < 8; ++j) {
        ls[j] = static_cast<uint8_t>(std::lround(63 * scale[j] / max_scale));
        lm[j] = static_cast<uint8_t>(std::lround(63 * min[j] / max_min));
      }
      pack_scale_min_k4(ls, lm, q[b].scales);
      q[b].d = slm::f32_to_f16(max_scale / 63);
      q[b].dmin = slm::f32_to_f16(max_min / 63);
      for (int e = 0; e < 256; ++e) {
        const int j = e / 32;
        const float d = slm::f16_to_f32(q[b].d) * ls[j], m = slm::f16_to_f32(q[b].dmin) * lm[j];
        const long c = std::clamp(std::lround((xb[e] + m) / d), 0L, 15L);
        uint8_t& byte = q[b].qs[32 * (j / 2) + e % 32];
        byte = static_cast<uint8_t>(j % 2 ? (byte & 0x0F) | c << 4 : (byte & 0xF0) | c);
      }
    }
    std::vector<float> y(x.size());
    dequantize_row_q4_k_ref(q.data(), y.data(), static_cast<int64_t>(x.size()));
    const double naive = rmse(x, y), theory = theory_rms(DType::Q4_K, x);
    MESSAGE("plain-grid Q4_K: rmse / theory = " << naive / theory);
    CHECK(naive > bound_factor(DType::Q4_K) * theory);
    CHECK(rmse(x, round_trip(DType::Q4_K, x)) < 0.95 * naive);
  }
}

// ============================================================================================
// quantize(dequantize(quantize(x)))
// ============================================================================================

namespace {
struct Twice {
  std::vector<uint8_t> q1, q2;  // quantize(x), quantize(dequantize(quantize(x)))
  std::vector<float> y1, y2;    // their dequantizations
};
Twice quantize_twice(DType t, const std::vector<float>& x) {
  const auto& tt = slm::traits(t);
  const auto n = static_cast<int64_t>(x.size());
  Twice r;
  r.q1.resize(*slm::row_bytes(t, n));
  r.q2.resize(r.q1.size());
  r.y1.resize(x.size());
  r.y2.resize(x.size());
  tt.from_float(x.data(), r.q1.data(), n);
  tt.to_float(r.q1.data(), r.y1.data(), n);
  tt.from_float(r.y1.data(), r.q2.data(), n);
  tt.to_float(r.q2.data(), r.y2.data(), n);
  return r;
}
}  // namespace

TEST_CASE("re-quantizing a dequantized row is stable") {
  const auto xn = normal_data(256 * 32, 3);
  const auto xs = sin_data(256 * 32);
  for (const auto* x : {&xn, &xs}) {
    // Byte-identical by construction: the block's extreme element dequantizes to exactly
    // -8*d (Q4_0), -16*d (Q5_0) or +-127*d (Q8_0), so the second pass finds the same f16 scale
    // (division by 8 or 16 is exact; /127 lands within a float ulp of d, which rounds back to the
    // same half) and every other element lands within float rounding of its own code. F16/BF16
    // values are representable. Q4_1/Q5_1 recover min exactly (code 0) and max up to float
    // rounding, which keeps d when the offset is not much larger than the block's spread, as here.
    for (DType t : {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q4_1,
                    DType::Q5_1}) {
      const std::string name = slm::dtype_name(t);
      CAPTURE(name);
      const Twice r = quantize_twice(t, *x);
      CHECK(r.q1 == r.q2);
    }
    // Same values, not always the same bytes: Q8_1's s is computed from the unrounded scale, and
    // Q8_K's float scale 1/(-127/max) may move by an ulp.
    for (DType t : {DType::Q8_1, DType::Q8_K}) {
      const std::string name = slm::dtype_name(t);
      CAPTURE(name);
      const Twice r = quantize_twice(t, *x);
      double max_abs = 0, max_diff = 0;
      for (size_t i = 0; i < x->size(); ++i) {
        max_abs = std::max(max_abs, std::fabs(static_cast<double>(r.y1[i])));
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(r.y2[i]) - r.y1[i]));
      }
      CHECK(max_diff <= 1e-6 * max_abs);
    }
    // The K-quants search their scales, and a search started from already-quantized values may
    // settle elsewhere: the format does not guarantee a fixed point. The second pass must stay a
    // small perturbation (measured <= 0.07 of the first round-trip error on these inputs).
    for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      const std::string name = slm::dtype_name(t);
      CAPTURE(name);
      const Twice r = quantize_twice(t, *x);
      CHECK(rmse(r.y1, r.y2) <= 0.2 * rmse(*x, r.y1));
    }
  }
}

// ============================================================================================
// Awkward inputs
// ============================================================================================

TEST_CASE("quantizers accept any floats; zero blocks dequantize to zero") {
  constexpr float inf = std::numeric_limits<float>::infinity();
  constexpr float nan = std::numeric_limits<float>::quiet_NaN();
  const float specials[] = {nan, inf, -inf, std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::denorm_min(), -1e-40f, 1e30f, 0.0f, -0.0f};
  const size_t n = 256 * 6;
  std::vector<float> x(n, 0.0f);
  Rng rng(5);
  // Block 0: zeros. Blocks 1-4: normal data with one special value in each 32-element group.
  // Block 5: constant.
  for (size_t i = 256; i < 256 * 5; ++i) x[i] = rng.normal();
  for (size_t g = 8; g < 40; ++g) x[g * 32 + rng.next() % 32] = specials[g % std::size(specials)];
  for (size_t i = 256 * 5; i < n; ++i) x[i] = 0.75f;
  for (DType t : kQuantized) {
    const std::string name = slm::dtype_name(t);
    CAPTURE(name);
    const Twice r = quantize_twice(t, x);  // runs under ASan/UBSan in CI: no UB, no overrun
    for (size_t i = 0; i < 256; ++i) CHECK(r.y1[i] == 0.0f);
    // A constant block is represented well (exactly for the formats with an offset or a scale
    // that the constant lands on).
    for (size_t i = 256 * 5; i < n; ++i) CHECK(std::fabs(r.y1[i] - 0.75f) <= 0.75f / 14);
  }
}

// ============================================================================================
// Byte-identity with ggml's reference quantizers
// ============================================================================================

namespace {
uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}
// Normal data whose 16-element groups are scaled by 2^k, k in -8..8 (exact), plus a zero and a
// constant block: wide dynamic range inside blocks exercises scale searches and f16 rounding.
std::vector<float> golden_input() {
  Rng rng(7);
  std::vector<float> x(256 * 8);
  for (size_t g = 0; g < x.size() / 16; ++g) {
    const float scale = std::ldexp(1.0f, static_cast<int>(rng.next() % 17) - 8);
    for (size_t i = 0; i < 16; ++i) x[16 * g + i] = rng.normal() * scale;
  }
  std::fill(x.begin() + 256 * 6, x.begin() + 256 * 7, 0.0f);
  std::fill(x.begin() + 256 * 7, x.end(), -1.25f);
  return x;
}
}  // namespace

TEST_CASE("quantized bytes equal ggml's reference quantizers (hashes)") {
  // FNV-1a 64 of the bytes produced by ggml's quantize_row_<type>_ref (ggml-org/ggml commit
  // d99724f, x86-64, no FMA contraction) on golden_input(), n = 2048. Not produced by this code:
  // computed once by linking that ggml build against the same input generator.
  struct Golden {
    DType t;
    uint64_t hash;
  };
  const Golden golden[] = {
      {DType::Q4_0, 0x247b22044abf1c7bull}, {DType::Q4_1, 0x9ead032823ffd26bull},
      {DType::Q5_0, 0x2a0b7f6686a16b39ull}, {DType::Q5_1, 0xc7d94320abb8c01dull},
      {DType::Q8_0, 0x27c6e856fbe2b32bull}, {DType::Q8_1, 0xdb57109b1b7a9325ull},
      {DType::Q4_K, 0x9d2630d47df34941ull}, {DType::Q5_K, 0x38c5fd2a3bbbd946ull},
      {DType::Q6_K, 0x98b966731c58b0dbull},
      // Q8_K: ggml leaves bsums of an all-zero block unwritten; the hash was taken over a
      // zero-filled buffer, and we write zeros.
      {DType::Q8_K, 0x3dda0300bab3e1c7ull},
  };
  const auto x = golden_input();
  for (const Golden& g : golden) {
    const std::string name = slm::dtype_name(g.t);
    CAPTURE(name);
    std::vector<uint8_t> q(*slm::row_bytes(g.t, static_cast<int64_t>(x.size())));
    slm::traits(g.t).from_float(x.data(), q.data(), static_cast<int64_t>(x.size()));
    char got[32];
    std::snprintf(got, sizeof got, "0x%016llx", static_cast<unsigned long long>(fnv1a(q)));
    CAPTURE(got);
    CHECK(fnv1a(q) == g.hash);
  }
}
