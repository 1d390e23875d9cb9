// Model-agnostic transformer operations on float rows: RMSNorm, RoPE (both pair layouts, with
// llama3 frequency scaling), softmax, SiLU-gated product, residual add, embedding lookup from any
// weight type, and causal grouped-query attention over a KV cache. Single-threaded: a caller that
// wants threads splits the work items (attention exposes them) over its pool.
#pragma once

#include <cstddef>
#include <cstdint>

#include "slm/cpu.hpp"
#include "slm/dtype.hpp"
#include "slm/status.hpp"

namespace slm::ops {

// The elementwise ops run the kernels layer's vector code for `isa`, the context's kernel level
// (ContextParams::isa); IsaLevel::scalar runs the plain reference loops (kernels.hpp states the
// accuracy of each level against them).

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]   (out may alias x)
void rmsnorm(IsaLevel isa, float* out, const float* x, const float* weight, int64_t n, float eps);

// x[i] += y[i]
void add(IsaLevel isa, float* x, const float* y, int64_t n);

// gate[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g))   (SwiGLU's gating)
void silu_mul(IsaLevel isa, float* gate, const float* up, int64_t n);

// In place: x = exp(x - max) / sum.
void softmax(IsaLevel isa, float* x, int64_t n);

// Row `row` of a [n_rows, n_cols] matrix of any computable type, as floats (embedding lookup).
// An error when the type has no reference conversion or row is out of range.
Status get_row(DType type, const void* data, size_t row_stride, int64_t n_rows, int64_t n_cols,
               int64_t row, float* out);

// ---- RoPE -----------------------------------------------------------------------------------
// Which elements form a rotated pair. GGUF `llama` files keep Meta's interleaved layout: pairs
// (2i, 2i+1). GGUF `qwen2` files keep the Hugging Face layout: pairs (i, i + n_rot/2) ("NEOX").
enum class RopeStyle { AdjacentPairs, NeoxHalves };

// Pair i (i < n_rot/2) rotates by angle pos * inv_freq[i], inv_freq[i] = base^(-2i/n_rot) / f[i]
// where f[i] is the frequency factor (1 without scaling; rope_freqs tensor entries; or llama3's
// scaling computed by llama3_freq_factors). linear_scale divides every frequency (linear scaling).
void rope_inv_freqs(float* inv_freq, int64_t n_rot, double base, const float* freq_factors,
                    double linear_scale);

// Llama 3.1's frequency factors (Meta's reference apply_scaling): wavelengths shorter than
// orig_ctx/high_freq_factor are kept (f = 1), longer than orig_ctx/low_freq_factor are stretched
// by `factor`, in between interpolated smoothly. Written as factors f[i] (new freq = freq / f[i])
// so they plug into rope_inv_freqs exactly like a rope_freqs tensor.
void llama3_freq_factors(float* factors, int64_t n_rot, double base, double factor,
                         double low_freq_factor, double high_freq_factor, double orig_ctx);

// cos/sin of the n_rot/2 angles of position pos.
void rope_cos_sin(float* cos_out, float* sin_out, const float* inv_freq, int64_t n_rot, int64_t pos);

// Rotates the first n_rot elements of each of n_heads heads of x (head_dim apart), in place:
// (a, b) -> (a cos - b sin, a sin + b cos), products rounded one by one. Runs the kernels
// layer's vector code for `isa` (kernels::rope); every level gives the same bits.
void rope(IsaLevel isa, float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_v,
          const float* sin_v, RopeStyle style);

// ---- Attention ------------------------------------------------------------------------------
// One layer's cache: K and V rows of kv_dim (= n_head_kv * head_dim) for positions 0..n_ctx-1,
// stored as F16 (uint16_t) or F32.
struct KvLayer {
  bool f16 = true;
  void* k = nullptr;  // (n_ctx, kv_dim)
  void* v = nullptr;  // (n_ctx, kv_dim)
  int64_t kv_dim = 0;
};

// Writes k and v (kv_dim floats each) at position pos; an F16 cache rounds them with
// kernels::f32_to_f16_row at level `isa` (the same bits at every level).
void kv_store(IsaLevel isa, const KvLayer& layer, int64_t pos, const float* k, const float* v);

// Causal grouped-query attention for n_tokens queries at positions pos0 .. pos0+n_tokens-1
// (keys/values for positions <= each query's position must already be stored). Query head h
// reads KV head h / (n_head / n_head_kv). Work item w = t * n_head + h; this call computes items
// [item_begin, item_end) so threads can split them (each item writes only its own output head,
// so the result does not depend on the split).
//   q:   (n_tokens, n_head * head_dim), row stride ldq floats
//   out: (n_tokens, n_head * head_dim), row stride ldo floats
//   scores: scratch of at least pos0 + n_tokens floats
//   mm_scratch: kernels::matmul scratch for one query row against the cache type
//     (attention_scratch_bytes), owned by the calling thread
// The scores q.k come from kernels::matmul over the cache rows (the F16/F32 row kernels); the
// weighted sum of values is a float axpy per position.
struct AttentionShape {
  int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
};
// isa: the kernel level of the context (ContextParams::isa).
Status attention(IsaLevel isa, const AttentionShape& shape, const KvLayer& layer, const float* q, int64_t ldq,
                 float* out, int64_t ldo, int64_t pos0, int64_t n_tokens, int64_t item_begin,
                 int64_t item_end, float* scores, void* mm_scratch, size_t mm_scratch_bytes);
size_t attention_scratch_bytes(bool f16_cache, int64_t head_dim);

// Half to float, inline so that loops over cache rows vectorize (same results as f16_to_f32).
inline float half_to_float(uint16_t h) {
  // Shifting exponent+mantissa into a float's fields and scaling by 2^(127-15) maps normals and
  // subnormals exactly; Inf/NaN (exponent 31) get the float's all-ones exponent.
  const uint32_t em = h & 0x7fffu;
  uint32_t bits = em << 13;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  f *= 0x1p112f;
  if (em >= 0x7c00u) {
    bits |= 0x7f800000u;
    __builtin_memcpy(&f, &bits, 4);
  }
  return (h & 0x8000u) ? -f : f;
}

}  // namespace slm::ops
