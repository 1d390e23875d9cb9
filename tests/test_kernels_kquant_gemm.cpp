// The packed K-quant GEMMs (Q4_K, Q5_K, Q6_K x Q8_K; src/kernels/gemm_kquant_x86.hpp, AMX:
// gemm_kquant_amx.hpp) at every level this CPU runs, against the scalar table (vec_dot_ref).
//
// Tolerance: none. The GEMM forms the reference's exact integer sums per super-block and adds
// them with the reference's own float expression in super-block order, so every output must
// equal the scalar table bit for bit (memcmp), for any row range, token count, token tiling and
// thread count. Shapes: 4..17 and 64 tokens (the GEMM starts at 4; tiles of 6 leave every tail),
// rows 1, 31, 33, 100 (partial 32-row panels and half-empty panels), K = 256, 7 * 256 (chunks of
// 4 / 3 super-blocks and a tail) and 2 * 1536, and 190 tokens x 20 * 256 (activations past 1 MiB:
// the K-blocked loop order). Outputs are NaN-prefilled with ldy > rows, so a
// missing or stray store shows.
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

constexpr DType kKTypes[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K};

using slm_test::levels_here;

struct Problem {
  DType type;
  int64_t rows, cols, tokens;
  std::vector<uint8_t> w;
  size_t row_stride = 0;
  std::vector<float> x;
  int64_t ldx = 0, ldy = 0;
  kernels::Matrix matrix() const { return {type, w.data(), rows, cols, row_stride}; }
};

Problem make_problem(DType type, int64_t rows, int64_t cols, int64_t tokens, uint32_t seed) {
  Problem p{type, rows, cols, tokens, {}, 0, {}, 0, 0};
  const TypeTraits& tt = traits(type);
  p.row_stride = *row_bytes(type, cols) + 6;  // padded, and not a multiple of 4
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

std::vector<float> run(const Problem& p, IsaLevel level, ThreadPool* pool) {
  return slm_test::run_matmul(level, p.matrix(), p.x.data(), p.ldx, p.tokens, p.ldy, pool);
}

std::string describe(const Problem& p, IsaLevel level) {
  return std::string(dtype_name(p.type)) + " @" + isa_level_name(level) + " " + std::to_string(p.rows) + "x" +
         std::to_string(p.cols) + " tokens=" + std::to_string(p.tokens) + " (" +
         kernels::matmul_kernel_name(p.type, level) + ")";
}

// Bit-identical to the reference, canaries past n_rows untouched, no NaN inside.
void check_same(const Problem& p, const std::vector<float>& ref, const std::vector<float>& got, const std::string& what) {
  int diff = 0, canary = 0, nan = 0;
  for (int64_t t = 0; t < p.tokens; ++t) {
    for (int64_t r = 0; r < p.ldy; ++r) {
      const size_t i = static_cast<size_t>(t * p.ldy + r);
      if (r >= p.rows) {
        canary += !std::isnan(got[i]);
        continue;
      }
      nan += std::isnan(got[i]);
      if (std::memcmp(&ref[i], &got[i], sizeof(float)) != 0 && diff++ < 3)
        MESSAGE(what << " r=" << r << " t=" << t << " got " << got[i] << " ref " << ref[i]);
    }
  }
  CHECK_MESSAGE(diff == 0, what << ": " << diff << " outputs differ from the scalar table");
  CHECK_MESSAGE(canary == 0, what << ": " << canary << " outputs written past n_rows");
  CHECK_MESSAGE(nan == 0, what << ": " << nan << " outputs left NaN");
}

}  // namespace

TEST_CASE("K-quant GEMM: the AVX-512 VNNI and AMX levels run the packed GEMM") {
  for (IsaLevel level : {IsaLevel::avx512vnni, IsaLevel::amx}) {
    if (!isa_level_supported(level)) {
      MESSAGE(isa_level_name(level) << " is not supported on this CPU: its GEMM entries are not checked here");
      continue;
    }
    for (DType type : kKTypes) {
      const std::string name = kernels::matmul_kernel_name(type, level);
      CHECK_MESSAGE(name.rfind("gemm_", 0) == 0, dtype_name(type) << " @" << isa_level_name(level) << ": " << name);
    }
  }
}

TEST_CASE("K-quant GEMM equals the scalar table bit for bit for every shape, level and thread count") {
  auto pool2 = ThreadPool::create(2);
  auto pool3 = ThreadPool::create(3);
  REQUIRE(pool2.ok());
  REQUIRE(pool3.ok());
  uint32_t seed = 7000;
  for (DType type : kKTypes) {
    for (int64_t cols : {int64_t{256}, int64_t{7 * 256}, int64_t{2 * 1536}}) {
      for (int64_t rows : {1, 31, 33, 100}) {
        std::vector<int64_t> token_counts = {4, 6, 7, 13, 64};
        if (cols == 7 * 256 && rows == 33)
          token_counts = {4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 64};
        for (int64_t tokens : token_counts) {
          Problem p = make_problem(type, rows, cols, tokens, seed++);
          const std::vector<float> ref = run(p, IsaLevel::scalar, nullptr);
          for (IsaLevel level : levels_here()) {
            if (level == IsaLevel::scalar) continue;
            for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), pool2->get(), pool3->get()}) {
              const std::vector<float> got = run(p, level, pool);
              check_same(p, ref, got,
                         describe(p, level) + " threads=" + std::to_string(pool ? pool->size() : 1));
            }
          }
        }
      }
    }
  }
}

TEST_CASE("K-quant GEMM: any row range and token tiling of the table's rows function gives the same bits") {
  // The MatmulRowsFn contract, called directly: row ranges on 32-row boundaries (as matmul
  // splits them) and token ranges of any length (tails below the GEMM's 4 take the row kernel,
  // which must agree too).
  for (IsaLevel level : levels_here()) {
    const kernels::detail::KernelTable* table = kernels::detail::kernel_table(level);
    REQUIRE(table != nullptr);
    for (DType type : kKTypes) {
      const kernels::detail::TypeKernels& k = table->by_type[static_cast<int>(type)];
      const bool has_rows = k.rows != nullptr, has_quant = k.quantize_act != nullptr;
      REQUIRE(has_rows);
      REQUIRE(has_quant);
      Problem p = make_problem(type, 70, 5 * 256, 23, 9100 + static_cast<uint32_t>(type));
      const size_t stride = k.act_row_bytes(p.cols);
      std::vector<uint8_t> act(stride * static_cast<size_t>(p.tokens));
      for (int64_t t = 0; t < p.tokens; ++t)
        k.quantize_act(p.x.data() + t * p.ldx, act.data() + t * stride, p.cols);
      std::vector<float> whole(static_cast<size_t>(p.tokens * p.ldy), NAN);
      k.rows(p.matrix(), 0, p.rows, act.data(), stride, p.tokens, whole.data(), p.ldy);
      const std::vector<float> ref = run(p, IsaLevel::scalar, nullptr);
      check_same(p, ref, whole, describe(p, level) + " one call");
      for (int64_t split_tok : {1, 3, 4, 10, 22}) {
        std::vector<float> parts(static_cast<size_t>(p.tokens * p.ldy), NAN);
        for (int64_t r0 : {0, 32, 64}) {
          const int64_t r1 = std::min<int64_t>(r0 + 32, p.rows);
          k.rows(p.matrix(), r0, r1, act.data(), stride, split_tok, parts.data(), p.ldy);
          k.rows(p.matrix(), r0, r1, act.data() + split_tok * stride, stride, p.tokens - split_tok,
                 parts.data() + split_tok * p.ldy, p.ldy);
        }
        check_same(p, ref, parts, describe(p, level) + " split at token " + std::to_string(split_tok));
      }
    }
  }
}

TEST_CASE("K-quant GEMM: activations past 1 MiB (the drivers' K blocks) give the same bits") {
  // 190 tokens x 20 super-blocks x 292 bytes = 1.1 MB: the GEMMs then run all panels over one
  // K block of 8 or 9 super-blocks before the next, the float sums passing through y.
  auto pool2 = ThreadPool::create(2);
  REQUIRE(pool2.ok());
  uint32_t seed = 9900;
  for (DType type : kKTypes) {
    Problem p = make_problem(type, 40, 20 * 256, 190, seed++);
    const std::vector<float> ref = run(p, IsaLevel::scalar, nullptr);
    for (IsaLevel level : levels_here()) {
      if (level == IsaLevel::scalar) continue;
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), pool2->get()})
        check_same(p, ref, run(p, level, pool), describe(p, level) + " threads=" + std::to_string(pool ? 2 : 1));
    }
  }
}
