// The kernel layer's interface to the ops: matrix products for every weight type, attention's
// value sum and the elementwise ops (exp, SiLU, softmax, RMSNorm, add), chosen at run time for
// the best ISA this CPU has. Model code never calls an ISA-specific kernel directly.
#pragma once

#include <cstddef>
#include <cstdint>

#include "slm/cpu.hpp"
#include "slm/dtype.hpp"
#include "slm/status.hpp"

namespace slm {
class ThreadPool;

namespace kernels {

// How a Matrix's bytes are laid out.
enum class Layout : uint8_t {
  // As stored in GGUF: row after row, each row_stride bytes.
  rows = 0,
  // Q4_0 and Q8_0 rows interleaved 16 at a time for the decode GEMV (interleave_x16): for each
  // group of 16 rows (rows 16G..16G+15) and each 32-element block b, the 16 blocks' bytes:
  //   Q4_0 (288 bytes): four 64-byte lines, line i holding bytes qs[4i..4i+3] of row 16G + r at
  //     bytes 4r..4r+3 (low nibbles: elements 4i..4i+3, high nibbles: 16+4i..16+4i+3);
  //   Q8_0 (544 bytes): eight 64-byte lines, line i holding codes 4i..4i+3 of row 16G + r at
  //     bytes 4r..4r+3, each plus 128 (unsigned bytes, as vpdpbusd takes them);
  //   then the 16 rows' f16 scales d (32 bytes).
  // Group G starts at G * 16 * row_bytes: the same bytes as the plain rows, reordered so that one
  // 512-bit register holds 4 codes of each of 16 rows, lane r = row r.
  // The K-quants, per group and 256-element super-block sb, one record of 16 blocks' bytes (the
  // same size as the plain rows: the loader's and the C API's memory figures do not change);
  // "line k" = 64 bytes holding dword k of a field of row r at bytes 4r..4r+3:
  //   Q4_K (2304 bytes): 32 lines of qs (line l = qs[4l..4l+3]: low nibbles are elements
  //     64(l/8) + 4(l%8).. of sub-block 2(l/8), high nibbles the same of sub-block 2(l/8) + 1),
  //     3 lines of the 12-byte 6-bit scale/min field, 16 f16 d, 16 f16 dmin;
  //   Q6_K (3360 bytes): per half h and i < 8, three lines: ql[64h + 4i..], ql[64h + 32 + 4i..],
  //     qh[32h + 4i..] (the ql/qh bytes of elements 128h + 4i + 32k.., k < 4), then the int8
  //     sub-block scales as [sub][row] (256 bytes), 16 f16 d.
  // The GEMV uses the nibbles as vpdpbusd's unsigned operand against broadcast Q8_K codes, the
  // scales per row as lanes; Q6_K's -32 starts each sub-block sum at -32 * bsums (exact).
  x16 = 1,
};

// A weight matrix as stored in GGUF: n_rows rows of n_cols elements of `type`, row-major, each
// row `row_stride` bytes (= row_bytes(type, n_cols) for a plain 2-D tensor); or, with
// layout x16, the interleaved copy of such a matrix (row_stride = its plain row bytes).
struct Matrix {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  size_t row_stride = 0;
  Layout layout = Layout::rows;
};

// ---- Load-time interleaving (interleave.cpp) -------------------------------------------------
// Whether `w` (a plain Q4_0, Q8_0, Q4_K or Q6_K matrix with n_rows % 16 == 0) can be interleaved.
bool can_interleave(const Matrix& w);
// Whether `level` has a native kernel for the interleaved layout of `type` (otherwise matmul
// runs the scalar reference on it: correct, but slow). Models interleave only when it pays.
bool interleave_pays(IsaLevel level, DType type);
// Bytes of the interleaved copy (equal to the plain matrix's n_rows * row_bytes).
size_t interleaved_bytes(const Matrix& w);
// Writes the interleaved copy of `w` to dst (dst_bytes >= interleaved_bytes(w)) and returns the
// Matrix that describes it. An error when can_interleave(w) is false or dst is too small.
Expected<Matrix> interleave_x16(const Matrix& w, void* dst, size_t dst_bytes);

// Bytes of scratch that matmul needs for `n_tokens` activation rows of n_cols (the activations
// quantized to the weight type's dot type). The caller allocates it once (context creation).
size_t matmul_scratch_bytes(DType weight_type, int64_t n_cols, int64_t n_tokens);

// y[t][r] = sum_k W[r][k] * x[t][k]  for t < n_tokens, r < n_rows.
// x: n_tokens rows with stride ldx floats; y: n_tokens rows with stride ldy floats.
// Work is split over output rows, so the result does not depend on the thread count.
// pool may be nullptr (run on the caller's thread).
// Work of fewer multiply-adds than this (for matmul: rows x cols x tokens) is not worth waking
// the thread pool for: ~2^18 MACs take ~5-10 us on one core, about what waking and joining the
// workers costs. matmul runs such products on the caller's thread; callers with their own
// parallel loops use the same bound.
constexpr double kMinPoolMacs = 262144.0;

Status matmul(const Matrix& w, const float* x, int64_t ldx, int64_t n_tokens, float* y,
              int64_t ldy, void* scratch, size_t scratch_bytes, ThreadPool* pool);

// The same at a given ISA level instead of default_isa_level() (tests, benchmarks, --isa): an
// error when this CPU or build cannot run `level`. The activation layout in the scratch depends
// on the level; matmul_scratch_bytes returns enough for every level.
Status matmul(IsaLevel level, const Matrix& w, const float* x, int64_t ldx, int64_t n_tokens,
              float* y, int64_t ldy, void* scratch, size_t scratch_bytes, ThreadPool* pool);

// Name of the kernel that matmul runs for `weight_type` at `level` (for logs and benchmarks),
// e.g. "gemm_q8_0_q8_0_avx512vnni"; nullptr when there is none.
const char* matmul_kernel_name(DType weight_type, IsaLevel level);
// The same for a matrix in its layout (the interleaved layout has its own kernels).
const char* matmul_kernel_name(const Matrix& w, IsaLevel level);

// out[d] = sum_{p < n_rows} weights[p] * rows[p][d] for d < n: attention's weighted sum of value
// rows. rows: n_rows rows of `type` (F16 or F32), row_stride bytes apart. Each out[d] is formed
// as 0, then out[d] + weights[p] * v (a product, then a sum: no FMA) for p in order, on every
// level, so the result is the same bit for bit as that plain scalar loop.
Status weighted_row_sum(DType type, const void* rows, size_t row_stride, int64_t n_rows, const float* weights,
                        int64_t n, float* out);
// The same at a given ISA level (tests): an error when this CPU or build cannot run `level`.
Status weighted_row_sum(IsaLevel level, DType type, const void* rows, size_t row_stride, int64_t n_rows,
                        const float* weights, int64_t n, float* out);

// ---- Elementwise ops on float rows (the ops component's hot path) ---------------------------
// Each level has its own vector code (vec_ops.hpp); IsaLevel::scalar runs the plain loops the
// ops component always had (the reference). A level this CPU or build cannot run uses the scalar
// loops (contexts validate their level at creation, so this only happens with a bad argument).
// Accuracy against the scalar loops (test_kernels): exp_f32 <= 4 ulp of exp in double;
// silu_mul and softmax within 1e-6 relative; rmsnorm and add the same bits except when the
// double sum of squares rounds the scale differently (1e-6 relative at most).

// out[i] = exp(x[i]) (out may alias x).
void exp_f32(IsaLevel level, const float* x, float* out, int64_t n);
// gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]   (SwiGLU: silu(gate) * up)
void silu_mul(IsaLevel level, float* gate, const float* up, int64_t n);
// In place: x = exp(x - max) / sum, the sum in double. Any NaN makes every output NaN.
void softmax(IsaLevel level, float* x, int64_t n);
// out[i] = x[i] * inv * weight[i], inv = 1 / sqrt(sum(x^2) / n + eps) with the sum of squares in
// double (out may alias x).
void rmsnorm(IsaLevel level, float* out, const float* x, const float* weight, int64_t n, float eps);
// x[i] += y[i]
void add(IsaLevel level, float* x, const float* y, int64_t n);

// RoPE in place on the first n_rot elements of each of n_heads heads of x (head_dim apart): pair i
// (i < n_rot/2) is elements (2i, 2i+1), or (i, i + n_rot/2) with neox, and turns into
// (a cos_v[i] - b sin_v[i], a sin_v[i] + b cos_v[i]), each product rounded on its own (no FMA).
// Every level gives the scalar loop's bits.
void rope(IsaLevel level, float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_v,
          const float* sin_v, bool neox);
// out[i] = f32_to_f16(x[i]) (dtype.hpp: round to nearest even, overflow to Inf, NaN kept quiet
// with its top payload bits). Every level gives the scalar conversion's bits.
void f32_to_f16_row(IsaLevel level, const float* x, uint16_t* out, int64_t n);

}  // namespace kernels
}  // namespace slm
