// Scalar reference routines for every format the engine computes with: row quantizers,
// dequantizers and the dot products that define what the SIMD kernels must compute.
//
// Internal header (src/quant/quant.hpp). All routines take a row length n in elements that is a
// positive multiple of the format's block size (32, or 256 for K-quants); callers check it with
// slm::row_bytes() first. They never fail and never read or write outside n elements / n/QK
// blocks. Inputs may hold any float (NaN, Inf): the quantizers stay free of undefined
// behaviour on them, but the codes they produce for such blocks are unspecified.
//
// Quantizers reproduce ggml's reference quantizers (quantize_row_*_ref, the ones llama-quantize
// uses when no importance matrix is given) for finite inputs, so a file quantized here matches
// one quantized by llama.cpp byte for byte.
//
// Dot products (w = weights, a = activations quantized to the weight type's dot type):
//   legacy formats: per 32-block an exact integer sum  sumi = sum_i qw[i] * qa[i]  (with qw the
//     signed code, e.g. q - 8 for Q4_0), then  acc += (dw * da) * sumi  in float, blocks in
//     order; Q4_1/Q5_1 add  mw * sa  (the Q8_1 block's s). Scales are f16 -> f32 exactly.
//   K-quants: per 256-super-block exact integer sums
//       sumi = sum_j sc[j] * (sum_{i in sub-block j} q[i] * qa[i])
//       summ = sum_j m[j] * (bsums of sub-block j)          (Q4_K, Q5_K only)
//     then  acc += (d * da) * sumi - (dmin * da) * summ  in float (Q6_K: q - 32, no summ).
//   float types: products and sum in double, rounded once to float at the end.
// A SIMD kernel computes the same integer sums exactly; it may only differ in the order of the
// float accumulation over blocks, so comparisons can use a tight relative tolerance.
#pragma once

#include <cstdint>

#include "quant/blocks.hpp"
#include "slm/dtype.hpp"

namespace slm::quant {

// ---- F32 / F16 / BF16 ------------------------------------------------------------------------
void dequantize_row_f16_ref(const uint16_t* x, float* y, int64_t n);
void quantize_row_f16_ref(const float* x, uint16_t* y, int64_t n);
void dequantize_row_bf16_ref(const uint16_t* x, float* y, int64_t n);
void quantize_row_bf16_ref(const float* x, uint16_t* y, int64_t n);

float vec_dot_f32_f32_ref(int64_t n, const float* x, const float* y);
float vec_dot_f16_f32_ref(int64_t n, const uint16_t* x, const float* y);
float vec_dot_bf16_f32_ref(int64_t n, const uint16_t* x, const float* y);

// ---- legacy 32-element formats -----------------------------------------------------------------
void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t n);
void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t n);
void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t n);
void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t n);
void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t n);
void quantize_row_q8_1_ref(const float* x, block_q8_1* y, int64_t n);

void dequantize_row_q4_0_ref(const block_q4_0* x, float* y, int64_t n);
void dequantize_row_q4_1_ref(const block_q4_1* x, float* y, int64_t n);
void dequantize_row_q5_0_ref(const block_q5_0* x, float* y, int64_t n);
void dequantize_row_q5_1_ref(const block_q5_1* x, float* y, int64_t n);
void dequantize_row_q8_0_ref(const block_q8_0* x, float* y, int64_t n);
void dequantize_row_q8_1_ref(const block_q8_1* x, float* y, int64_t n);

float vec_dot_q4_0_q8_0_ref(int64_t n, const block_q4_0* x, const block_q8_0* y);
float vec_dot_q4_1_q8_1_ref(int64_t n, const block_q4_1* x, const block_q8_1* y);
float vec_dot_q5_0_q8_0_ref(int64_t n, const block_q5_0* x, const block_q8_0* y);
float vec_dot_q5_1_q8_1_ref(int64_t n, const block_q5_1* x, const block_q8_1* y);
float vec_dot_q8_0_q8_0_ref(int64_t n, const block_q8_0* x, const block_q8_0* y);

// ---- K-quants (256-element super-blocks) -----------------------------------------------------
void quantize_row_q4_k_ref(const float* x, block_q4_k* y, int64_t n);
void quantize_row_q5_k_ref(const float* x, block_q5_k* y, int64_t n);
void quantize_row_q6_k_ref(const float* x, block_q6_k* y, int64_t n);
void quantize_row_q8_k_ref(const float* x, block_q8_k* y, int64_t n);

void dequantize_row_q4_k_ref(const block_q4_k* x, float* y, int64_t n);
void dequantize_row_q5_k_ref(const block_q5_k* x, float* y, int64_t n);
void dequantize_row_q6_k_ref(const block_q6_k* x, float* y, int64_t n);
void dequantize_row_q8_k_ref(const block_q8_k* x, float* y, int64_t n);

float vec_dot_q4_k_q8_k_ref(int64_t n, const block_q4_k* x, const block_q8_k* y);
float vec_dot_q5_k_q8_k_ref(int64_t n, const block_q5_k* x, const block_q8_k* y);
float vec_dot_q6_k_q8_k_ref(int64_t n, const block_q6_k* x, const block_q8_k* y);

// ---- by type -----------------------------------------------------------------------------------
// The reference dot product of a row of weights of type `w` (n elements) with a row of
// activations already converted to traits(w).dot_type (F32 for float weights). nullptr when the
// engine does not compute with `w`.
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);
VecDotFn vec_dot_ref(DType w);

}  // namespace slm::quant
