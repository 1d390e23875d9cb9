// The float-weight matmul (F32, F16, BF16 weights x F32 activations) at every level this CPU
// runs: the row kernels below 4 tokens and the packed FMA GEMM from 4 tokens on
// (x86_simd.hpp: 16-row x 6-token AVX2 tiles over 256-k chunks, 48-row x 8-token AVX-512
// tiles over 512-k chunks).
//
// Reference: the exact dot product of the stored weights (widened to float, exact) and the
// activations, summed in double. Tolerance for every level and type (the weights are exact in
// f32, so only the f32 summation rounds):
//   |got - ref| <= (K + 2) * 2^-24 * sum_k |w_k * x_k| + 1e-30
// (a sequential FMA chain of K steps, or any blocked sum with at most K roundings per term).
// The GEMM forms each output as one FMA chain from 0 over k in order whatever the tile, panel,
// K chunk or row split, so from 4 tokens on every x86 level (avx2 .. amx) must give the same
// bits as avx2, and 1, 2 and 3 threads the same bits. Outputs are NaN-prefilled with ldy > rows,
// so a missing or stray store shows.
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

constexpr DType kTypes[] = {DType::F32, DType::F16, DType::BF16};

using slm_test::levels_here;

struct Problem {
  DType type;
  int64_t rows, cols, tokens;
  std::vector<uint8_t> w;
  std::vector<float> wf;  // the stored weights widened (exact)
  size_t row_stride = 0;
  std::vector<float> x;
  int64_t ldx = 0, ldy = 0;
  kernels::Matrix matrix() const { return {type, w.data(), rows, cols, row_stride}; }
};

Problem make_problem(DType type, int64_t rows, int64_t cols, int64_t tokens, uint32_t seed) {
  Problem p{type, rows, cols, tokens, {}, {}, 0, {}, 0, 0};
  const TypeTraits& tt = traits(type);
  p.row_stride = *row_bytes(type, cols) + 6;  // padded; F32 rows +8 (they stay 4-byte aligned)
  if (type == DType::F32) p.row_stride += 2;
  p.w.assign(static_cast<size_t>(rows) * p.row_stride, 0xCD);
  p.wf.resize(static_cast<size_t>(rows * cols));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.02f + 0.5f * static_cast<float>(r % 5);
    for (auto& v : src) v = u(rng) * scale;
    src[static_cast<size_t>((r * 37) % cols)] *= 30.0f;  // an outlier per row
    tt.from_float(src.data(), p.w.data() + r * p.row_stride, cols);
    tt.to_float(p.w.data() + r * p.row_stride, p.wf.data() + r * cols, cols);
  }
  p.ldx = cols + 5;
  p.ldy = rows + 3;
  p.x.assign(static_cast<size_t>(tokens * p.ldx), NAN);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < cols; ++k)
      p.x[static_cast<size_t>(t * p.ldx + k)] = u(rng) * (t % 3 == 0 ? 4.0f : 0.7f) + (t % 4 == 1 ? 0.5f : 0.0f);
  return p;
}

std::vector<float> run(const Problem& p, IsaLevel level, ThreadPool* pool) {
  return slm_test::run_matmul(level, p.matrix(), p.x.data(), p.ldx, p.tokens, p.ldy, pool);
}

std::string describe(const Problem& p, IsaLevel level) {
  return std::string(dtype_name(p.type)) + " @" + isa_level_name(level) + " " + std::to_string(p.rows) + "x" +
         std::to_string(p.cols) + " tokens=" + std::to_string(p.tokens) + " (" +
         kernels::matmul_kernel_name(p.type, level) + ")";
}

void check(const Problem& p, const std::vector<float>& got, const std::string& what) {
  int diff = 0, canary = 0, nan = 0;
  for (int64_t t = 0; t < p.tokens; ++t) {
    for (int64_t r = 0; r < p.ldy; ++r) {
      const size_t i = static_cast<size_t>(t * p.ldy + r);
      if (r >= p.rows) {
        canary += !std::isnan(got[i]);
        continue;
      }
      nan += std::isnan(got[i]);
      const float* w = &p.wf[static_cast<size_t>(r * p.cols)];
      const float* x = &p.x[static_cast<size_t>(t * p.ldx)];
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < p.cols; ++k) {
        ref += static_cast<double>(w[k]) * x[k];
        mag += std::fabs(static_cast<double>(w[k]) * x[k]);
      }
      const double tol = static_cast<double>(p.cols + 2) * std::ldexp(1.0, -24) * mag + 1e-30;
      if (!(std::fabs(static_cast<double>(got[i]) - ref) <= tol) && diff++ < 3)
        MESSAGE(what << " r=" << r << " t=" << t << " got " << got[i] << " ref " << ref << " tol " << tol);
    }
  }
  CHECK_MESSAGE(diff == 0, what << ": " << diff << " outputs beyond the bound");
  CHECK_MESSAGE(canary == 0, what << ": " << canary << " outputs written past n_rows");
  CHECK_MESSAGE(nan == 0, what << ": " << nan << " outputs left NaN");
}

void check_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  REQUIRE(a.size() == b.size());
  int diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  CHECK_MESSAGE(diff == 0, what << ": " << diff << " outputs differ");
}

}  // namespace

TEST_CASE("float matmul: every level within the f32 summation bound, GEMM bits equal across x86 levels and threads") {
  auto pool2 = ThreadPool::create(2);
  auto pool3 = ThreadPool::create(3);
  REQUIRE(pool2.ok());
  REQUIRE(pool3.ok());
  uint32_t seed = 7100;
  int compared = 0;
  for (DType type : kTypes) {
    // K: 1 (smallest), 7 (below one 8-lane load), 300 (one AVX-512 chunk with an 8-k tail
    // of 4; AVX2: a 256 chunk and a tail) and 1100 (two 512 chunks and a tail of 76).
    // Rows: 1, 17, 47, 49 and 100 (partial 16- and 48-row panels).
    for (int64_t cols : {int64_t{1}, int64_t{7}, int64_t{300}, int64_t{1100}}) {
      for (int64_t rows : {1, 17, 47, 49, 100}) {
        std::vector<int64_t> token_counts = {1, 3, 4, 9};
        if (rows == 49 && cols == 1100)
          token_counts = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 25, 64};
        for (int64_t tokens : token_counts) {
          Problem p = make_problem(type, rows, cols, tokens, seed++);
          std::vector<float> avx2;
          for (IsaLevel level : levels_here()) {
            const std::vector<float> one = run(p, level, nullptr);
            check(p, one, describe(p, level) + " threads=1");
            for (ThreadPool* pool : {pool2->get(), pool3->get()})
              check_same_bits(one, run(p, level, pool),
                              describe(p, level) + " threads=" + std::to_string(pool->size()) + " vs 1");
            if (level == IsaLevel::avx2) avx2 = one;
            if (tokens >= 4 && !avx2.empty() && level != IsaLevel::avx2 && level != IsaLevel::scalar) {
              check_same_bits(avx2, one, describe(p, level) + " vs avx2");
              ++compared;
            }
          }
        }
      }
    }
  }
  if (!isa_level_supported(IsaLevel::avx512)) MESSAGE("no AVX-512 here: the 48-row GEMM was not run");
  else CHECK(compared > 0);
}
