// The elementwise ops' scalar reference loops (the IsaLevel::scalar entries; these are the loops
// ops.cpp ran before the ops had vector kernels, so the scalar level keeps their exact results)
// and the kernels::exp_f32 / silu_mul / softmax / rmsnorm / add / rope / f32_to_f16_row entry
// points. Compiled for the
// baseline ISA like the rest of the library.
#include <cmath>

#include "kernels/kernel_table.hpp"
#include "slm/dtype.hpp"

namespace slm::kernels {
namespace detail {
namespace {

void exp_scalar(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
}

void silu_mul_scalar(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax_scalar(float* x, int64_t n) {
  if (n <= 0) return;
  float max = x[0];
  for (int64_t i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void rmsnorm_scalar(float* out, const float* x, const float* weight, int64_t n, float eps) {
  // Sum of squares in double: n is up to ~8k and the residual stream can reach |x| ~ 1e2, where a
  // float sum would lose the low bits that differ between batch and single-token paths.
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * weight[i];
}

void add_scalar(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

// The loop ops::rope always ran, each product rounded on its own (this file is built with
// -ffp-contract=off: GCC for arm64 would fuse a product and the sum into an FMA), which the
// vector versions match.
void rope_scalar(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_v, const float* sin_v,
                 bool neox) {
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      // (a, b) -> (a cos - b sin, a sin + b cos)
      const int64_t ia = neox ? i : 2 * i;
      const int64_t ib = neox ? i + half : 2 * i + 1;
      const float a = v[ia], b = v[ib];
      const float ac = a * cos_v[i], bs = b * sin_v[i], as = a * sin_v[i], bc = b * cos_v[i];
      v[ia] = ac - bs;
      v[ib] = as + bc;
    }
  }
}

void f32_to_f16_scalar(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = slm::f32_to_f16(x[i]);
}

}  // namespace

void add_scalar_vector_ops(KernelTable& table) {
  table.exp = exp_scalar;
  table.silu_mul = silu_mul_scalar;
  table.softmax = softmax_scalar;
  table.rmsnorm = rmsnorm_scalar;
  table.add = add_scalar;
  table.rope = rope_scalar;
  table.f32_to_f16 = f32_to_f16_scalar;
}

}  // namespace detail

namespace {
const detail::KernelTable& table_for(IsaLevel level) {
  const detail::KernelTable* table = detail::kernel_table(level);
  return table ? *table : *detail::kernel_table(IsaLevel::scalar);
}
}  // namespace

void exp_f32(IsaLevel level, const float* x, float* out, int64_t n) { table_for(level).exp(x, out, n); }
void silu_mul(IsaLevel level, float* gate, const float* up, int64_t n) { table_for(level).silu_mul(gate, up, n); }
void softmax(IsaLevel level, float* x, int64_t n) { table_for(level).softmax(x, n); }
void rmsnorm(IsaLevel level, float* out, const float* x, const float* weight, int64_t n, float eps) {
  table_for(level).rmsnorm(out, x, weight, n, eps);
}
void add(IsaLevel level, float* x, const float* y, int64_t n) { table_for(level).add(x, y, n); }
void rope(IsaLevel level, float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_v,
          const float* sin_v, bool neox) {
  table_for(level).rope(x, n_heads, head_dim, n_rot, cos_v, sin_v, neox);
}
void f32_to_f16_row(IsaLevel level, const float* x, uint16_t* out, int64_t n) {
  table_for(level).f32_to_f16(x, out, n);
}

}  // namespace slm::kernels
