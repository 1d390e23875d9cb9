// Internal: the per-level tables of kernel function pointers that kernels::matmul dispatches
// through, and the functions each ISA translation unit exports to fill them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.hpp"
#include "slm/cpu.hpp"

namespace slm::kernels::detail {

// Converts one activation row of n_cols floats into the layout MatmulRowsFn reads.
using QuantizeActFn = void (*)(const float* x, void* dst, int64_t n_cols);
// Bytes of one converted activation row (a multiple of 64, so rows stay cache-line aligned).
using ActRowBytesFn = size_t (*)(int64_t n_cols);
// y[t * ldy + r] = dot(row r of w, activation t) for r in [r0, r1), t in [0, n_tokens).
// act: n_tokens converted rows, act_stride bytes apart (or the float rows of x when the entry
// has no quantize_act). Each output is computed by the same sequence of operations whatever
// r0 and r1 are, so splitting rows over threads never changes a result. Across token counts:
// the K-quant and interleaved-layout kernels give the same bits for any n_tokens; the plain
// Q8_0/Q4_0, Q4_1/Q5_0/Q5_1 and float entries switch from row kernels to a GEMM at 4 tokens,
// whose summation order differs (both within test_kernels' bound of the exact product).
using MatmulRowsFn = void (*)(const Matrix& w, int64_t r0, int64_t r1, const void* act,
                              size_t act_stride, int64_t n_tokens, float* y, int64_t ldy);

struct TypeKernels {
  const char* name = nullptr;             // what runs, e.g. "gemm_q8_0_q8_0_avx512vnni"
  ActRowBytesFn act_row_bytes = nullptr;  // nullptr: rows read the float activations directly
  QuantizeActFn quantize_act = nullptr;
  MatmulRowsFn rows = nullptr;            // nullptr: this type cannot be multiplied
  // The same product on the interleaved layout (kernels.hpp Layout::x16), reading the same
  // activation rows as `rows`; nullptr: matmul runs rows_x16_ref with Q8_0 activations.
  // A level sets it together with its own quantize_act, never inherits it.
  MatmulRowsFn rows_x16 = nullptr;
  const char* name_x16 = nullptr;
};

// GGUF type ids are < 40 (dtype.hpp); the table is indexed by the id.
constexpr int kTypeSlots = 40;

// kernels::weighted_row_sum for one row type.
using WeightedSumFn = void (*)(const void* rows, size_t row_stride, int64_t n_rows, const float* weights, int64_t n,
                               float* out);

// The elementwise ops of kernels.hpp (kernels::exp_f32, silu_mul, softmax, rmsnorm, add).
using ExpFn = void (*)(const float* x, float* out, int64_t n);
using SiluMulFn = void (*)(float* gate, const float* up, int64_t n);
using SoftmaxFn = void (*)(float* x, int64_t n);
using RmsnormFn = void (*)(float* out, const float* x, const float* weight, int64_t n, float eps);
using AddRowFn = void (*)(float* x, const float* y, int64_t n);
// kernels::rope and kernels::f32_to_f16_row.
using RopeFn = void (*)(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_v,
                        const float* sin_v, bool neox);
using F32ToF16RowFn = void (*)(const float* x, uint16_t* out, int64_t n);

struct KernelTable {
  IsaLevel level = IsaLevel::scalar;
  TypeKernels by_type[kTypeSlots];
  WeightedSumFn weighted_sum_f16 = nullptr;
  WeightedSumFn weighted_sum_f32 = nullptr;
  ExpFn exp = nullptr;
  SiluMulFn silu_mul = nullptr;
  SoftmaxFn softmax = nullptr;
  RmsnormFn rmsnorm = nullptr;
  AddRowFn add = nullptr;
  RopeFn rope = nullptr;
  F32ToF16RowFn f32_to_f16 = nullptr;
};

// Each level's table starts as a copy of the level below it and overrides the entries it has
// a faster kernel for, so a type without a SIMD kernel falls back down the chain.
void add_scalar_kernels(KernelTable& table);
void add_scalar_vector_ops(KernelTable& table);  // vector_ops.cpp: the plain loops (reference)
#if defined(__x86_64__)
void add_avx2_kernels(KernelTable& table);        // kernels_avx2.cpp: -mavx2 -mfma -mf16c
void add_avxvnni_kernels(KernelTable& table);     // kernels_avxvnni.cpp: + -mavxvnni (on avx2's table)
void add_avx512_kernels(KernelTable& table);      // kernels_avx512.cpp: + -mavx512f/bw/vl
void add_avx512vnni_kernels(KernelTable& table);  // kernels_avx512vnni.cpp: + -mavx512vnni
void add_amx_kernels(KernelTable& table);         // kernels_amx.cpp: + -mamx-tile -mamx-int8
#endif
#if defined(__aarch64__)
void add_neon_kernels(KernelTable& table);          // kernels_neon.cpp: baseline ARMv8-A
void add_neon_dotprod_kernels(KernelTable& table);  // kernels_neon_dotprod.cpp: +dotprod
#endif

// The scalar reference on the interleaved layout (interleave.cpp; Q4_0 or Q8_0), reading Q8_0
// activation blocks. Per row and token: acc = 0, then for each block in order
//   acc = fma(float(sum_j w_j * a_j), d_w * d_a, acc)     (w_j = q_j - 8 for Q4_0)
// which is the arithmetic every interleaved kernel (GEMV and GEMM) keeps, so all of them give
// the same bits for any thread count or token tiling.
void rows_x16_ref(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                       int64_t n_tokens, float* y, int64_t ldy);

// The table for `level`, or nullptr when this build or this CPU cannot run it (cpu.cpp).
const KernelTable* kernel_table(IsaLevel level);

}  // namespace slm::kernels::detail
