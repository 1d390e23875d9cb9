// Model-agnostic transformer operations (see ops.hpp for the math of each).
#include "ops/ops.hpp"

#include <cmath>
#include <cstring>

#include "kernels/kernels.hpp"

namespace slm::ops {

// ---- Elementwise and norms -----------------------------------------------------------------

// The loops themselves live in the kernels layer (vector_ops.cpp: scalar reference; vec_ops.hpp:
// per-ISA vector code).

void rmsnorm(IsaLevel isa, float* out, const float* x, const float* weight, int64_t n, float eps) {
  kernels::rmsnorm(isa, out, x, weight, n, eps);
}

void add(IsaLevel isa, float* x, const float* y, int64_t n) { kernels::add(isa, x, y, n); }

void silu_mul(IsaLevel isa, float* gate, const float* up, int64_t n) { kernels::silu_mul(isa, gate, up, n); }

void softmax(IsaLevel isa, float* x, int64_t n) { kernels::softmax(isa, x, n); }

Status get_row(DType type, const void* data, size_t row_stride, int64_t n_rows, int64_t n_cols,
               int64_t row, float* out) {
  const TypeTraits* tt = type_traits(static_cast<uint32_t>(type));
  if (tt == nullptr || tt->to_float == nullptr)
    return errorf("get_row: type %u has no float conversion", static_cast<unsigned>(type));
  if (row < 0 || row >= n_rows)
    return errorf("get_row: row %lld out of range [0, %lld)", static_cast<long long>(row),
                  static_cast<long long>(n_rows));
  tt->to_float(static_cast<const uint8_t*>(data) + static_cast<size_t>(row) * row_stride, out, n_cols);
  return Status::success();
}

// ---- RoPE ------------------------------------------------------------------------------------

void rope_inv_freqs(float* inv_freq, int64_t n_rot, double base, const float* freq_factors,
                    double linear_scale) {
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    double f = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
    if (freq_factors != nullptr) f /= freq_factors[i];
    inv_freq[i] = static_cast<float>(f / linear_scale);
  }
}

void llama3_freq_factors(float* factors, int64_t n_rot, double base, double factor,
                         double low_freq_factor, double high_freq_factor, double orig_ctx) {
  const double two_pi = 6.283185307179586;
  const double low_freq_wavelen = orig_ctx / low_freq_factor;
  const double high_freq_wavelen = orig_ctx / high_freq_factor;
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    const double freq = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
    const double wavelen = two_pi / freq;
    double scaled;
    if (wavelen < high_freq_wavelen) {
      scaled = freq;
    } else if (wavelen > low_freq_wavelen) {
      scaled = freq / factor;
    } else {
      const double smooth = (orig_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      scaled = (1.0 - smooth) * freq / factor + smooth * freq;
    }
    factors[i] = static_cast<float>(freq / scaled);
  }
}

void rope_cos_sin(float* cos_out, float* sin_out, const float* inv_freq, int64_t n_rot, int64_t pos) {
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    // The angle in double: at pos ~ 1e5 a float product keeps only ~1e-2 rad of precision.
    const double theta = static_cast<double>(pos) * static_cast<double>(inv_freq[i]);
    cos_out[i] = static_cast<float>(std::cos(theta));
    sin_out[i] = static_cast<float>(std::sin(theta));
  }
}

void rope(IsaLevel isa, float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_v,
          const float* sin_v, RopeStyle style) {
  kernels::rope(isa, x, n_heads, head_dim, n_rot, cos_v, sin_v, style == RopeStyle::NeoxHalves);
}

// ---- Attention -------------------------------------------------------------------------------

// The value sum is kernels::weighted_row_sum (vectorized per ISA level, same results as the
// scalar loop).

void kv_store(IsaLevel isa, const KvLayer& layer, int64_t pos, const float* k, const float* v) {
  if (layer.f16) {
    kernels::f32_to_f16_row(isa, k, static_cast<uint16_t*>(layer.k) + pos * layer.kv_dim, layer.kv_dim);
    kernels::f32_to_f16_row(isa, v, static_cast<uint16_t*>(layer.v) + pos * layer.kv_dim, layer.kv_dim);
  } else {
    std::memcpy(static_cast<float*>(layer.k) + pos * layer.kv_dim, k, sizeof(float) * layer.kv_dim);
    std::memcpy(static_cast<float*>(layer.v) + pos * layer.kv_dim, v, sizeof(float) * layer.kv_dim);
  }
}

size_t attention_scratch_bytes(bool f16_cache, int64_t head_dim) {
  return kernels::matmul_scratch_bytes(f16_cache ? DType::F16 : DType::F32, head_dim, 1);
}

Status attention(IsaLevel isa, const AttentionShape& s, const KvLayer& layer, const float* q, int64_t ldq,
                 float* out, int64_t ldo, int64_t pos0, int64_t n_tokens, int64_t item_begin,
                 int64_t item_end, float* scores, void* mm_scratch, size_t mm_scratch_bytes) {
  const int64_t group = s.n_head / s.n_head_kv;  // query heads per KV head
  const int64_t hd = s.head_dim;
  const size_t elem = layer.f16 ? 2 : 4;
  for (int64_t item = item_begin; item < item_end; ++item) {
    const int64_t t = item / s.n_head, h = item % s.n_head;
    if (t >= n_tokens) return errorf("attention: work item %lld beyond %lld tokens", static_cast<long long>(item),
                                     static_cast<long long>(n_tokens));
    const int64_t pos = pos0 + t;                 // causal: keys 0..pos
    const float* qh = q + t * ldq + h * hd;       // (head_dim,) this head's query
    const int64_t kv_off = (h / group) * hd;      // this head's KV head inside a cache row
    // scores[p] = K[p] . q for p <= pos: the cache rows of this KV head as a strided matrix.
    kernels::Matrix keys;
    keys.type = layer.f16 ? DType::F16 : DType::F32;
    keys.data = static_cast<const uint8_t*>(layer.k) + static_cast<size_t>(kv_off) * elem;
    keys.n_rows = pos + 1;
    keys.n_cols = hd;
    keys.row_stride = static_cast<size_t>(layer.kv_dim) * elem;
    SLM_TRY(kernels::matmul(isa, keys, qh, hd, 1, scores, pos + 1, mm_scratch, mm_scratch_bytes, nullptr));
    for (int64_t p = 0; p <= pos; ++p) scores[p] *= s.scale;
    softmax(isa, scores, pos + 1);
    float* oh = out + t * ldo + h * hd;           // (head_dim,) weighted sum of values
    SLM_TRY(kernels::weighted_row_sum(isa, keys.type, static_cast<const uint8_t*>(layer.v) + static_cast<size_t>(kv_off) * elem,
                                      keys.row_stride, pos + 1, scores, hd, oh));
  }
  return Status::success();
}

}  // namespace slm::ops
