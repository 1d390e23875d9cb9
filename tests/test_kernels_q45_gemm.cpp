// The packed prefill GEMMs for Q4_1, Q5_0 and Q5_1 (x Q8_1 / Q8_0 activations;
// src/kernels/gemm_q45_x86.hpp) at every level this CPU runs, against the scalar table
// (vec_dot_ref).
//
// Tolerance for the GEMM (a table entry named gemm_*, from 4 tokens on): none. It forms the
// reference's exact integer block sums and adds each block with the reference's own float
// expression in block order, so every output must equal the scalar table bit for bit (memcmp),
// for any row range, token count >= 4, token tiling, K blocking and thread count.
// Levels whose entry is a row kernel (and the GEMM's fallback below 4 tokens) sum in another
// order: they are held to test_kernels' summation-order bound
//   |got - scalar| <= (nb + 16) * 2^-22 * sum_b T_b + 1e-30,
//   T_b = sum_{k in b} (|w_k| + 2 max_b |w|) * (|x_k| + amax_b(x) / 100)
// and are bit-identical for 1, 2 and 3 threads. Shapes: 4..17 and 64 tokens (tiles of 6 leave
// every tail), rows 1, 31, 33, 100 (partial 32-row panels and half-empty panels), K = 32, 7 * 32
// and 1536 (chunks of 32 blocks), and 190 tokens x 128 blocks (activations past 1 MiB: the
// K-blocked loop order). Outputs are NaN-prefilled with ldy > rows, so a missing or stray store
// shows.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.hpp"
#include "kernel_test_util.hpp"
#include "kernels/kernels.hpp"
#include "slm/cpu.hpp"
#include "slm/thread_pool.hpp"

using namespace slm;

namespace {

constexpr DType kTypes[] = {DType::Q4_1, DType::Q5_0, DType::Q5_1};

using slm_test::levels_here;

struct Problem {
  DType type;
  int64_t rows, cols, tokens;
  std::vector<uint8_t> w;
  std::vector<float> wf;  // the weights dequantized (for the row kernels' bound)
  size_t row_stride = 0;
  std::vector<float> x;
  int64_t ldx = 0, ldy = 0;
  kernels::Matrix matrix() const { return {type, w.data(), rows, cols, row_stride}; }
};

Problem make_problem(DType type, int64_t rows, int64_t cols, int64_t tokens, uint32_t seed) {
  Problem p{type, rows, cols, tokens, {}, {}, 0, {}, 0, 0};
  const TypeTraits& tt = traits(type);
  p.row_stride = *row_bytes(type, cols) + 6;  // padded, and not a multiple of 4
  p.w.assign(static_cast<size_t>(rows) * p.row_stride, 0xCD);
  p.wf.resize(static_cast<size_t>(rows * cols));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.02f + 0.1f * static_cast<float>(r % 5);
    // Rows 3k + 2 are offset (all codes high or low: Q4_1 / Q5_1 mins far from 0).
    const float shift = r % 3 == 2 ? (r % 2 ? 0.3f : -0.3f) : 0.0f;
    for (auto& v : src) v = u(rng) * scale + shift;
    src[static_cast<size_t>((r * 37) % cols)] *= 10.0f;  // outliers: extreme codes and scales
    if (r % 3 == 1)
      for (int64_t k = 0; k < cols; k += 2) src[static_cast<size_t>(k)] = std::fabs(src[static_cast<size_t>(k)]);
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

bool is_gemm(DType type, IsaLevel level) {
  return std::string(kernels::matmul_kernel_name(type, level)).rfind("gemm_", 0) == 0;
}

std::string describe(const Problem& p, IsaLevel level) {
  return std::string(dtype_name(p.type)) + " @" + isa_level_name(level) + " " + std::to_string(p.rows) + "x" +
         std::to_string(p.cols) + " tokens=" + std::to_string(p.tokens) + " (" +
         kernels::matmul_kernel_name(p.type, level) + ")";
}

// T_b of one 32-element block (see the top of the file).
double block_terms(const float* w, const float* x) {
  double wmax = 0, amax = 0;
  for (int k = 0; k < 32; ++k) {
    wmax = std::fmax(wmax, std::fabs(static_cast<double>(w[k])));
    amax = std::fmax(amax, std::fabs(static_cast<double>(x[k])));
  }
  double terms = 0;
  for (int k = 0; k < 32; ++k)
    terms += (std::fabs(static_cast<double>(w[k])) + 2 * wmax) * (std::fabs(static_cast<double>(x[k])) + amax / 100);
  return terms;
}

// exact: bit-identical to the reference; else within the summation-order bound. Either way the
// canaries past n_rows stay NaN and nothing inside is NaN.
void check(const Problem& p, const std::vector<float>& ref, const std::vector<float>& got, bool exact,
           const std::string& what) {
  int diff = 0, canary = 0, nan = 0;
  for (int64_t t = 0; t < p.tokens; ++t) {
    for (int64_t r = 0; r < p.ldy; ++r) {
      const size_t i = static_cast<size_t>(t * p.ldy + r);
      if (r >= p.rows) {
        canary += !std::isnan(got[i]);
        continue;
      }
      nan += std::isnan(got[i]);
      bool ok;
      double tol = 0;
      if (exact) {
        ok = std::memcmp(&ref[i], &got[i], sizeof(float)) == 0;
      } else {
        const float* w = &p.wf[static_cast<size_t>(r * p.cols)];
        const float* x = &p.x[static_cast<size_t>(t * p.ldx)];
        double terms = 0;
        for (int64_t k0 = 0; k0 < p.cols; k0 += 32) terms += block_terms(w + k0, x + k0);
        tol = static_cast<double>(p.cols / 32 + 16) * std::ldexp(1.0, -22) * terms + 1e-30;
        ok = std::fabs(static_cast<double>(got[i]) - ref[i]) <= tol;
      }
      if (!ok && diff++ < 3)
        MESSAGE(what << " r=" << r << " t=" << t << " got " << got[i] << " ref " << ref[i] << " tol " << tol);
    }
  }
  CHECK_MESSAGE(diff == 0, what << ": " << diff << " outputs differ from the scalar table"
                                << std::string(exact ? " (bit for bit)" : " (beyond the bound)"));
  CHECK_MESSAGE(canary == 0, what << ": " << canary << " outputs written past n_rows");
  CHECK_MESSAGE(nan == 0, what << ": " << nan << " outputs left NaN");
}

void check_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  REQUIRE(a.size() == b.size());
  int diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  CHECK_MESSAGE(diff == 0, what << ": " << diff << " outputs differ from the 1-thread run");
}

}  // namespace

TEST_CASE("Q4_1/Q5_0/Q5_1 GEMM: the AVX-512 VNNI and AMX levels run the packed GEMM") {
  for (IsaLevel level : {IsaLevel::avx512vnni, IsaLevel::amx}) {
    if (!isa_level_supported(level)) {
      MESSAGE(isa_level_name(level) << " is not supported on this CPU: its GEMM entries are not checked here");
      continue;
    }
    for (DType type : kTypes) {
      const std::string name = kernels::matmul_kernel_name(type, level);
      CHECK_MESSAGE(is_gemm(type, level), dtype_name(type) << " @" << isa_level_name(level) << ": " << name);
      // The activation type stays the scalar table's (Q8_1 for Q4_1 / Q5_1, Q8_0 for Q5_0).
      const char* act = traits(type).dot_type == DType::Q8_1 ? "_q8_1_" : "_q8_0_";
      CHECK_MESSAGE(name.find(act) != std::string::npos, name);
    }
  }
}

TEST_CASE("Q4_1/Q5_0/Q5_1 GEMM equals the scalar table bit for bit for every shape, level and thread count") {
  auto pool2 = ThreadPool::create(2);
  auto pool3 = ThreadPool::create(3);
  REQUIRE(pool2.ok());
  REQUIRE(pool3.ok());
  uint32_t seed = 5100;
  int gemm_runs = 0;
  for (DType type : kTypes) {
    for (int64_t cols : {int64_t{32}, int64_t{7 * 32}, int64_t{1536}}) {
      for (int64_t rows : {1, 31, 33, 100}) {
        std::vector<int64_t> token_counts = {4, 7, 13, 64};
        if (rows == 33) token_counts = {4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 64};
        for (int64_t tokens : token_counts) {
          Problem p = make_problem(type, rows, cols, tokens, seed++);
          const std::vector<float> ref = run(p, IsaLevel::scalar, nullptr);
          for (IsaLevel level : levels_here()) {
            if (level == IsaLevel::scalar) continue;
            const bool exact = is_gemm(type, level);
            gemm_runs += exact;
            const std::vector<float> one = run(p, level, nullptr);
            check(p, ref, one, exact, describe(p, level) + " threads=1");
            for (ThreadPool* pool : {pool2->get(), pool3->get()})
              check_same_bits(one, run(p, level, pool),
                              describe(p, level) + " threads=" + std::to_string(pool->size()));
          }
        }
      }
    }
  }
  if (gemm_runs == 0) MESSAGE("no level on this CPU runs the Q4_1/Q5_0/Q5_1 GEMM: only the row kernels were checked");
}

TEST_CASE("Q4_1/Q5_0/Q5_1 GEMM: any row range and token tiling of the table's rows function gives the same bits") {
  // The MatmulRowsFn contract, called directly: row ranges on 32-row boundaries (as matmul
  // splits them) and token splits whose parts both reach the GEMM's 4 tokens.
  for (IsaLevel level : levels_here()) {
    const kernels::detail::KernelTable* table = kernels::detail::kernel_table(level);
    REQUIRE(table != nullptr);
    for (DType type : kTypes) {
      if (!is_gemm(type, level)) continue;
      const kernels::detail::TypeKernels& k = table->by_type[static_cast<int>(type)];
      const bool has_rows = k.rows != nullptr, has_quant = k.quantize_act != nullptr;
      REQUIRE(has_rows);
      REQUIRE(has_quant);
      Problem p = make_problem(type, 70, 37 * 32, 23, 5900 + static_cast<uint32_t>(type));
      const size_t stride = k.act_row_bytes(p.cols);
      std::vector<uint8_t> act(stride * static_cast<size_t>(p.tokens));
      for (int64_t t = 0; t < p.tokens; ++t) k.quantize_act(p.x.data() + t * p.ldx, act.data() + t * stride, p.cols);
      const std::vector<float> ref = run(p, IsaLevel::scalar, nullptr);
      std::vector<float> whole(static_cast<size_t>(p.tokens * p.ldy), NAN);
      k.rows(p.matrix(), 0, p.rows, act.data(), stride, p.tokens, whole.data(), p.ldy);
      check(p, ref, whole, true, describe(p, level) + " one call");
      for (int64_t split_tok : {4, 5, 10, 19}) {
        std::vector<float> parts(static_cast<size_t>(p.tokens * p.ldy), NAN);
        for (int64_t r0 : {0, 32, 64}) {
          const int64_t r1 = std::min<int64_t>(r0 + 32, p.rows);
          k.rows(p.matrix(), r0, r1, act.data(), stride, split_tok, parts.data(), p.ldy);
          k.rows(p.matrix(), r0, r1, act.data() + split_tok * stride, stride, p.tokens - split_tok,
                 parts.data() + split_tok * p.ldy, p.ldy);
        }
        check(p, ref, parts, true, describe(p, level) + " split at token " + std::to_string(split_tok));
      }
    }
  }
}

TEST_CASE("Q4_1/Q5_0/Q5_1 GEMM: fewer than 4 tokens take the row kernels, within the bound") {
  uint32_t seed = 6300;
  for (DType type : kTypes) {
    for (int64_t tokens : {1, 2, 3}) {
      Problem p = make_problem(type, 45, 9 * 32, tokens, seed++);
      const std::vector<float> ref = run(p, IsaLevel::scalar, nullptr);
      for (IsaLevel level : levels_here()) {
        if (level == IsaLevel::scalar) continue;
        check(p, ref, run(p, level, nullptr), false, describe(p, level));
      }
    }
  }
}

TEST_CASE("Q4_1/Q5_0/Q5_1 GEMM: activations past 1 MiB (the K-blocked loop order) give the same bits") {
  // 190 tokens x 128 blocks x ~50 bytes = 1.2 MB: the GEMM then runs all panels over one K block
  // of 32 blocks before the next, the float sums passing through y.
  auto pool2 = ThreadPool::create(2);
  REQUIRE(pool2.ok());
  uint32_t seed = 6900;
  for (DType type : kTypes) {
    Problem p = make_problem(type, 40, 128 * 32, 190, seed++);
    const std::vector<float> ref = run(p, IsaLevel::scalar, nullptr);
    for (IsaLevel level : levels_here()) {
      if (level == IsaLevel::scalar || !is_gemm(type, level)) continue;
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), pool2->get()})
        check(p, ref, run(p, level, pool), true, describe(p, level) + " threads=" + std::to_string(pool ? 2 : 1));
    }
  }
}
