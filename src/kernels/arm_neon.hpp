// Internal: Arm NEON row kernels and the vector traits of the elementwise ops, shared by
// kernels_neon.cpp and kernels_neon_dotprod.cpp. Include only from those files: everything has
// internal linkage, so each gets its own copy built with its own flags (the dotprod copy uses
// SDOT; the plain one widening multiplies).
//
// Activations are the reference Q8_0 blocks (quantize_row_q8_0_ref): each block's integer dot is
// exact and is added with the reference's expression, acc += (dw * da) * sumi, in block order,
// so these kernels return exactly what vec_dot_*_q8_0_ref returns.
#pragma once

#if !defined(__aarch64__)
#error "arm_neon.hpp is for arm64"
#endif

#include <arm_neon.h>

#include <cstring>

#include "kernels/kernel_table.hpp"
#include "kernels/vec_ops.hpp"
#include "quant/blocks.hpp"
#include "quant/quant.hpp"

namespace slm::kernels::detail {
namespace {

// Sum of 16 int8 x int8 products, accumulated into 4 int32 lanes.
inline int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t a) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, w, a);
#else
  const int16x8_t lo = vmull_s8(vget_low_s8(w), vget_low_s8(a));
  const int16x8_t hi = vmull_s8(vget_high_s8(w), vget_high_s8(a));
  return vpadalq_s16(vpadalq_s16(acc, lo), hi);  // |w * a| <= 127 * 128: the int16 products are exact
#endif
}

inline float f16(uint16_t h) {
  __fp16 v;
  std::memcpy(&v, &h, 2);
  return static_cast<float>(v);
}

inline size_t act_q8_0_row_bytes(int64_t n_cols) {
  return (static_cast<size_t>(n_cols / 32) * sizeof(quant::block_q8_0) + 63) / 64 * 64;
}

void quantize_act_q8_0(const float* x, void* dst, int64_t n_cols) {
  quant::quantize_row_q8_0_ref(x, static_cast<quant::block_q8_0*>(dst), n_cols);
}

inline float dot_q8_0_q8_0(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  const auto* x = reinterpret_cast<const quant::block_q8_0*>(row);
  const auto* y = reinterpret_cast<const quant::block_q8_0*>(act_row);
  float acc = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    __builtin_prefetch(reinterpret_cast<const uint8_t*>(x + b) + 2048);
    int32x4_t s = dot16(vdupq_n_s32(0), vld1q_s8(x[b].qs), vld1q_s8(y[b].qs));
    s = dot16(s, vld1q_s8(x[b].qs + 16), vld1q_s8(y[b].qs + 16));
    acc += (f16(x[b].d) * f16(y[b].d)) * static_cast<float>(vaddvq_s32(s));
  }
  return acc;
}

inline float dot_q4_0_q8_0(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  const auto* x = reinterpret_cast<const quant::block_q4_0*>(row);
  const auto* y = reinterpret_cast<const quant::block_q8_0*>(act_row);
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  const int8x16_t eight = vdupq_n_s8(8);
  float acc = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    __builtin_prefetch(reinterpret_cast<const uint8_t*>(x + b) + 2048);
    const uint8x16_t v = vld1q_u8(x[b].qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, low4)), eight);  // elements 0..15
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);   // elements 16..31
    int32x4_t s = dot16(vdupq_n_s32(0), lo, vld1q_s8(y[b].qs));
    s = dot16(s, hi, vld1q_s8(y[b].qs + 16));
    acc += (f16(x[b].d) * f16(y[b].d)) * static_cast<float>(vaddvq_s32(s));
  }
  return acc;
}

// Q4_1, Q5_0 and Q5_1, against the activation blocks the scalar table uses for them
// (traits.dot_type): the reference Q8_1 blocks (quantize_row_q8_1_ref: d and s = d * sum as f16)
// for Q4_1 and Q5_1, Q8_0 for Q5_0. The integer sums are exact and each block is added with the
// reference's expression (vec_dot_q4_1_q8_1_ref and friends), so results equal it bit for bit.

inline size_t act_q8_1_row_bytes(int64_t n_cols) {
  return (static_cast<size_t>(n_cols / 32) * sizeof(quant::block_q8_1) + 63) / 64 * 64;
}

void quantize_act_q8_1(const float* x, void* dst, int64_t n_cols) {
  quant::quantize_row_q8_1_ref(x, static_cast<quant::block_q8_1*>(dst), n_cols);
}

// Q5 fifth bits (qh, bit i = element i) -> 0x10 in the bytes of elements 0..15 (lo) and 16..31 (hi).
inline void q5_high_bits(const uint8_t* qh, uint8x16_t& lo, uint8x16_t& hi) {
  static const uint8_t kBits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bits = vld1q_u8(kBits), five = vdupq_n_u8(0x10);
  lo = vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1])), bits), five);
  hi = vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3])), bits), five);
}

inline float dot_q4_1_q8_1(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  const auto* x = reinterpret_cast<const quant::block_q4_1*>(row);
  const auto* y = reinterpret_cast<const quant::block_q8_1*>(act_row);
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  float acc = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    __builtin_prefetch(reinterpret_cast<const uint8_t*>(x + b) + 2048);
    const uint8x16_t v = vld1q_u8(x[b].qs);
    int32x4_t s = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(v, low4)), vld1q_s8(y[b].qs));
    s = dot16(s, vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vld1q_s8(y[b].qs + 16));
    acc += (f16(x[b].d) * f16(y[b].d)) * static_cast<float>(vaddvq_s32(s)) + f16(x[b].m) * f16(y[b].s);
  }
  return acc;
}

inline float dot_q5_0_q8_0(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  const auto* x = reinterpret_cast<const quant::block_q5_0*>(row);
  const auto* y = reinterpret_cast<const quant::block_q8_0*>(act_row);
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  const int8x16_t sixteen = vdupq_n_s8(16);
  float acc = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    __builtin_prefetch(reinterpret_cast<const uint8_t*>(x + b) + 2048);
    uint8x16_t h0, h1;
    q5_high_bits(x[b].qh, h0, h1);
    const uint8x16_t v = vld1q_u8(x[b].qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, low4), h0)), sixteen);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), h1)), sixteen);
    int32x4_t s = dot16(vdupq_n_s32(0), lo, vld1q_s8(y[b].qs));
    s = dot16(s, hi, vld1q_s8(y[b].qs + 16));
    acc += (f16(x[b].d) * f16(y[b].d)) * static_cast<float>(vaddvq_s32(s));
  }
  return acc;
}

inline float dot_q5_1_q8_1(const uint8_t* row, const uint8_t* act_row, int64_t n) {
  const auto* x = reinterpret_cast<const quant::block_q5_1*>(row);
  const auto* y = reinterpret_cast<const quant::block_q8_1*>(act_row);
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  float acc = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    __builtin_prefetch(reinterpret_cast<const uint8_t*>(x + b) + 2048);
    uint8x16_t h0, h1;
    q5_high_bits(x[b].qh, h0, h1);
    const uint8x16_t v = vld1q_u8(x[b].qs);
    int32x4_t s = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, low4), h0)), vld1q_s8(y[b].qs));
    s = dot16(s, vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), h1)), vld1q_s8(y[b].qs + 16));
    acc += (f16(x[b].d) * f16(y[b].d)) * static_cast<float>(vaddvq_s32(s)) + f16(x[b].m) * f16(y[b].s);
  }
  return acc;
}

template <float (*Dot)(const uint8_t*, const uint8_t*, int64_t)>
void rows_neon(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
               float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    const auto* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride;
    for (int64_t t = 0; t < n_tokens; ++t)
      y[t * ldy + r] = Dot(row, static_cast<const uint8_t*>(act) + t * act_stride, w.n_cols);
  }
}

// Vector traits of the elementwise ops (vec_ops.hpp): 4 lanes, FMA and division are baseline
// ARMv8-A; the same exp as the x86 levels (same operations, one rounding of e^r * 2^n).
struct VecNeon {
  using F = float32x4_t;
  using D = float64x2_t;
  static constexpr int kLanes = 4;
  static F load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, F v) { vst1q_f32(p, v); }
  static F set1(float v) { return vdupq_n_f32(v); }
  static F add(F a, F b) { return vaddq_f32(a, b); }
  static F sub(F a, F b) { return vsubq_f32(a, b); }
  static F mul(F a, F b) { return vmulq_f32(a, b); }
  static F div(F a, F b) { return vdivq_f32(a, b); }
  static F neg(F a) { return vnegq_f32(a); }
  static F max(F a, F b) { return vmaxq_f32(a, b); }
  static F fma(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static F round(F v) { return vrndnq_f32(v); }
  static F clamp(F x, F lo, F hi) { return vminq_f32(vmaxq_f32(x, lo), hi); }  // fmax/fmin keep NaN
  // 2^n in two halves n1 = floor(n / 2), n2 = n - n1 in [-75, 64]: p * 2^n1 is exact, the second
  // product rounds once.
  static F scale_pow2(F p, F n) {
    const int32x4_t ni = vcvtq_s32_f32(n);
    const int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    const F s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    const F s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
  }
  static float hmax(F v) { return vmaxvq_f32(v); }
  static D dzero() { return vdupq_n_f64(0.0); }
  static void acc_squares(D acc[2], const float* p) {
    const F v = vld1q_f32(p);
    const D lo = vcvt_f64_f32(vget_low_f32(v)), hi = vcvt_high_f64_f32(v);
    acc[0] = vfmaq_f64(acc[0], lo, lo);  // the square is exact in double: = acc + x * x
    acc[1] = vfmaq_f64(acc[1], hi, hi);
  }
  static void acc_values(D acc[2], const float* p) {
    const F v = vld1q_f32(p);
    acc[0] = vaddq_f64(acc[0], vcvt_f64_f32(vget_low_f32(v)));
    acc[1] = vaddq_f64(acc[1], vcvt_high_f64_f32(v));
  }
  static double hsum(const D acc[2]) {
    return ((vgetq_lane_f64(acc[0], 0) + vgetq_lane_f64(acc[0], 1)) + vgetq_lane_f64(acc[1], 0)) +
           vgetq_lane_f64(acc[1], 1);
  }
};

inline void add_neon_row_kernels(KernelTable& table, const char* q8_0_name, const char* q4_0_name) {
  table.by_type[static_cast<int>(DType::Q8_0)] =
      TypeKernels{q8_0_name, act_q8_0_row_bytes, quantize_act_q8_0, rows_neon<dot_q8_0_q8_0>};
  table.by_type[static_cast<int>(DType::Q4_0)] =
      TypeKernels{q4_0_name, act_q8_0_row_bytes, quantize_act_q8_0, rows_neon<dot_q4_0_q8_0>};
  add_vector_ops<VecNeon>(table);
}

// The Q4_1 / Q5_0 / Q5_1 entries (each NEON file names them with its suffix).
inline void add_neon_q4_1_q5_kernels(KernelTable& table, const char* q4_1_name, const char* q5_0_name,
                                     const char* q5_1_name) {
  table.by_type[static_cast<int>(DType::Q4_1)] =
      TypeKernels{q4_1_name, act_q8_1_row_bytes, quantize_act_q8_1, rows_neon<dot_q4_1_q8_1>};
  table.by_type[static_cast<int>(DType::Q5_0)] =
      TypeKernels{q5_0_name, act_q8_0_row_bytes, quantize_act_q8_0, rows_neon<dot_q5_0_q8_0>};
  table.by_type[static_cast<int>(DType::Q5_1)] =
      TypeKernels{q5_1_name, act_q8_1_row_bytes, quantize_act_q8_1, rows_neon<dot_q5_1_q8_1>};
}

}  // namespace
}  // namespace slm::kernels::detail
