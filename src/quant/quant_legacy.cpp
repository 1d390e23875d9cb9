// Scalar references for the float formats (F16, BF16) and the legacy 32-element formats
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1): quantize, dequantize, dot product.
#include <cfloat>
#include <cmath>
#include <cstring>

#include "quant/quant.hpp"
#include "quant/rounding.hpp"

namespace slm::quant {

using detail::round_code_q8;
using detail::trunc_code;

// ============================================================================================
// F16 / BF16 / F32
// ============================================================================================

void dequantize_row_f16_ref(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(x[i]);
}
void quantize_row_f16_ref(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}
void dequantize_row_bf16_ref(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(x[i]);
}
void quantize_row_bf16_ref(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}

float vec_dot_f32_f32_ref(int64_t n, const float* x, const float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * static_cast<double>(y[i]);
  return static_cast<float>(sum);
}
float vec_dot_f16_f32_ref(int64_t n, const uint16_t* x, const float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    sum += static_cast<double>(f16_to_f32(x[i])) * static_cast<double>(y[i]);
  }
  return static_cast<float>(sum);
}
float vec_dot_bf16_f32_ref(int64_t n, const uint16_t* x, const float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    sum += static_cast<double>(bf16_to_f32(x[i])) * static_cast<double>(y[i]);
  }
  return static_cast<float>(sum);
}

// ============================================================================================
// Block statistics shared by the quantizers
// ============================================================================================

namespace {

// The element of largest magnitude, with its sign (the first one on ties). Symmetric formats
// map it to the most negative code (-8 for Q4_0, -16 for Q5_0), which is the one code the
// positive side lacks, so the extreme value is represented exactly.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (amax < std::fabs(x[i])) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

void min_max(const float* x, int n, float* min, float* max) {
  *min = FLT_MAX;
  *max = -FLT_MAX;
  for (int i = 0; i < n; ++i) {
    if (x[i] < *min) *min = x[i];
    if (x[i] > *max) *max = x[i];
  }
}

float abs_max(const float* x, int n) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = amax > std::fabs(x[i]) ? amax : std::fabs(x[i]);
  return amax;
}

uint32_t load_u32_le(const uint8_t b[4]) {
  return static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 |
         static_cast<uint32_t>(b[2]) << 16 | static_cast<uint32_t>(b[3]) << 24;
}
void store_u32_le(uint32_t v, uint8_t b[4]) {
  for (int k = 0; k < 4; ++k) b[k] = static_cast<uint8_t>(v >> (8 * k));
}

}  // namespace

// ============================================================================================
// Q4_0 / Q4_1
// ============================================================================================

void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const float d = signed_absmax(x, kQK) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = trunc_code(x[j] * id + 8.5f, 15);
      const int q1 = trunc_code(x[j + 16] * id + 8.5f, 15);
      y[b].qs[j] = static_cast<uint8_t>(q0 | q1 << 4);
    }
  }
}

void dequantize_row_q4_0_ref(const block_q4_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((x[b].qs[j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float min, max;
    min_max(x, kQK, &min, &max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(min);
    for (int j = 0; j < 16; ++j) {
      const int q0 = trunc_code((x[j] - min) * id + 0.5f, 15);
      const int q1 = trunc_code((x[j + 16] - min) * id + 0.5f, 15);
      y[b].qs[j] = static_cast<uint8_t>(q0 | q1 << 4);
    }
  }
}

void dequantize_row_q4_1_ref(const block_q4_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    const float m = f16_to_f32(x[b].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(x[b].qs[j] & 0x0F) * d + m;
      y[j + 16] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}

// ============================================================================================
// Q5_0 / Q5_1
// ============================================================================================

void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const float d = signed_absmax(x, kQK) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = trunc_code(x[j] * id + 16.5f, 31);
      const int q1 = trunc_code(x[j + 16] * id + 16.5f, 31);
      y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | (q1 & 0x0F) << 4);
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
    }
    store_u32_le(qh, y[b].qh);
  }
}

void dequantize_row_q5_0_ref(const block_q5_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    const uint32_t qh = load_u32_le(x[b].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (x[b].qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1u) << 4;
      const int q1 = (x[b].qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      y[j] = static_cast<float>(q0 - 16) * d;
      y[j + 16] = static_cast<float>(q1 - 16) * d;
    }
  }
}

void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float min, max;
    min_max(x, kQK, &min, &max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(min);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = trunc_code((x[j] - min) * id + 0.5f, 31);
      const int q1 = trunc_code((x[j + 16] - min) * id + 0.5f, 31);
      y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | (q1 & 0x0F) << 4);
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
    }
    store_u32_le(qh, y[b].qh);
  }
}

void dequantize_row_q5_1_ref(const block_q5_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    const float m = f16_to_f32(x[b].m);
    const uint32_t qh = load_u32_le(x[b].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (x[b].qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1u) << 4;
      const int q1 = (x[b].qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      y[j] = static_cast<float>(q0) * d + m;
      y[j + 16] = static_cast<float>(q1) * d + m;
    }
  }
}

// ============================================================================================
// Q8_0 / Q8_1
// ============================================================================================

void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const float d = abs_max(x, kQK) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) y[b].qs[j] = static_cast<int8_t>(round_code_q8(x[j] * id));
  }
}

void dequantize_row_q8_0_ref(const block_q8_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

void quantize_row_q8_1_ref(const float* x, block_q8_1* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const float d = abs_max(x, kQK) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[b].qs[j] = static_cast<int8_t>(round_code_q8(x[j] * id));
      sum += y[b].qs[j];
    }
    y[b].s = f32_to_f16(static_cast<float>(sum) * d);
  }
}

void dequantize_row_q8_1_ref(const block_q8_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

// ============================================================================================
// Dot products: exact integer sum per block, then one float multiply-add per block
// ============================================================================================

float vec_dot_q4_0_q8_0_ref(int64_t n, const block_q4_0* x, const block_q8_0* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
      sumi += ((x[b].qs[j] & 0x0F) - 8) * y[b].qs[j];
      sumi += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
    }
    acc += (f16_to_f32(x[b].d) * f16_to_f32(y[b].d)) * static_cast<float>(sumi);
  }
  return acc;
}

float vec_dot_q4_1_q8_1_ref(int64_t n, const block_q4_1* x, const block_q8_1* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
      sumi += (x[b].qs[j] & 0x0F) * y[b].qs[j];
      sumi += (x[b].qs[j] >> 4) * y[b].qs[j + 16];
    }
    acc += (f16_to_f32(x[b].d) * f16_to_f32(y[b].d)) * static_cast<float>(sumi) +
           f16_to_f32(x[b].m) * f16_to_f32(y[b].s);
  }
  return acc;
}

float vec_dot_q5_0_q8_0_ref(int64_t n, const block_q5_0* x, const block_q8_0* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = load_u32_le(x[b].qh);
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = (x[b].qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1u) << 4;
      const int q1 = (x[b].qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      sumi += (q0 - 16) * y[b].qs[j] + (q1 - 16) * y[b].qs[j + 16];
    }
    acc += (f16_to_f32(x[b].d) * f16_to_f32(y[b].d)) * static_cast<float>(sumi);
  }
  return acc;
}

float vec_dot_q5_1_q8_1_ref(int64_t n, const block_q5_1* x, const block_q8_1* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = load_u32_le(x[b].qh);
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = (x[b].qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1u) << 4;
      const int q1 = (x[b].qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      sumi += q0 * y[b].qs[j] + q1 * y[b].qs[j + 16];
    }
    acc += (f16_to_f32(x[b].d) * f16_to_f32(y[b].d)) * static_cast<float>(sumi) +
           f16_to_f32(x[b].m) * f16_to_f32(y[b].s);
  }
  return acc;
}

float vec_dot_q8_0_q8_0_ref(int64_t n, const block_q8_0* x, const block_q8_0* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += x[b].qs[j] * y[b].qs[j];
    acc += (f16_to_f32(x[b].d) * f16_to_f32(y[b].d)) * static_cast<float>(sumi);
  }
  return acc;
}

}  // namespace slm::quant
