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

#include <cmath>
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

// ============================================================================================
// K-quants against Q8_K activations. quantize_act_q8_k writes the bytes of quantize_row_q8_k_ref;
// the dots form each super-block's integer sums exactly (any order gives the same int32: no
// sum can overflow) and add the super-block with the reference's own float expression, so the
// results equal vec_dot_q4_k/q5_k/q6_k_q8_k_ref bit for bit.

inline size_t act_q8_k_row_bytes(int64_t n_cols) {
  return (static_cast<size_t>(n_cols / 256) * sizeof(quant::block_q8_k) + 63) / 64 * 64;
}

// f32 -> Q8_K following quantize_row_q8_k_ref step by step:
//   amax = the largest |x| (a lane takes |x| only when |x| > its current max, so a NaN never
//          does, as in the reference's strict compare); all zeros or NaNs give a zero block;
//   max  = the first x with |x| == amax, iscale = -127 / max, d = 1 / iscale;
//   q    = clamp(nearest_int(iscale * x), -127, 127) with the reference's trick: a product,
//          then a separate sum with 1.5 * 2^23, the low 23 bits of the result (NaN and Inf
//          products give what the scalar instructions give: they are the same operations);
//   bsums = vaddlvq_s8 of each 16 codes.
void quantize_act_q8_k(const float* x, void* dst, int64_t n_cols) {
  constexpr int kBlock = 256;
  auto* y = static_cast<quant::block_q8_k*>(dst);
  for (int64_t b = 0; b < n_cols / kBlock; ++b, x += kBlock) {
    quant::block_q8_k& out = y[b];
    float32x4_t vmax = vdupq_n_f32(0.0f);
    for (int i = 0; i < kBlock; i += 4) {
      const float32x4_t a = vabsq_f32(vld1q_f32(x + i));
      vmax = vbslq_f32(vcgtq_f32(a, vmax), a, vmax);
    }
    const float amax = vmaxvq_f32(vmax);
    if (amax == 0.0f) {
      std::memset(&out, 0, sizeof out);
      continue;
    }
    int first = 0;
    const float32x4_t vamax = vdupq_n_f32(amax);
    for (int i = 0; i < kBlock; i += 4) {
      const uint32x4_t eq = vceqq_f32(vabsq_f32(vld1q_f32(x + i)), vamax);
      if (vmaxvq_u32(eq) != 0) {
        int lane = 0;
        while (std::fabs(x[i + lane]) != amax) ++lane;
        first = i + lane;
        break;
      }
    }
    const float iscale = -127.f / x[first];
    const float32x4_t vs = vdupq_n_f32(iscale), magic = vdupq_n_f32(12582912.0f);
    const int32x4_t low23 = vdupq_n_s32(0x007fffff), offset = vdupq_n_s32(0x00400000);
    const int32x4_t hi = vdupq_n_s32(127), lo = vdupq_n_s32(-127);
    for (int i = 0; i < kBlock; i += 16) {
      int16x4_t h[4];
      for (int k = 0; k < 4; ++k) {
        const float32x4_t t = vaddq_f32(vmulq_f32(vs, vld1q_f32(x + i + 4 * k)), magic);
        const int32x4_t v = vsubq_s32(vandq_s32(vreinterpretq_s32_f32(t), low23), offset);
        h[k] = vmovn_s32(vmaxq_s32(vminq_s32(v, hi), lo));
      }
      const int8x16_t q = vcombine_s8(vmovn_s16(vcombine_s16(h[0], h[1])), vmovn_s16(vcombine_s16(h[2], h[3])));
      vst1q_s8(out.qs + i, q);
      out.bsums[i / 16] = vaddlvq_s8(q);
    }
    out.d = 1 / iscale;
  }
}

// The 8 six-bit scales and mins of a Q4_K / Q5_K block (get_scale_min_k4 for j = 0..7).
inline void unpack_scale_min_k4(const uint8_t* scales, uint8_t sc[8], uint8_t m[8]) {
  uint32_t w[3];
  std::memcpy(w, scales, 12);
  const uint32_t six = 0x3f3f3f3f, four = 0x0f0f0f0f, two = 0x03030303;
  const uint32_t sc_w[2] = {w[0] & six, (w[2] & four) | ((w[0] >> 6) & two) << 4};
  const uint32_t m_w[2] = {w[1] & six, ((w[2] >> 4) & four) | ((w[1] >> 6) & two) << 4};
  std::memcpy(sc, sc_w, 8);
  std::memcpy(m, m_w, 8);
}

// Q4_K and Q5_K (Block = block_q4_k / block_q5_k) for NT tokens at once: the codes of each
// super-block are unpacked once and dotted with every token's activations; each token's
// arithmetic is the same for any NT, so grouping tokens never changes a result. Per sub-block
// j (32 elements): s_j = sum code * a in 4 int32 lanes, then lanes += sc[j] * s_j.
template <class Block, int NT>
inline void dot_q45_k_q8_k_n(const uint8_t* row, const uint8_t* act, size_t act_stride, int64_t n, float* out) {
  constexpr bool kQ5 = sizeof(Block) == sizeof(quant::block_q5_k);
  const auto* x = reinterpret_cast<const Block*>(row);
  const quant::block_q8_k* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = reinterpret_cast<const quant::block_q8_k*>(act + t * act_stride);
  const uint8x16_t low4 = vdupq_n_u8(0x0f), five = vdupq_n_u8(0x10);
  float acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  for (int64_t b = 0; b < n / 256; ++b) {
    __builtin_prefetch(reinterpret_cast<const uint8_t*>(x + b) + 2048);
    uint8_t sc[8], m[8];
    unpack_scale_min_k4(x[b].scales, sc, m);
    uint8x16_t qh0 = vdupq_n_u8(0), qh1 = vdupq_n_u8(0);
    if constexpr (kQ5) {
      qh0 = vld1q_u8(x[b].qh);
      qh1 = vld1q_u8(x[b].qh + 16);
    }
    int32x4_t sumi[NT];
    for (int t = 0; t < NT; ++t) sumi[t] = vdupq_n_s32(0);
    for (int c = 0; c < 4; ++c) {
      const uint8x16_t v0 = vld1q_u8(x[b].qs + 32 * c), v1 = vld1q_u8(x[b].qs + 32 * c + 16);
      uint8x16_t w[4] = {vandq_u8(v0, low4), vandq_u8(v1, low4), vshrq_n_u8(v0, 4), vshrq_n_u8(v1, 4)};
      if constexpr (kQ5) {  // bit j of qh[l] is bit 4 of sub-block j's code l
        const uint8x16_t bit_lo = vdupq_n_u8(static_cast<uint8_t>(1u << (2 * c)));
        const uint8x16_t bit_hi = vdupq_n_u8(static_cast<uint8_t>(1u << (2 * c + 1)));
        w[0] = vorrq_u8(w[0], vandq_u8(vtstq_u8(qh0, bit_lo), five));
        w[1] = vorrq_u8(w[1], vandq_u8(vtstq_u8(qh1, bit_lo), five));
        w[2] = vorrq_u8(w[2], vandq_u8(vtstq_u8(qh0, bit_hi), five));
        w[3] = vorrq_u8(w[3], vandq_u8(vtstq_u8(qh1, bit_hi), five));
      }
      const int32_t sc_lo = sc[2 * c], sc_hi = sc[2 * c + 1];
      for (int t = 0; t < NT; ++t) {
        const int8_t* a = y[t][b].qs + 64 * c;
        int32x4_t s_lo = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(w[0]), vld1q_s8(a));
        s_lo = dot16(s_lo, vreinterpretq_s8_u8(w[1]), vld1q_s8(a + 16));
        int32x4_t s_hi = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(w[2]), vld1q_s8(a + 32));
        s_hi = dot16(s_hi, vreinterpretq_s8_u8(w[3]), vld1q_s8(a + 48));
        sumi[t] = vmlaq_n_s32(sumi[t], s_lo, sc_lo);
        sumi[t] = vmlaq_n_s32(sumi[t], s_hi, sc_hi);
      }
    }
    // summ = sum_j m[j] * (bsums[2j] + bsums[2j+1]); the pair sums (<= 32 * 127) fit in 16 bits.
    const int16x8_t m16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
    const float dw = f16(x[b].d), dminw = f16(x[b].dmin);
    for (int t = 0; t < NT; ++t) {
      const int16x8_t pairs = vpaddq_s16(vld1q_s16(y[t][b].bsums), vld1q_s16(y[t][b].bsums + 8));
      const int32x4_t mm = vmlal_high_s16(vmull_s16(vget_low_s16(pairs), vget_low_s16(m16)), pairs, m16);
      const int32_t summ = vaddvq_s32(mm);
      const float d = dw * y[t][b].d;
      const float dmin = dminw * y[t][b].d;
      acc[t] += d * static_cast<float>(vaddvq_s32(sumi[t])) - dmin * static_cast<float>(summ);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

// Q6_K for NT tokens: codes 0..63 stand for q - 32, formed as signed bytes; each 16-element
// sub-block s is one vector: lanes += scales[s] * dot_s.
template <int NT>
inline void dot_q6_k_q8_k_n(const uint8_t* row, const uint8_t* act, size_t act_stride, int64_t n, float* out) {
  const auto* x = reinterpret_cast<const quant::block_q6_k*>(row);
  const quant::block_q8_k* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = reinterpret_cast<const quant::block_q8_k*>(act + t * act_stride);
  const uint8x16_t low4 = vdupq_n_u8(0x0f), two = vdupq_n_u8(0x03);
  const int8x16_t k32 = vdupq_n_s8(32);
  float acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  for (int64_t b = 0; b < n / 256; ++b) {
    __builtin_prefetch(reinterpret_cast<const uint8_t*>(x + b) + 2048);
    int32x4_t sumi[NT];
    for (int t = 0; t < NT; ++t) sumi[t] = vdupq_n_s32(0);
    for (int h = 0; h < 2; ++h) {
      for (int i = 0; i < 2; ++i) {  // l = 16i .. 16i + 15
        const uint8x16_t ql0 = vld1q_u8(x[b].ql + 64 * h + 16 * i);
        const uint8x16_t ql1 = vld1q_u8(x[b].ql + 64 * h + 32 + 16 * i);
        const uint8x16_t qh = vld1q_u8(x[b].qh + 32 * h + 16 * i);
        uint8x16_t q[4];
        q[0] = vorrq_u8(vandq_u8(ql0, low4), vshlq_n_u8(vandq_u8(qh, two), 4));
        q[1] = vorrq_u8(vandq_u8(ql1, low4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), two), 4));
        q[2] = vorrq_u8(vshrq_n_u8(ql0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), two), 4));
        q[3] = vorrq_u8(vshrq_n_u8(ql1, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4));
        for (int k = 0; k < 4; ++k) {
          const int8x16_t w = vsubq_s8(vreinterpretq_s8_u8(q[k]), k32);
          const int s = 8 * h + 2 * k + i;  // element 128h + 32k + 16i + (0..15)
          const int32_t scale = x[b].scales[s];
          for (int t = 0; t < NT; ++t)
            sumi[t] = vmlaq_n_s32(sumi[t], dot16(vdupq_n_s32(0), w, vld1q_s8(y[t][b].qs + 16 * s)), scale);
        }
      }
    }
    const float dw = f16(x[b].d);
    for (int t = 0; t < NT; ++t) acc[t] += (dw * y[t][b].d) * static_cast<float>(vaddvq_s32(sumi[t]));
  }
  for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

// Rows x tokens for the K-quants and the float types: tokens in groups of 4 share each row's
// unpacking, the rest go one by one (the same arithmetic per token either way).
template <void (*Dot1)(const uint8_t*, const uint8_t*, size_t, int64_t, float*),
          void (*Dot4)(const uint8_t*, const uint8_t*, size_t, int64_t, float*)>
void rows_grouped(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n_tokens,
                  float* y, int64_t ldy) {
  const auto* a = static_cast<const uint8_t*>(act);
  for (int64_t r = r0; r < r1; ++r) {
    const auto* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride;
    int64_t t = 0;
    for (; t + 4 <= n_tokens; t += 4) {
      float out[4];
      Dot4(row, a + t * act_stride, act_stride, w.n_cols, out);
      for (int i = 0; i < 4; ++i) y[(t + i) * ldy + r] = out[i];
    }
    for (; t < n_tokens; ++t) Dot1(row, a + t * act_stride, act_stride, w.n_cols, &y[t * ldy + r]);
  }
}

// ============================================================================================
// Float weights (F32, F16, BF16) against the f32 activations, read in place. Per token: 16
// partial sums (4 accumulators x 4 lanes) of fused products over k = 16i + lane, added
// ((a0 + a1) + (a2 + a3)) and then across lanes, then a fused scalar tail for K % 16. Not the
// reference's double-precision sum: the error against it is at most about
//   (K / 16 + 20) * 2^-24 * sum_k |w_k x_k|
// (test_kernels_neon holds every output to (K / 16 + 32) * 2^-24 * sum |w x| + 1e-30).

struct NeonLoadF32 {
  static float32x4_t load4(const uint8_t* row, int64_t k) { return vld1q_f32(reinterpret_cast<const float*>(row) + k); }
  static float load1(const uint8_t* row, int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
  static constexpr int kBytes = 4;
};
struct NeonLoadF16 {
  static float32x4_t load4(const uint8_t* row, int64_t k) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + k)));
  }
  static float load1(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    return f16(h);
  }
  static constexpr int kBytes = 2;
};
struct NeonLoadBF16 {
  static float32x4_t load4(const uint8_t* row, int64_t k) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + k), 16));
  }
  static float load1(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  static constexpr int kBytes = 2;
};

template <class L, int NT>
inline void dot_float_n(const uint8_t* row, const uint8_t* act, size_t act_stride, int64_t n, float* out) {
  const float* x[NT];
  for (int t = 0; t < NT; ++t) x[t] = reinterpret_cast<const float*>(act + t * act_stride);
  float32x4_t acc[NT][4];
  for (int t = 0; t < NT; ++t)
    for (int i = 0; i < 4; ++i) acc[t][i] = vdupq_n_f32(0.0f);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __builtin_prefetch(row + k * L::kBytes + 1024);
    float32x4_t wv[4];
    for (int i = 0; i < 4; ++i) wv[i] = L::load4(row, k + 4 * i);
    for (int t = 0; t < NT; ++t)
      for (int i = 0; i < 4; ++i) acc[t][i] = vfmaq_f32(acc[t][i], wv[i], vld1q_f32(x[t] + k + 4 * i));
  }
  for (int t = 0; t < NT; ++t) {
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[t][0], acc[t][1]), vaddq_f32(acc[t][2], acc[t][3])));
    for (int64_t j = k; j < n; ++j) sum = std::fma(L::load1(row, j), x[t][j], sum);
    out[t] = sum;
  }
}

// ============================================================================================
// weighted_row_sum (attention's value sum): out[d] = 0, then out[d] + w[p] * v[p][d] for p in
// order, a product and a separate sum per step (no FMA), so the results equal the scalar loop
// bit for bit. 32 outputs at a time in 8 accumulators, then 4, then a scalar tail.

struct NeonRowF16 {
  static float32x4_t load4(const uint8_t* row, int64_t d) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + d)));
  }
  static float load1(const uint8_t* row, int64_t d) {
    uint16_t h;
    std::memcpy(&h, row + 2 * d, 2);
    return f16(h);
  }
};
struct NeonRowF32 {
  static float32x4_t load4(const uint8_t* row, int64_t d) { return vld1q_f32(reinterpret_cast<const float*>(row) + d); }
  static float load1(const uint8_t* row, int64_t d) { return reinterpret_cast<const float*>(row)[d]; }
};

template <class L>
void weighted_sum_neon(const void* rows, size_t row_stride, int64_t n_rows, const float* weights, int64_t n,
                       float* out) {
  const auto* base = static_cast<const uint8_t*>(rows);
  int64_t d0 = 0;
  for (; d0 + 32 <= n; d0 += 32) {
    float32x4_t acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = vdupq_n_f32(0.0f);
    for (int64_t p = 0; p < n_rows; ++p) {
      const uint8_t* row = base + static_cast<size_t>(p) * row_stride;
      const float32x4_t a = vdupq_n_f32(weights[p]);
      for (int i = 0; i < 8; ++i) acc[i] = vaddq_f32(acc[i], vmulq_f32(a, L::load4(row, d0 + 4 * i)));
    }
    for (int i = 0; i < 8; ++i) vst1q_f32(out + d0 + 4 * i, acc[i]);
  }
  for (; d0 + 4 <= n; d0 += 4) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t p = 0; p < n_rows; ++p)
      acc = vaddq_f32(acc, vmulq_f32(vdupq_n_f32(weights[p]), L::load4(base + static_cast<size_t>(p) * row_stride, d0)));
    vst1q_f32(out + d0, acc);
  }
  for (; d0 < n; ++d0) {
    float acc = 0.0f;
    for (int64_t p = 0; p < n_rows; ++p) {
      const float prod = weights[p] * L::load1(base + static_cast<size_t>(p) * row_stride, d0);
      acc = acc + prod;
    }
    out[d0] = acc;
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


// The Q4_K / Q5_K / Q6_K (Q8_K activations) and F32 / F16 / BF16 entries and weighted_row_sum
// (each NEON file names them with its suffix).
inline void add_neon_kquant_float_kernels(KernelTable& table, const char* q4_k_name, const char* q5_k_name,
                                          const char* q6_k_name, const char* f32_name, const char* f16_name,
                                          const char* bf16_name) {
  auto set = [&](DType t, const char* name, ActRowBytesFn bytes, QuantizeActFn quant, MatmulRowsFn rows) {
    table.by_type[static_cast<int>(t)] = TypeKernels{name, bytes, quant, rows};
  };
  set(DType::Q4_K, q4_k_name, act_q8_k_row_bytes, quantize_act_q8_k,
      rows_grouped<dot_q45_k_q8_k_n<quant::block_q4_k, 1>, dot_q45_k_q8_k_n<quant::block_q4_k, 4>>);
  set(DType::Q5_K, q5_k_name, act_q8_k_row_bytes, quantize_act_q8_k,
      rows_grouped<dot_q45_k_q8_k_n<quant::block_q5_k, 1>, dot_q45_k_q8_k_n<quant::block_q5_k, 4>>);
  set(DType::Q6_K, q6_k_name, act_q8_k_row_bytes, quantize_act_q8_k,
      rows_grouped<dot_q6_k_q8_k_n<1>, dot_q6_k_q8_k_n<4>>);
  set(DType::F32, f32_name, nullptr, nullptr, rows_grouped<dot_float_n<NeonLoadF32, 1>, dot_float_n<NeonLoadF32, 4>>);
  set(DType::F16, f16_name, nullptr, nullptr, rows_grouped<dot_float_n<NeonLoadF16, 1>, dot_float_n<NeonLoadF16, 4>>);
  set(DType::BF16, bf16_name, nullptr, nullptr,
      rows_grouped<dot_float_n<NeonLoadBF16, 1>, dot_float_n<NeonLoadBF16, 4>>);
  table.weighted_sum_f16 = weighted_sum_neon<NeonRowF16>;
  table.weighted_sum_f32 = weighted_sum_neon<NeonRowF32>;
}

}  // namespace
}  // namespace slm::kernels::detail
