// kernels::matmul: argument checks, activation conversion and the split of output rows over
// the thread pool; the per-type work goes through the level's KernelTable. Also the scalar
// (portable) entries of that table.
#include <cstring>

#include "kernels/kernel_table.hpp"
#include "quant/quant.hpp"
#include "slm/thread_pool.hpp"

namespace slm::kernels {
namespace detail {
namespace {

// ---------------------------------------------------------------------------------------------
// Scalar reference path, as ggml does it: the activation row is quantized once to the weight
// type's dot type (traits.dot_type: Q8_0, Q8_1 or Q8_K; float types keep f32), then each output
// is the quant component's reference dot product quant::vec_dot_ref(type).

void rows_vec_dot_ref(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride,
                      int64_t n_tokens, float* y, int64_t ldy) {
  const quant::VecDotFn dot = quant::vec_dot_ref(w.type);
  for (int64_t r = r0; r < r1; ++r) {
    const auto* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride;
    for (int64_t t = 0; t < n_tokens; ++t)
      y[t * ldy + r] = dot(w.n_cols, row, static_cast<const uint8_t*>(act) + t * act_stride);
  }
}

template <DType kDot>
size_t act_row_bytes_ref(int64_t n_cols) {
  const Expected<size_t> bytes = row_bytes(kDot, n_cols);
  return bytes.ok() ? (*bytes + 63) / 64 * 64 : 0;
}

// Fallback for a type with to_float but no reference dot: dequantize a chunk of the weight row with the type's reference to_float
// and take a float dot product with the activation, left to right.

// 256 elements: a multiple of every block size (32 and the K-quant super-block of 256), small
// enough for the stack.
constexpr int64_t kChunk = 256;

void rows_dequant_dot_scalar(const Matrix& w, int64_t r0, int64_t r1, const void* act,
                             size_t act_stride, int64_t n_tokens, float* y, int64_t ldy) {
  const TypeTraits& tt = traits(w.type);
  const size_t chunk_bytes = static_cast<size_t>(kChunk / tt.block_elems) * tt.block_bytes;
  float wf[kChunk];
  for (int64_t r = r0; r < r1; ++r) {
    const auto* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const auto* x = reinterpret_cast<const float*>(static_cast<const uint8_t*>(act) + t * act_stride);
      float sum = 0.0f;
      for (int64_t k0 = 0; k0 < w.n_cols; k0 += kChunk) {
        const int64_t n = w.n_cols - k0 < kChunk ? w.n_cols - k0 : kChunk;
        tt.to_float(row + static_cast<size_t>(k0 / kChunk) * chunk_bytes, wf, n);
        for (int64_t k = 0; k < n; ++k) sum += wf[k] * x[k0 + k];
      }
      y[t * ldy + r] = sum;
    }
  }
}

// weighted_row_sum, scalar: the reference loop (product, then sum, p in order).
template <class T>
void weighted_sum_scalar(const void* rows, size_t row_stride, int64_t n_rows, const float* weights, int64_t n,
                         float* out) {
  for (int64_t d = 0; d < n; ++d) out[d] = 0.0f;
  for (int64_t p = 0; p < n_rows; ++p) {
    const auto* v = reinterpret_cast<const T*>(static_cast<const uint8_t*>(rows) + static_cast<size_t>(p) * row_stride);
    const float a = weights[p];
    for (int64_t d = 0; d < n; ++d) {
      float x;
      if constexpr (sizeof(T) == 2) x = f16_to_f32(v[d]);
      else x = v[d];
      const float prod = a * x;
      out[d] = out[d] + prod;
    }
  }
}

}  // namespace

void add_scalar_kernels(KernelTable& table) {
  table.weighted_sum_f16 = weighted_sum_scalar<uint16_t>;
  table.weighted_sum_f32 = weighted_sum_scalar<float>;
  for (int id = 0; id < kTypeSlots; ++id) {
    const TypeTraits* tt = type_traits(static_cast<uint32_t>(id));
    if (!tt || !tt->to_float) continue;
    TypeKernels& k = table.by_type[id];
    const TypeTraits* dot = type_traits(static_cast<uint32_t>(tt->dot_type));
    if (quant::vec_dot_ref(tt->type) && dot && (tt->dot_type == DType::F32 || dot->from_float)) {
      k.name = "vec_dot_ref";
      k.rows = rows_vec_dot_ref;
      if (tt->dot_type != DType::F32) {
        k.quantize_act = dot->from_float;
        switch (tt->dot_type) {  // the dot types the table uses (dtype.cpp)
          case DType::Q8_0: k.act_row_bytes = act_row_bytes_ref<DType::Q8_0>; break;
          case DType::Q8_1: k.act_row_bytes = act_row_bytes_ref<DType::Q8_1>; break;
          case DType::Q8_K: k.act_row_bytes = act_row_bytes_ref<DType::Q8_K>; break;
          default: k = TypeKernels{}; break;
        }
      }
      if (k.rows) continue;
    }
    if (kChunk % tt->block_elems != 0) continue;
    k = TypeKernels{"rows_dequant_dot_scalar", nullptr, nullptr, rows_dequant_dot_scalar};
  }
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// The driver.

namespace {

// Rows are handed to threads in groups of 32 so that a GEMM panel (32 rows) never straddles two
// threads.
constexpr int64_t kRowGroup = 32;

const detail::TypeKernels* entry_for(const detail::KernelTable& table, DType type) {
  const auto id = static_cast<uint32_t>(type);
  if (id >= static_cast<uint32_t>(detail::kTypeSlots)) return nullptr;
  const detail::TypeKernels& k = table.by_type[id];
  return k.rows ? &k : nullptr;
}

}  // namespace

size_t matmul_scratch_bytes(DType weight_type, int64_t n_cols, int64_t n_tokens) {
  if (n_cols <= 0 || n_tokens <= 0) return 0;
  size_t most = 0;
  for (int i = 0; i < kIsaLevelCount; ++i) {
    const detail::KernelTable* table = detail::kernel_table(static_cast<IsaLevel>(i));
    if (!table) continue;
    const detail::TypeKernels* k = entry_for(*table, weight_type);
    if (!k || !k->act_row_bytes) continue;
    const size_t bytes = k->act_row_bytes(n_cols) * static_cast<size_t>(n_tokens);
    if (bytes > most) most = bytes;
  }
  return most;
}

const char* matmul_kernel_name(DType weight_type, IsaLevel level) {
  const detail::KernelTable* table = detail::kernel_table(level);
  const detail::TypeKernels* k = table ? entry_for(*table, weight_type) : nullptr;
  return k ? k->name : nullptr;
}

const char* matmul_kernel_name(const Matrix& w, IsaLevel level) {
  if (w.layout != Layout::x16) return matmul_kernel_name(w.type, level);
  const detail::KernelTable* table = detail::kernel_table(level);
  const detail::TypeKernels* k = table ? entry_for(*table, w.type) : nullptr;
  if (!k) return nullptr;
  return k->rows_x16 ? k->name_x16 : "rows_x16_ref";
}

Status matmul(IsaLevel level, const Matrix& w, const float* x, int64_t ldx, int64_t n_tokens,
              float* y, int64_t ldy, void* scratch, size_t scratch_bytes, ThreadPool* pool) {
  const detail::KernelTable* table = detail::kernel_table(level);
  if (!table) return errorf("matmul: ISA level %s is not supported on this CPU/build", isa_level_name(level));
  const TypeTraits* tt = type_traits(static_cast<uint32_t>(w.type));
  if (!tt) return errorf("matmul: unknown weight type id %u", static_cast<unsigned>(w.type));
  const detail::TypeKernels* k = entry_for(*table, w.type);
  if (!k) return errorf("matmul: no kernel for weight type %s", tt->name);
  detail::MatmulRowsFn rows_fn = k->rows;
  if (w.layout == Layout::x16) {
    const bool kq = w.type == DType::Q4_K || w.type == DType::Q6_K;
    if ((w.type != DType::Q4_0 && w.type != DType::Q8_0 && !kq) || w.n_rows % 16 != 0 || w.n_cols % (kq ? 256 : 32) != 0)
      return errorf("matmul: an interleaved matrix must be Q4_0, Q8_0, Q4_K or Q6_K with a multiple of 16 rows (got %s, %lld rows)",
                    tt->name, static_cast<long long>(w.n_rows));
    if (k->rows_x16) {
      rows_fn = k->rows_x16;
    } else {  // no native kernel at this level: the reference, with its own activation blocks
      k = entry_for(*detail::kernel_table(IsaLevel::scalar), w.type);
      if (!k) return errorf("matmul: no reference kernel for interleaved %s", tt->name);
      rows_fn = detail::rows_x16_ref;
    }
  } else if (w.layout != Layout::rows) {
    return errorf("matmul: unknown matrix layout %d", static_cast<int>(w.layout));
  }
  if (w.n_rows < 0 || w.n_cols <= 0 || n_tokens < 0)
    return errorf("matmul: bad shape %lld x %lld with %lld tokens", static_cast<long long>(w.n_rows),
                  static_cast<long long>(w.n_cols), static_cast<long long>(n_tokens));
  Expected<size_t> rb = row_bytes(w.type, w.n_cols);
  if (!rb.ok()) return Error{"matmul: " + rb.error().message};
  if (w.row_stride < *rb)
    return errorf("matmul: row stride %zu is less than a %s row of %lld elements (%zu bytes)",
                  w.row_stride, tt->name, static_cast<long long>(w.n_cols), *rb);
  if (ldx < w.n_cols || ldy < w.n_rows)
    return errorf("matmul: ldx %lld < n_cols %lld or ldy %lld < n_rows %lld", static_cast<long long>(ldx),
                  static_cast<long long>(w.n_cols), static_cast<long long>(ldy),
                  static_cast<long long>(w.n_rows));
  if (n_tokens == 0 || w.n_rows == 0) return Status::success();
  if (!w.data || !x || !y) return errorf("matmul: null weight, input or output pointer");

  const void* act = x;
  size_t act_stride = static_cast<size_t>(ldx) * sizeof(float);
  if (k->quantize_act) {
    act_stride = k->act_row_bytes(w.n_cols);
    const size_t need = act_stride * static_cast<size_t>(n_tokens);
    if (!scratch || scratch_bytes < need)
      return errorf("matmul: scratch of %zu bytes is too small for %lld %s activation rows (%zu needed; "
                    "use matmul_scratch_bytes)", scratch_bytes, static_cast<long long>(n_tokens),
                    tt->name, need);
    auto* dst = static_cast<uint8_t*>(scratch);
    auto quantize = [&](int i, int n) {
      long t0, t1;
      split_range(static_cast<long>(n_tokens), i, n, &t0, &t1);
      for (long t = t0; t < t1; ++t) k->quantize_act(x + t * ldx, dst + t * act_stride, w.n_cols);
    };
    if (pool && n_tokens > 1 && static_cast<double>(n_tokens) * static_cast<double>(w.n_cols) >= kMinPoolMacs / 64)
      pool->run(quantize);
    else quantize(0, 1);
    act = scratch;
  }

  const int64_t n_groups = (w.n_rows + kRowGroup - 1) / kRowGroup;
  auto rows = [&](int i, int n) {
    long g0, g1;
    split_range(static_cast<long>(n_groups), i, n, &g0, &g1);
    const int64_t r0 = g0 * kRowGroup, r1 = g1 * kRowGroup < w.n_rows ? g1 * kRowGroup : w.n_rows;
    if (r0 < r1) rows_fn(w, r0, r1, act, act_stride, n_tokens, y, ldy);
  };
  // Waking the pool costs a few microseconds, and far more when another process holds a core:
  // a product smaller than that (the tiny model's 256-wide matrices at decode) runs on the
  // caller's thread. The row split never changes results, so this does not either.
  const bool small = static_cast<double>(w.n_rows) * static_cast<double>(w.n_cols) * static_cast<double>(n_tokens) <
                     kMinPoolMacs;
  if (pool && !small) pool->run(rows);
  else rows(0, 1);
  return Status::success();
}

Status weighted_row_sum(DType type, const void* rows, size_t row_stride, int64_t n_rows, const float* weights,
                        int64_t n, float* out) {
  return weighted_row_sum(default_isa_level(), type, rows, row_stride, n_rows, weights, n, out);
}

Status weighted_row_sum(IsaLevel level, DType type, const void* rows, size_t row_stride, int64_t n_rows,
                        const float* weights, int64_t n, float* out) {
  if (type != DType::F16 && type != DType::F32)
    return errorf("weighted_row_sum: rows must be F16 or F32, not type id %u", static_cast<unsigned>(type));
  if (n_rows < 0 || n < 0) return errorf("weighted_row_sum: bad shape %lld x %lld", static_cast<long long>(n_rows),
                                         static_cast<long long>(n));
  if (n == 0) return Status::success();
  if (!out || (n_rows > 0 && (!rows || !weights))) return errorf("weighted_row_sum: null pointer");
  const size_t elem = type == DType::F16 ? 2 : 4;
  if (n_rows > 1 && row_stride < elem * static_cast<size_t>(n))
    return errorf("weighted_row_sum: row stride %zu is less than %lld elements", row_stride, static_cast<long long>(n));
  const detail::KernelTable* table = detail::kernel_table(level);
  if (!table)
    return errorf("weighted_row_sum: ISA level %s is not supported on this CPU/build", isa_level_name(level));
  (type == DType::F16 ? table->weighted_sum_f16 : table->weighted_sum_f32)(rows, row_stride, n_rows, weights, n, out);
  return Status::success();
}

Status matmul(const Matrix& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
              void* scratch, size_t scratch_bytes, ThreadPool* pool) {
  return matmul(default_isa_level(), w, x, ldx, n_tokens, y, ldy, scratch, scratch_bytes, pool);
}

}  // namespace slm::kernels
