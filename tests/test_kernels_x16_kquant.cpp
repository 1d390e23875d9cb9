// The interleaved Q4_K / Q6_K layout (kernels.hpp Layout::x16; interleave.cpp, x16_kquant_x86.hpp)
// at every level this CPU runs, against the scalar table on the plain rows.
//
// Tolerance: none. The reference on the interleaved layout (rows_x16_ref), the AVX-512 VNNI GEMV
// (1-3 tokens) and the packed K-quant GEMMs (4 tokens on, on de-interleaved rows) all form the
// scalar table's integer sums and float steps, so every output must equal the plain matrix's
// scalar product bit for bit (memcmp), for tokens 1..9 (across the GEMV/GEMM switch) and 1, 2,
// 3 threads. Rows 16, 48, 64, 112 (1, 3, 4, 7 groups: every GEMV group count), K = 256, 3 * 256
// and 1536. Outputs are NaN-prefilled with ldy > rows, so a missing or stray store shows.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.hpp"
#include "kernel_test_util.hpp"
#include "slm/cpu.hpp"
#include "slm/thread_pool.hpp"

using namespace slm;

namespace {

struct Problem {
  DType type;
  int64_t rows, cols, tokens;
  std::vector<uint8_t> w, x16;
  size_t row_stride = 0;
  std::vector<float> x;
  int64_t ldx = 0, ldy = 0;
  kernels::Matrix plain() const { return {type, w.data(), rows, cols, row_stride}; }
};

Problem make_problem(DType type, int64_t rows, int64_t cols, int64_t tokens, uint32_t seed) {
  Problem p{type, rows, cols, tokens, {}, {}, 0, {}, 0, 0};
  const TypeTraits& tt = traits(type);
  p.row_stride = *row_bytes(type, cols);
  p.w.assign(static_cast<size_t>(rows) * p.row_stride, 0xCD);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.02f + 0.1f * static_cast<float>(r % 5);
    for (auto& v : src) v = u(rng) * scale;
    src[static_cast<size_t>((r * 37) % cols)] *= 10.0f;  // outliers: extreme codes and scales
    if (r % 3 == 1) for (int64_t k = 0; k < cols; k += 2) src[static_cast<size_t>(k)] = std::fabs(src[static_cast<size_t>(k)]);
    tt.from_float(src.data(), p.w.data() + r * p.row_stride, cols);
  }
  p.ldx = cols + 5;
  p.ldy = rows + 3;
  p.x.assign(static_cast<size_t>(tokens * p.ldx), NAN);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < cols; ++k)
      p.x[static_cast<size_t>(t * p.ldx + k)] = u(rng) * (t % 3 == 0 ? 4.0f : 0.7f) + (t % 4 == 1 ? 0.5f : 0.0f);
  return p;
}

std::vector<float> run(const Problem& p, const kernels::Matrix& m, IsaLevel level, int64_t tokens, ThreadPool* pool) {
  return slm_test::run_matmul(level, m, p.x.data(), p.ldx, tokens, p.ldy, pool);
}

}  // namespace

TEST_CASE("interleaved Q4_K / Q6_K: every level equals the scalar table on the plain rows, bit for bit") {
  auto pool2 = ThreadPool::create(2);
  auto pool3 = ThreadPool::create(3);
  REQUIRE(pool2.ok());
  REQUIRE(pool3.ok());
  uint32_t seed = 11;
  bool native_somewhere = false;
  for (DType type : {DType::Q4_K, DType::Q6_K}) {
    for (int64_t rows : {16, 48, 64, 112}) {
      for (int64_t cols : {256, 768, 1536}) {
        if (rows == 112 && cols == 1536) continue;
        const int64_t max_tokens = 9;
        Problem p = make_problem(type, rows, cols, max_tokens, seed++);
        const kernels::Matrix plain = p.plain();
        REQUIRE(kernels::can_interleave(plain));
        REQUIRE(kernels::interleaved_bytes(plain) == p.w.size());  // the same size as the plain rows
        p.x16.assign(kernels::interleaved_bytes(plain), 0);
        auto m = kernels::interleave_x16(plain, p.x16.data(), p.x16.size());
        REQUIRE(m.ok());
        CHECK(m->layout == kernels::Layout::x16);
        for (int64_t tokens = 1; tokens <= max_tokens; ++tokens) {
          const std::vector<float> ref = run(p, plain, IsaLevel::scalar, tokens, nullptr);
          for (int t = 0; t < tokens; ++t)
            for (int64_t r = rows; r < p.ldy; ++r) REQUIRE(std::isnan(ref[static_cast<size_t>(t * p.ldy + r)]));
          for (int i = 0; i < kIsaLevelCount; ++i) {
            const auto level = static_cast<IsaLevel>(i);
            if (!isa_level_supported(level)) continue;
            if (kernels::interleave_pays(level, type)) native_somewhere = true;
            CAPTURE(dtype_name(type));
            CAPTURE(rows);
            CAPTURE(cols);
            CAPTURE(tokens);
            CAPTURE(isa_level_name(level));
            const std::vector<float> y1 = run(p, *m, level, tokens, nullptr);
            CHECK(std::memcmp(y1.data(), ref.data(), y1.size() * sizeof(float)) == 0);
            if (tokens == 1 || tokens == 3 || tokens == 4 || tokens == 7) {
              const std::vector<float> y2 = run(p, *m, level, tokens, pool2->get());
              const std::vector<float> y3 = run(p, *m, level, tokens, pool3->get());
              CHECK(std::memcmp(y2.data(), y1.data(), y1.size() * sizeof(float)) == 0);
              CHECK(std::memcmp(y3.data(), y1.data(), y1.size() * sizeof(float)) == 0);
            }
          }
        }
      }
    }
  }
#if defined(__x86_64__)
  if (isa_level_supported(IsaLevel::avx512vnni)) {
    CHECK(native_somewhere);
    CHECK(kernels::interleave_pays(IsaLevel::avx512vnni, DType::Q4_K));
    CHECK(kernels::interleave_pays(IsaLevel::avx512vnni, DType::Q6_K));
    CHECK_FALSE(kernels::interleave_pays(IsaLevel::avx2, DType::Q4_K));
  }
#else
  (void)native_somewhere;
#endif
}

TEST_CASE("interleaved Q4_K / Q6_K: bad shapes are errors") {
  for (DType type : {DType::Q4_K, DType::Q6_K}) {
    Problem p = make_problem(type, 24, 256, 1, 5);  // 24 rows: not a multiple of 16
    kernels::Matrix plain = p.plain();
    CHECK_FALSE(kernels::can_interleave(plain));
    CHECK(kernels::interleaved_bytes(plain) == 0);
    std::vector<uint8_t> dst(p.w.size() + 4096);
    CHECK_FALSE(kernels::interleave_x16(plain, dst.data(), dst.size()).ok());
    plain.n_rows = 16;
    CHECK(kernels::can_interleave(plain));
    CHECK_FALSE(kernels::interleave_x16(plain, dst.data(), 16 * p.row_stride - 1).ok());  // too small
    // A matrix claiming the interleaved layout with rows not a multiple of 16: matmul says no.
    kernels::Matrix bad = plain;
    bad.layout = kernels::Layout::x16;
    bad.n_rows = 24;
    std::vector<float> y(24, 0.0f);
    std::vector<uint8_t> scratch(kernels::matmul_scratch_bytes(type, 256, 1));
    CHECK_FALSE(kernels::matmul(bad, p.x.data(), p.ldx, 1, y.data(), 24, scratch.data(), scratch.size(), nullptr).ok());
  }
}
