// The arm64 NEON levels' K-quant (Q4_K, Q5_K, Q6_K against Q8_K), float (F32, F16, BF16) and
// weighted_row_sum entries (issue 5): each NEON level runs its own kernel for them, not the
// scalar table's, and equals the scalar table bit for bit (K-quants, the Q8_K activation bytes,
// weighted_row_sum) or within a stated summation-order bound (float weights), over random data
// and edge shapes, with NaN-prefilled outputs. On other machines there is no NEON level: the
// same comparisons run for every SIMD level this CPU has (x86 keeps the same contracts), and a
// MESSAGE says the NEON-specific checks did not run. Also the i8mm (SMMLA) Q8_0 / Q4_0 GEMM that
// neon-dotprod installs when the CPU has it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.hpp"
#include "kernels/kernels.hpp"
#include "quant/blocks.hpp"
#include "quant/quant.hpp"
#include "slm/cpu.hpp"
#include "slm/dtype.hpp"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

using namespace slm;

namespace {

bool is_neon(IsaLevel level) { return level == IsaLevel::neon || level == IsaLevel::neon_dotprod; }

// The SIMD levels this machine runs (every level but scalar).
std::vector<IsaLevel> simd_levels() {
  std::vector<IsaLevel> out;
  for (int i = 0; i < kIsaLevelCount; ++i) {
    const auto level = static_cast<IsaLevel>(i);
    if (level != IsaLevel::scalar && isa_level_supported(level)) out.push_back(level);
  }
  return out;
}

int neon_levels_here() {
  int n = 0;
  for (IsaLevel level : simd_levels()) n += is_neon(level);
  return n;
}

void note_if_no_neon(const char* what) {
  if (neon_levels_here() == 0)
    MESSAGE("no NEON level on this machine (aarch64 only; scripts/cross-test.sh runs it under qemu): "
            << std::string(what) << " ran for the other SIMD levels only");
}

struct Problem {
  DType type;
  int64_t rows, cols, tokens;
  std::vector<uint8_t> w;  // rows * row_stride bytes
  size_t row_stride = 0;
  std::vector<float> wf;   // dequantized weights
  std::vector<float> x;    // tokens * ldx, NaN in the gaps
  int64_t ldx = 0, ldy = 0;
};

Problem make_problem(DType type, int64_t rows, int64_t cols, int64_t tokens, uint32_t seed) {
  Problem p{type, rows, cols, tokens, {}, 0, {}, {}, 0, 0};
  const TypeTraits& tt = traits(type);
  // Padded rows, kept aligned to the element (F32: 4 bytes; the others 2, F16/BF16 rows then
  // start at addresses that are not multiples of 4).
  p.row_stride = *row_bytes(type, cols) + (type == DType::F32 ? 8 : 6);
  p.w.assign(static_cast<size_t>(rows) * p.row_stride, 0xCD);
  p.wf.resize(static_cast<size_t>(rows * cols));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.01f + 0.2f * static_cast<float>(r % 5);
    for (auto& v : src) v = u(rng) * scale;
    src[static_cast<size_t>((r * 7) % cols)] *= 10.0f;  // an outlier per row
    if (r % 4 == 3) std::fill(src.begin(), src.begin() + std::min<int64_t>(cols, 40), 0.0f);  // a zero run
    tt.from_float(src.data(), p.w.data() + r * p.row_stride, cols);
    tt.to_float(p.w.data() + r * p.row_stride, p.wf.data() + r * cols, cols);
  }
  p.ldx = cols + 5;
  p.ldy = rows + 3;
  p.x.assign(static_cast<size_t>(tokens * p.ldx), NAN);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < cols; ++k)
      p.x[static_cast<size_t>(t * p.ldx + k)] = u(rng) * (t % 3 == 0 ? 0.3f : (t % 3 == 1 ? 4.0f : 50.0f));
  return p;
}

struct Result {
  Status status;
  std::vector<float> y;  // tokens * ldy, NaN-prefilled
};

Result run(const Problem& p, IsaLevel level) {
  Result out;
  out.y.assign(static_cast<size_t>(p.tokens * p.ldy), NAN);
  std::vector<uint8_t> scratch(kernels::matmul_scratch_bytes(p.type, p.cols, p.tokens) + 1);
  const kernels::Matrix m{p.type, p.w.data(), p.rows, p.cols, p.row_stride};
  out.status = kernels::matmul(level, m, p.x.data(), p.ldx, p.tokens, out.y.data(), p.ldy, scratch.data(),
                               scratch.size() - 1, nullptr);
  return out;
}

std::string describe(const Problem& p, IsaLevel level) {
  const char* name = kernels::matmul_kernel_name(p.type, level);
  return std::string(dtype_name(p.type)) + " @" + isa_level_name(level) + " " + std::to_string(p.rows) + "x" +
         std::to_string(p.cols) + " tokens=" + std::to_string(p.tokens) + " (" + (name ? name : "none") + ")";
}

constexpr DType kKQuants[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K};
constexpr DType kFloats[] = {DType::F32, DType::F16, DType::BF16};

}  // namespace

TEST_CASE("NEON levels run their own kernels for the K-quants, float weights and weighted_row_sum") {
  const auto* scalar = kernels::detail::kernel_table(IsaLevel::scalar);
  REQUIRE(scalar != nullptr);
  int checked = 0;
  for (IsaLevel level : simd_levels()) {
    if (!is_neon(level)) continue;
    const auto* table = kernels::detail::kernel_table(level);
    REQUIRE(table != nullptr);
    const std::string suffix = level == IsaLevel::neon ? "_neon" : "_neon_dotprod";
    for (DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::F32, DType::F16, DType::BF16}) {
      const auto& k = table->by_type[static_cast<int>(type)];
      const auto& s = scalar->by_type[static_cast<int>(type)];
      const std::string what = std::string(dtype_name(type)) + " @" + isa_level_name(level);
      REQUIRE_MESSAGE(k.name != nullptr, what);
      const std::string name = k.name;
      const bool own_rows = k.rows != s.rows;
      CHECK_MESSAGE(own_rows, what << ": " << name);
      CHECK_MESSAGE(name.size() > suffix.size(), what << ": " << name);
      CHECK_MESSAGE(name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0, what << ": " << name);
      const bool k_quant = type == DType::Q4_K || type == DType::Q5_K || type == DType::Q6_K;
      // K-quants read Q8_K rows (the scalar table's bytes, 292 per 256), floats the f32 input.
      CHECK_MESSAGE(static_cast<bool>(k.quantize_act) == k_quant, what);
      if (k_quant) {
        const bool own_quantizer = k.quantize_act != s.quantize_act;
        CHECK_MESSAGE(own_quantizer, what << ": the reference quantizer, not the NEON one");
        CHECK(k.act_row_bytes(256 * 5) >= 5 * sizeof(quant::block_q8_k));
        CHECK(k.act_row_bytes(256 * 5) % 64 == 0);
      }
      ++checked;
    }
    const bool own_f16 = table->weighted_sum_f16 != scalar->weighted_sum_f16;
    const bool own_f32 = table->weighted_sum_f32 != scalar->weighted_sum_f32;
    CHECK(own_f16);
    CHECK(own_f32);
  }
#if defined(__aarch64__)
  CHECK(checked == 6 * neon_levels_here());
  CHECK(neon_levels_here() >= 1);  // every arm64 Linux CPU has ASIMD
#else
  CHECK(checked == 0);
  note_if_no_neon("the table-entry check");
#endif
}

TEST_CASE("K-quants: every SIMD level equals the scalar table bit for bit (edge shapes, tokens 1..9)") {
  // The NEON kernels form the reference's exact integer sums per super-block and add each with
  // the reference's float expression (vec_dot_q*_k_q8_k_ref), on the reference's Q8_K bytes.
  struct Shape {
    int64_t rows, blocks;
  };
  const Shape shapes[] = {{1, 1}, {3, 5}, {33, 1}, {33, 5}, {1, 5}, {3, 1}};
  uint32_t seed = 7000;
  int compared = 0;
  for (DType type : kKQuants) {
    for (const Shape& s : shapes) {
      for (int64_t tokens = 1; tokens <= 9; ++tokens) {
        if (s.rows * s.blocks > 33 && tokens % 4 != 1 && tokens != 8) continue;  // keep qemu short
        Problem p = make_problem(type, s.rows, 256 * s.blocks, tokens, seed++);
        const Result ref = run(p, IsaLevel::scalar);
        REQUIRE_MESSAGE(ref.status.ok(), ref.status.message());
        for (IsaLevel level : simd_levels()) {
          const Result got = run(p, level);
          REQUIRE_MESSAGE(got.status.ok(), got.status.message());
          compared += is_neon(level);
          int diff = 0, canary = 0;
          for (int64_t t = 0; t < p.tokens; ++t)
            for (int64_t r = 0; r < p.ldy; ++r) {
              const size_t i = static_cast<size_t>(t * p.ldy + r);
              if (r >= p.rows) {
                canary += !std::isnan(got.y[i]);
                continue;
              }
              if (std::memcmp(&got.y[i], &ref.y[i], sizeof(float)) != 0 && diff++ < 2)
                MESSAGE(describe(p, level) << " r=" << r << " t=" << t << " got " << got.y[i] << " scalar " << ref.y[i]);
              diff += std::isnan(got.y[i]);  // a NaN canary left unwritten
            }
          CHECK_MESSAGE(diff == 0, describe(p, level) << ": " << diff << " outputs differ from the scalar table");
          CHECK_MESSAGE(canary == 0, describe(p, level) << ": wrote past n_rows");
        }
      }
    }
  }
#if defined(__aarch64__)
  CHECK(compared > 0);
#else
  CHECK(compared == 0);
  note_if_no_neon("the K-quant bit-for-bit check");
#endif
}

TEST_CASE("Q8_K activations: every SIMD level's quantize_act writes quantize_row_q8_k_ref's bytes") {
  // Random rows of several magnitudes, one with ties for the largest |x|, a zero block, a block
  // of NaNs and a NaN in the middle, and infinities (test_kernels covers more edge blocks).
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t n = 256 * 8;
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = u(rng) * std::pow(10.0f, static_cast<float>(i / 256 % 4) - 2);
  x[256 + 5] = 2.5f;
  x[256 + 77] = -2.5f;  // the first of equal |x| wins: 2.5
  for (int i = 512; i < 768; ++i) x[static_cast<size_t>(i)] = 0.0f;
  for (int i = 768; i < 1024; ++i) x[static_cast<size_t>(i)] = NAN;
  x[1024 + 100] = NAN;
  x[1280 + 3] = INFINITY;
  x[1536 + 200] = -INFINITY;
  const size_t bytes = static_cast<size_t>(n / 256) * sizeof(quant::block_q8_k);
  std::vector<uint8_t> want(bytes);
  quant::quantize_row_q8_k_ref(x.data(), reinterpret_cast<quant::block_q8_k*>(want.data()), n);
  int compared = 0;
  for (IsaLevel level : simd_levels()) {
    const auto* table = kernels::detail::kernel_table(level);
    REQUIRE(table != nullptr);
    for (DType type : kKQuants) {
      const auto& k = table->by_type[static_cast<int>(type)];
      REQUIRE(static_cast<bool>(k.quantize_act));
      std::vector<uint8_t> got(bytes + 16, 0x5A);
      k.quantize_act(x.data(), got.data(), n);
      for (size_t b = 0; b < bytes / sizeof(quant::block_q8_k); ++b)
        CHECK_MESSAGE(std::memcmp(got.data() + b * sizeof(quant::block_q8_k), want.data() + b * sizeof(quant::block_q8_k),
                                  sizeof(quant::block_q8_k)) == 0,
                      std::string(isa_level_name(level)) << " " << std::string(dtype_name(type)) << " block " << b);
      CHECK(got[bytes] == 0x5A);
      compared += is_neon(level);
    }
  }
#if defined(__aarch64__)
  CHECK(compared > 0);
#else
  note_if_no_neon("the Q8_K byte check");
#endif
}

TEST_CASE("float weights: every SIMD level is within the stated bound of the scalar table") {
  // The scalar table sums w * x in double and rounds once; the SIMD kernels sum in float (NEON:
  // 16 partial sums of fused products, a pairwise then lane reduction, a fused tail). Stated
  // tolerance per output: |got - scalar| <= (K / 16 + 32) * 2^-24 * sum_k |w_k x_k| + 1e-30
  // (K / 1 for the x86 levels, whose GEMM tiles sum each output in one FMA chain).
  const int64_t cols_list[] = {1, 7, 33, 16, 300};
  const int64_t rows_list[] = {1, 3, 33};
  uint32_t seed = 8000;
  int compared = 0;
  for (DType type : kFloats) {
    for (int64_t cols : cols_list) {
      for (int64_t rows : rows_list) {
        for (int64_t tokens : {1, 2, 4, 5, 9}) {
          Problem p = make_problem(type, rows, cols, tokens, seed++);
          const Result ref = run(p, IsaLevel::scalar);
          REQUIRE_MESSAGE(ref.status.ok(), ref.status.message());
          for (IsaLevel level : simd_levels()) {
            const Result got = run(p, level);
            REQUIRE_MESSAGE(got.status.ok(), got.status.message());
            compared += is_neon(level);
            // NEON: 16 partial sums; the x86 GEMM tiles run one FMA chain over k per output.
            const double chains = is_neon(level) ? 16.0 : 1.0;
            int bad = 0, canary = 0;
            for (int64_t t = 0; t < p.tokens; ++t) {
              const float* x = &p.x[static_cast<size_t>(t * p.ldx)];
              for (int64_t r = 0; r < p.ldy; ++r) {
                const float g = got.y[static_cast<size_t>(t * p.ldy + r)];
                if (r >= p.rows) {
                  canary += !std::isnan(g);
                  continue;
                }
                const float* w = &p.wf[static_cast<size_t>(r * p.cols)];
                double abs_sum = 0;
                for (int64_t k = 0; k < p.cols; ++k) abs_sum += std::fabs(static_cast<double>(w[k]) * x[k]);
                const double tol = (static_cast<double>(p.cols) / chains + 32) * std::ldexp(1.0, -24) * abs_sum + 1e-30;
                const float want = ref.y[static_cast<size_t>(t * p.ldy + r)];
                const double err = std::fabs(static_cast<double>(g) - want);
                if (!(err <= tol) && bad++ < 2)
                  MESSAGE(describe(p, level) << " r=" << r << " t=" << t << " got " << g << " scalar " << want
                                             << " tol " << tol);
              }
            }
            CHECK_MESSAGE(bad == 0, describe(p, level) << ": " << bad << " outputs off the scalar table");
            CHECK_MESSAGE(canary == 0, describe(p, level) << ": wrote past n_rows");
          }
        }
      }
    }
  }
#if defined(__aarch64__)
  CHECK(compared > 0);
#else
  CHECK(compared == 0);
  note_if_no_neon("the float-weight check");
#endif
}

TEST_CASE("K-quant and float rows: a result does not depend on how many tokens run together") {
  // MatmulRowsFn contract: tokens grouped 4 at a time give the same bits as one by one.
  uint32_t seed = 8500;
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const bool k_quant = type == DType::Q4_K || type == DType::Q5_K || type == DType::Q6_K;
    Problem p = make_problem(type, 5, k_quant ? 512 : 71, 9, seed++);
    for (IsaLevel level : simd_levels()) {
      // The x86 float kernels switch from row dots to GEMM tiles at 4 tokens (other sums).
      if (!is_neon(level) && !k_quant) continue;
      const Result all = run(p, level);
      REQUIRE(all.status.ok());
      for (int64_t t = 0; t < p.tokens; ++t) {
        Problem one = p;  // token t alone
        one.tokens = 1;
        one.x.assign(p.x.begin() + t * p.ldx, p.x.begin() + (t + 1) * p.ldx);
        const Result single = run(one, level);
        REQUIRE(single.status.ok());
        CHECK_MESSAGE(std::memcmp(single.y.data(), all.y.data() + t * p.ldy, static_cast<size_t>(p.rows) * sizeof(float)) == 0,
                      describe(p, level) << " token " << t);
      }
    }
  }
  note_if_no_neon("the grouping check");
}

TEST_CASE("weighted_row_sum: every SIMD level equals the scalar table bit for bit") {
  std::mt19937 rng(77);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  int compared = 0;
  for (DType type : {DType::F16, DType::F32}) {
    const size_t elem = type == DType::F16 ? 2 : 4;
    for (int64_t n : {1, 3, 4, 31, 32, 37, 64, 100}) {
      for (int64_t n_rows : {1, 2, 17}) {
        const size_t stride = elem * static_cast<size_t>(n + 3);
        std::vector<uint8_t> rows(stride * static_cast<size_t>(n_rows));
        std::vector<float> weights(static_cast<size_t>(n_rows));
        for (float& w : weights) w = u(rng);
        for (size_t i = 0; i < rows.size() / elem; ++i) {
          const float v = u(rng);
          if (type == DType::F16) {
            const uint16_t h = f32_to_f16(v);
            std::memcpy(rows.data() + 2 * i, &h, 2);
          } else {
            std::memcpy(rows.data() + 4 * i, &v, 4);
          }
        }
        std::vector<float> want(static_cast<size_t>(n) + 1, NAN);
        REQUIRE(kernels::weighted_row_sum(IsaLevel::scalar, type, rows.data(), stride, n_rows, weights.data(), n,
                                          want.data())
                    .ok());
        for (IsaLevel level : simd_levels()) {
          std::vector<float> got(static_cast<size_t>(n) + 1, NAN);
          REQUIRE(kernels::weighted_row_sum(level, type, rows.data(), stride, n_rows, weights.data(), n, got.data()).ok());
          CHECK_MESSAGE(std::memcmp(want.data(), got.data(), static_cast<size_t>(n) * sizeof(float)) == 0,
                        std::string(isa_level_name(level)) << " " << std::string(dtype_name(type)) << " n " << n << " rows " << n_rows);
          CHECK(std::isnan(got.back()));
          compared += is_neon(level);
        }
      }
    }
  }
#if defined(__aarch64__)
  CHECK(compared > 0);
#else
  note_if_no_neon("the weighted_row_sum check");
#endif
}

TEST_CASE("Q8_0 / Q4_0 at neon-dotprod with i8mm: the SMMLA GEMM equals the scalar table bit for bit") {
  // kernels_neon_i8mm.cpp: 4-row x 4-token SMMLA tiles with the tails repeating a row / token,
  // each block added with the reference's expression. Rows 1..37, K from one block, tokens 1..17.
  const auto* table = kernels::detail::kernel_table(IsaLevel::neon_dotprod);
  bool i8mm = false;
#if defined(__aarch64__) && defined(__linux__)
  i8mm = (getauxval(AT_HWCAP2) & (1UL << 13)) != 0;  // HWCAP2_I8MM
#endif
  if (table) {
    for (DType type : {DType::Q8_0, DType::Q4_0}) {
      const std::string name = table->by_type[static_cast<int>(type)].name;
      CHECK_MESSAGE((name.find("_neon_i8mm") != std::string::npos) == i8mm, name);
    }
  }
  if (!i8mm) {
    MESSAGE("no i8mm (HWCAP2_I8MM) here: the SMMLA GEMM check did not run (qemu-aarch64 -cpu max runs it)");
    return;
  }
  uint32_t seed = 9100;
  for (DType type : {DType::Q8_0, DType::Q4_0}) {
    for (int64_t rows : {1, 3, 5, 33, 37}) {
      for (int64_t blocks : {1, 9}) {
        for (int64_t tokens : {1, 2, 3, 4, 5, 7, 8, 9, 17}) {
          if (rows > 5 && tokens % 4 == 3 && tokens != 3) continue;  // keep qemu short
          Problem p = make_problem(type, rows, 32 * blocks, tokens, seed++);
          const Result ref = run(p, IsaLevel::scalar);
          const Result got = run(p, IsaLevel::neon_dotprod);
          REQUIRE(ref.status.ok());
          REQUIRE(got.status.ok());
          int diff = 0, canary = 0;
          for (int64_t t = 0; t < p.tokens; ++t)
            for (int64_t r = 0; r < p.ldy; ++r) {
              const size_t i = static_cast<size_t>(t * p.ldy + r);
              if (r >= p.rows) canary += !std::isnan(got.y[i]);
              else diff += std::memcmp(&got.y[i], &ref.y[i], sizeof(float)) != 0 || std::isnan(got.y[i]);
            }
          CHECK_MESSAGE(diff == 0, describe(p, IsaLevel::neon_dotprod) << ": " << diff << " outputs differ");
          CHECK_MESSAGE(canary == 0, describe(p, IsaLevel::neon_dotprod) << ": wrote past n_rows");
        }
      }
    }
  }
}
