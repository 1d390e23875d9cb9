// Scalar references for the K-quants (Q4_K, Q5_K, Q6_K) and their activation type Q8_K:
// the scale searches of the reference quantizer, dequantization and dot products.
#include <cmath>
#include <cstring>

#include "quant/quant.hpp"
#include "quant/rounding.hpp"

namespace slm::quant {

using detail::clamp_int;
using detail::nearest_int;

// ============================================================================================
// Scale searches
// ============================================================================================
//
// The quantizers below reproduce ggml's reference K-quant quantizers step for step (the same
// searches, the same float operations in the same order), so that their output is identical.

namespace {

// Asymmetric fit x ~ scale * L - min_out with L in 0..nmax, minimising sum w * (error)^2.
// Starts from the min/max grid, then tries nstep+1 grids whose step is
// (max - min) / (nmax + rmin + rdelta * is); on each, the codes fixed, it solves the 2x2 weighted
// least-squares problem for (scale, min) and keeps the candidate with the smallest weighted
// squared error. The offset is never allowed to be positive (so min_out >= 0): the grid always
// contains 0 or starts below it, which Q4_K/Q5_K's unsigned 6-bit mins require.
// Returns the scale; L receives the codes, aux is scratch of n bytes.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out,
                    uint8_t* aux, float rmin, float rdelta, int nstep) {
  float min = x[0];
  float max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {  // constant block (or all zero)
    std::memset(L, 0, static_cast<size_t>(n));
    *min_out = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    best_error += w[i] * (diff * diff);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      const auto lf = static_cast<float>(l);
      sum_l += w[i] * lf;
      sum_l2 += w[i] * lf * lf;
      sum_xl += w[i] * lf * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float error = 0;
    for (int i = 0; i < n; ++i) {
      float diff = this_scale * static_cast<float>(aux[i]) + this_min - x[i];
      error += w[i] * (diff * diff);
    }
    if (error < best_error) {
      std::memcpy(L, aux, static_cast<size_t>(n));
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *min_out = -min;
  return scale;
}

// Symmetric fit x ~ scale * (L - nmax) with L - nmax in -nmax..nmax-1, weights x^2 (large values
// matter most). Tries the grids whose extreme value maps to -(nmax + 0.1*is), is = -9..9, and
// keeps the one whose least-squares scale explains most of the weighted energy
// (max sumlx^2 / suml2). Returns the scale (negative when the largest |x| is positive).
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < 1e-15f) {  // all (nearly) zero
    std::memset(L, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  const auto grid_sums = [&](float iscale, float* sumlx, float* suml2) {
    *sumlx = 0;
    *suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const auto l = static_cast<float>(clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      const float w = x[i] * x[i];
      *sumlx += w * x[i] * l;
      *suml2 += w * l * l;
    }
  };
  const auto store_codes = [&](float iscale) {
    for (int i = 0; i < n; ++i) {
      L[i] = static_cast<int8_t>(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
    }
  };
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx, suml2;
  grid_sums(iscale, &sumlx, &suml2);
  store_codes(iscale);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    grid_sums(iscale, &sumlx, &suml2);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      store_codes(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Shared first half of the Q4_K / Q5_K quantizers: fits each 32-element sub-block, quantizes the
// eight scales and mins to 6 bits against the super-block's d and dmin, then recomputes the codes
// L (0..nmax) against the quantized scales. Weights favour large values: w = rms(x) + |x|.
void quantize_superblock_scale_min(const float* x, int nmax, float rmin, int nstep,
                                   uint16_t* d_out, uint16_t* dmin_out, uint8_t scales_out[12],
                                   uint8_t L[kQK_K]) {
  float scales[8], mins[8], weights[32];
  uint8_t aux[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], aux, rmin, 0.1f, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    // A (never expected) negative fit wraps like ggml's uint8_t conversion, then saturates.
    const auto s = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    const auto m = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls[j] = s < 63 ? s : 63;
    lm[j] = m < 63 ? m : 63;
  }
  pack_scale_min_k4(ls, lm, scales_out);
  *d_out = f32_to_f16(max_scale / 63.f);
  *dmin_out = f32_to_f16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, scales_out, &sc, &m);
    const float d = f16_to_f32(*d_out) * static_cast<float>(sc);
    if (d == 0) continue;  // keep the fit's codes; they dequantize to -dmin*m either way
    const float dm = f16_to_f32(*dmin_out) * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) {
      L[32 * j + l] = static_cast<uint8_t>(clamp_int(nearest_int((x[32 * j + l] + dm) / d), 0, nmax));
    }
  }
}

}  // namespace

// ============================================================================================
// Q4_K
// ============================================================================================

void quantize_row_q4_k_ref(const float* x, block_q4_k* y, int64_t n) {
  uint8_t L[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    quantize_superblock_scale_min(x, 15, -1.0f, 20, &y[b].d, &y[b].dmin, y[b].scales, L);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        y[b].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | L[64 * c + 32 + l] << 4);
      }
    }
  }
}

void dequantize_row_q4_k_ref(const block_q4_k* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = f16_to_f32(x[b].d);
    const float dmin = f16_to_f32(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, x[b].scales, &sc, &m);
      const float dj = d * static_cast<float>(sc);
      const float mj = dmin * static_cast<float>(m);
      const uint8_t* q = x[b].qs + 32 * (j / 2);
      const int shift = (j % 2) * 4;
      for (int l = 0; l < 32; ++l) {
        *y++ = dj * static_cast<float>((q[l] >> shift) & 0x0F) - mj;
      }
    }
  }
}

float vec_dot_q4_k_q8_k_ref(int64_t n, const block_q4_k* x, const block_q8_k* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, x[b].scales, &sc, &m);
      const uint8_t* q = x[b].qs + 32 * (j / 2);
      const int shift = (j % 2) * 4;
      const int8_t* a = y[b].qs + 32 * j;
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) s += ((q[l] >> shift) & 0x0F) * a[l];
      sumi += sc * s;
      summ += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    const float d = f16_to_f32(x[b].d) * y[b].d;
    const float dmin = f16_to_f32(x[b].dmin) * y[b].d;
    acc += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return acc;
}

// ============================================================================================
// Q5_K
// ============================================================================================

void quantize_row_q5_k_ref(const float* x, block_q5_k* y, int64_t n) {
  uint8_t L[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    quantize_superblock_scale_min(x, 31, -0.5f, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
    std::memset(y[b].qh, 0, sizeof y[b].qh);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        y[b].qs[32 * c + l] = static_cast<uint8_t>((lo & 0x0F) | (hi & 0x0F) << 4);
        y[b].qh[l] |= static_cast<uint8_t>((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
      }
    }
  }
}

void dequantize_row_q5_k_ref(const block_q5_k* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = f16_to_f32(x[b].d);
    const float dmin = f16_to_f32(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, x[b].scales, &sc, &m);
      const float dj = d * static_cast<float>(sc);
      const float mj = dmin * static_cast<float>(m);
      const uint8_t* q = x[b].qs + 32 * (j / 2);
      const int shift = (j % 2) * 4;
      for (int l = 0; l < 32; ++l) {
        const int code = ((q[l] >> shift) & 0x0F) | ((x[b].qh[l] >> j) & 1) << 4;
        *y++ = dj * static_cast<float>(code) - mj;
      }
    }
  }
}

float vec_dot_q5_k_q8_k_ref(int64_t n, const block_q5_k* x, const block_q8_k* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, x[b].scales, &sc, &m);
      const uint8_t* q = x[b].qs + 32 * (j / 2);
      const int shift = (j % 2) * 4;
      const int8_t* a = y[b].qs + 32 * j;
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) {
        const int code = ((q[l] >> shift) & 0x0F) | ((x[b].qh[l] >> j) & 1) << 4;
        s += code * a[l];
      }
      sumi += sc * s;
      summ += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    const float d = f16_to_f32(x[b].d) * y[b].d;
    const float dmin = f16_to_f32(x[b].dmin) * y[b].d;
    acc += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return acc;
}

// ============================================================================================
// Q6_K
// ============================================================================================

namespace {
// The 6-bit code of element e (0..255) of a Q6_K block, 0..63 (see the picture in blocks.hpp).
inline int q6_k_code(const block_q6_k& blk, int e) {
  const int h = e / 128, k = (e % 128) / 32, l = e % 32;
  const uint8_t lowbyte = blk.ql[64 * h + 32 * (k % 2) + l];
  const int low = k < 2 ? (lowbyte & 0x0F) : (lowbyte >> 4);
  const int high = (blk.qh[32 * h + l] >> (2 * k)) & 3;
  return low | high << 4;
}
}  // namespace

void quantize_row_q6_k_ref(const float* x, block_q6_k* y, int64_t n) {
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max_scale = 0, max_abs_scale = 0;
    for (int s = 0; s < 16; ++s) {
      scales[s] = fit_scale_symmetric(16, 32, x + 16 * s, L + 16 * s);
      if (std::fabs(scales[s]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    if (max_abs_scale < 1e-15f) {  // all (nearly) zero: an all-zero block
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[b].d = f32_to_f16(1 / iscale);
    for (int s = 0; s < 16; ++s) {
      y[b].scales[s] = static_cast<int8_t>(clamp_int(nearest_int(iscale * scales[s]), -128, 127));
    }
    for (int s = 0; s < 16; ++s) {
      const float d = f16_to_f32(y[b].d) * static_cast<float>(y[b].scales[s]);
      if (d == 0) continue;  // keep the fit's codes; they dequantize to 0 either way
      for (int l = 0; l < 16; ++l) {
        L[16 * s + l] = static_cast<int8_t>(32 + clamp_int(nearest_int(x[16 * s + l] / d), -32, 31));
      }
    }
    std::memset(y[b].qh, 0, sizeof y[b].qh);
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; ++l) {
        int q[4];
        for (int k = 0; k < 4; ++k) q[k] = L[128 * h + 32 * k + l];
        y[b].ql[64 * h + l] = static_cast<uint8_t>((q[0] & 0x0F) | (q[2] & 0x0F) << 4);
        y[b].ql[64 * h + 32 + l] = static_cast<uint8_t>((q[1] & 0x0F) | (q[3] & 0x0F) << 4);
        y[b].qh[32 * h + l] =
            static_cast<uint8_t>((q[0] >> 4) | (q[1] >> 4) << 2 | (q[2] >> 4) << 4 | (q[3] >> 4) << 6);
      }
    }
  }
}

void dequantize_row_q6_k_ref(const block_q6_k* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int e = 0; e < kQK_K; ++e) {
      const float ds = d * static_cast<float>(x[b].scales[e / 16]);
      *y++ = ds * static_cast<float>(q6_k_code(x[b], e) - 32);
    }
  }
}

float vec_dot_q6_k_q8_k_ref(int64_t n, const block_q6_k* x, const block_q8_k* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t sumi = 0;
    for (int s = 0; s < 16; ++s) {
      int32_t sub = 0;
      for (int l = 0; l < 16; ++l) {
        const int e = 16 * s + l;
        sub += (q6_k_code(x[b], e) - 32) * y[b].qs[e];
      }
      sumi += x[b].scales[s] * sub;
    }
    acc += (f16_to_f32(x[b].d) * y[b].d) * static_cast<float>(sumi);
  }
  return acc;
}

// ============================================================================================
// Q8_K
// ============================================================================================

void quantize_row_q8_k_ref(const float* x, block_q8_k* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max = 0, amax = 0;
    for (int i = 0; i < kQK_K; ++i) {
      if (std::fabs(x[i]) > amax) {
        amax = std::fabs(x[i]);
        max = x[i];
      }
    }
    if (amax == 0) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    // -127 rather than -128: the largest value maps to -127 and codes stay in -127..127, so
    // kernels may negate or take |q| (sign tricks of maddubs-style instructions) without overflow.
    const float iscale = -127.f / max;
    for (int i = 0; i < kQK_K; ++i) {
      y[b].qs[i] = static_cast<int8_t>(clamp_int(nearest_int(iscale * x[i]), -127, 127));
    }
    for (int k = 0; k < 16; ++k) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y[b].qs[16 * k + i];
      y[b].bsums[k] = static_cast<int16_t>(sum);
    }
    y[b].d = 1 / iscale;
  }
}

void dequantize_row_q8_k_ref(const block_q8_k* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    for (int i = 0; i < kQK_K; ++i) *y++ = x[b].d * static_cast<float>(x[b].qs[i]);
  }
}

}  // namespace slm::quant
