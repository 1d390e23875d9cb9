// Float -> integer code conversions shared by the reference quantizers: defined for every
// float (NaN and Inf included), and equal to ggml's conversions for the finite values the
// quantizers produce.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace slm::quant::detail {

// Round to nearest, ties to even, for |v| < 2^22. Adding 1.5 * 2^23 leaves v's integer part,
// rounded by the FPU, in the low mantissa bits (offset by 2^22). Other inputs (NaN, Inf, huge
// values) give some integer in [-2^22, 2^22): callers clamp it. No undefined behaviour, unlike a
// float -> int cast of a NaN.
inline int nearest_int(float v) {
  const float t = v + 12582912.0f;
  uint32_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  return static_cast<int>(bits & 0x007fffffu) - 0x00400000;
}

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Truncation toward zero of a value expected in [0, hi], clamped to [0, hi]; NaN -> 0. The
// legacy quantizers round by adding 0.5 (or 8.5, 16.5) and truncating.
inline int trunc_code(float t, int hi) {
  if (!(t > 0.0f)) return 0;
  if (t >= static_cast<float>(hi)) return hi;
  return static_cast<int>(t);
}

// Round half away from zero (roundf), clamped to [-127, 127]; NaN -> 0. Used by Q8_0 / Q8_1.
inline int round_code_q8(float v) {
  const float r = std::round(v);
  if (!(r > -127.0f)) return r == r ? -127 : 0;
  if (r >= 127.0f) return 127;
  return static_cast<int>(r);
}

}  // namespace slm::quant::detail
