// kernels::matmul at every ISA level this CPU runs, for every weight type the engine computes
// with, held to a double-precision reference with a stated error bound; thread-count invariance;
// unwritten or overwritten outputs (NaN canaries); argument errors. The elementwise ops (exp,
// silu_mul, softmax, rmsnorm, add) and the Q8_K activation quantizer at every level against
// their scalar references.
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.hpp"
#include "kernel_test_util.hpp"
#include "kernels/kernels.hpp"
#include "quant/quant.hpp"
#include "slm/cpu.hpp"
#include "slm/thread_pool.hpp"

using namespace slm;

namespace {

// The types the brief requires matmul for (everything whose traits have to_float).
constexpr DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,
                            DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                            DType::Q4_K, DType::Q5_K, DType::Q6_K};

using slm_test::levels_here;

struct Problem {
  DType type;
  int64_t rows, cols, tokens;
  std::vector<uint8_t> w;    // rows * row_stride bytes
  size_t row_stride = 0;
  std::vector<float> wf;     // the weights as the kernels see them (dequantized)
  std::vector<float> x;      // tokens * ldx
  int64_t ldx = 0, ldy = 0;

  kernels::Matrix matrix() const { return {type, w.data(), rows, cols, row_stride}; }
};

Problem make_problem(DType type, int64_t rows, int64_t cols, int64_t tokens, uint32_t seed) {
  Problem p{type, rows, cols, tokens, {}, 0, {}, {}, 0, 0};
  const TypeTraits& tt = traits(type);
  p.row_stride = *row_bytes(type, cols) + 8;  // padded rows: kernels must use row_stride
  p.w.assign(static_cast<size_t>(rows) * p.row_stride, 0xAB);
  p.wf.resize(static_cast<size_t>(rows * cols));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    // Rows of different magnitude, and an outlier now and then (as real weights have).
    const float scale = 0.02f + 0.1f * static_cast<float>(r % 7);
    for (auto& v : src) v = u(rng) * scale;
    if (cols > 3) src[static_cast<size_t>(r % cols)] *= 8.0f;
    tt.from_float(src.data(), p.w.data() + r * p.row_stride, cols);
    tt.to_float(p.w.data() + r * p.row_stride, p.wf.data() + r * cols, cols);
  }
  p.ldx = cols + 3;
  p.ldy = rows + 5;
  p.x.assign(static_cast<size_t>(tokens * p.ldx), NAN);  // gaps are NaN: must never be read
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < cols; ++k) p.x[static_cast<size_t>(t * p.ldx + k)] = u(rng) * (t % 2 ? 3.0f : 0.5f);
  return p;
}

// Error bound for one output against the exact product of the dequantized weights and the f32
// activations. Quantized-activation paths round x to 8 bits per block: each element moves by at
// most half a step, amax/127/2, plus up to 127 * amax/127 * 2^-11 when the block scale is stored
// as fp16 (Q8_0): 0.6 * amax/127 covers both. Float accumulation of K products adds at most
// ~K * 2^-24 * sum|w x| (we allow 4e-6 * sum|w x| + tiny for K <= 10^4).
double error_bound(const Problem& p, int64_t r, int64_t t) {
  const int64_t block = traits(traits(p.type).dot_type).block_elems;
  const bool quantized_act = traits(p.type).dot_type != DType::F32 && traits(p.type).dot_type != DType::F16 &&
                             traits(p.type).dot_type != DType::BF16;
  double bound = 1e-6;
  const float* x = &p.x[static_cast<size_t>(t * p.ldx)];
  const float* w = &p.wf[static_cast<size_t>(r * p.cols)];
  double abs_sum = 0;
  for (int64_t k0 = 0; k0 < p.cols; k0 += block) {
    double amax = 0, wsum = 0;
    for (int64_t k = k0; k < k0 + block && k < p.cols; ++k) {
      amax = std::fmax(amax, std::fabs(x[k]));
      wsum += std::fabs(w[k]);
      abs_sum += std::fabs(static_cast<double>(w[k]) * x[k]);
    }
    if (quantized_act) bound += wsum * 0.6 * amax / 127.0;
  }
  if (traits(p.type).dot_type == DType::F16 || traits(p.type).dot_type == DType::BF16)
    bound += abs_sum * (traits(p.type).dot_type == DType::F16 ? 1.0 / 1024 : 1.0 / 128);
  return bound + 4e-6 * abs_sum;
}

struct RunResult {
  Status status;
  std::vector<float> y;
};

RunResult run(const Problem& p, IsaLevel level, ThreadPool* pool) {
  RunResult out;
  out.y.assign(static_cast<size_t>(p.tokens * p.ldy), NAN);
  std::vector<uint8_t> scratch(kernels::matmul_scratch_bytes(p.type, p.cols, p.tokens) + 1);
  out.status = kernels::matmul(level, p.matrix(), p.x.data(), p.ldx, p.tokens, out.y.data(), p.ldy,
                               scratch.data(), scratch.size() - 1, pool);
  return out;
}

void check_against_reference(const Problem& p, const RunResult& res, const std::string& what) {
  REQUIRE_MESSAGE(res.status.ok(), what << ": " << res.status.message());
  int bad = 0, canary = 0;
  double worst = 0;
  for (int64_t t = 0; t < p.tokens; ++t) {
    for (int64_t r = 0; r < p.ldy; ++r) {
      const float got = res.y[static_cast<size_t>(t * p.ldy + r)];
      if (r >= p.rows) {
        canary += !std::isnan(got);
        continue;
      }
      double exact = 0;
      for (int64_t k = 0; k < p.cols; ++k)
        exact += static_cast<double>(p.wf[static_cast<size_t>(r * p.cols + k)]) * p.x[static_cast<size_t>(t * p.ldx + k)];
      const double err = std::fabs(got - exact), bound = error_bound(p, r, t);
      if (!(err <= bound)) {
        if (bad++ < 3) MESSAGE(what << " r=" << r << " t=" << t << " got " << got << " exact " << exact
                                    << " bound " << bound);
      }
      if (bound > 0) worst = std::fmax(worst, err / bound);
    }
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " outputs outside the bound (worst err/bound " << worst << ")");
  CHECK_MESSAGE(canary == 0, what << ": " << canary << " outputs written past n_rows");
}

std::string describe(DType type, IsaLevel level, int64_t rows, int64_t cols, int64_t tokens) {
  return std::string(dtype_name(type)) + " @" + isa_level_name(level) + " " + std::to_string(rows) + "x" +
         std::to_string(cols) + " tokens=" + std::to_string(tokens);
}

}  // namespace

TEST_CASE("ISA levels: names round-trip, scalar always runs, the default is supported") {
  for (int i = 0; i < kIsaLevelCount; ++i) {
    auto level = static_cast<IsaLevel>(i);
    auto parsed = parse_isa_level(isa_level_name(level));
    REQUIRE(parsed.ok());
    CHECK(*parsed == level);
  }
  CHECK(*parse_isa_level("AVX512VNNI") == IsaLevel::avx512vnni);
  CHECK(*parse_isa_level("neon_dotprod") == IsaLevel::neon_dotprod);
  CHECK_FALSE(parse_isa_level("sse9").ok());
  CHECK(isa_level_supported(IsaLevel::scalar));
  CHECK(isa_level_supported(default_isa_level()));
  CHECK(isa_level_supported(cpu_max_isa_level()));
  MESSAGE("levels here: max " << std::string(isa_level_name(cpu_max_isa_level())) << ", default "
                              << std::string(isa_level_name(default_isa_level())) << " "
                              << std::string(isa_env_note()));
#if defined(__x86_64__)
  // Levels follow the features: a level is available exactly when the CPU has what it needs.
  const CpuFeatures& f = cpu_features();
  CHECK(isa_level_supported(IsaLevel::avx2) == (f.avx2 && f.fma && f.f16c));
  CHECK(isa_level_supported(IsaLevel::avx512vnni) ==
        (f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni));
  CHECK_FALSE(isa_level_supported(IsaLevel::neon));
#endif
}

TEST_CASE("every type has a kernel at every level") {
  for (IsaLevel level : levels_here())
    for (DType type : kTypes) {
      const bool has_to_float = traits(type).to_float != nullptr;
      REQUIRE_MESSAGE(has_to_float, std::string(dtype_name(type)));
      CHECK_MESSAGE(kernels::matmul_kernel_name(type, level) != nullptr, dtype_name(type) << " @" << isa_level_name(level));
    }
}

TEST_CASE("matmul matches a double reference at every level, for every shape") {
  struct Shape {
    int64_t rows, blocks, tokens;
  };
  // One row, one token, odd sizes, the smallest legal K (one block), tall, wide, and token
  // counts around the GEMM tile widths.
  const Shape shapes[] = {{1, 1, 1},  {1, 3, 1},  {17, 1, 1}, {33, 2, 1}, {50, 5, 2},  {3, 40, 1},
                          {16, 4, 3}, {31, 3, 9}, {64, 2, 17}, {7, 9, 5}, {129, 2, 1}, {40, 1, 33}};
  uint32_t seed = 1;
  for (DType type : kTypes) {
    const TypeTraits& tt = traits(type);
    REQUIRE_MESSAGE((tt.to_float && tt.from_float), "the type table has no reference quantizer for " << std::string(tt.name));
    // Float types: K is not blocked, so use a 32-element "block" to get sizes of the same order.
    const int64_t block = tt.block_elems == 1 ? 32 : tt.block_elems;
    for (const Shape& s : shapes) {
      const int64_t cols = s.blocks * block + (tt.block_elems == 1 && s.blocks % 2 ? 1 : 0);
      Problem p = make_problem(type, s.rows, cols, s.tokens, seed++);
      for (IsaLevel level : levels_here())
        check_against_reference(p, run(p, level, nullptr), describe(type, level, s.rows, cols, s.tokens));
    }
  }
}

TEST_CASE("results are bit-identical for 1, 2 and 3 threads") {
  auto pool2 = ThreadPool::create(2);
  auto pool3 = ThreadPool::create(3);
  REQUIRE(pool2.ok());
  REQUIRE(pool3.ok());
  uint32_t seed = 100;
  for (DType type : kTypes) {
    const TypeTraits& tt = traits(type);
    REQUIRE((tt.to_float && tt.from_float));
    const int64_t block = tt.block_elems == 1 ? 32 : tt.block_elems;
    for (int64_t tokens : {1, 7, 21}) {
      Problem p = make_problem(type, 83, 4 * block, tokens, seed++);
      for (IsaLevel level : levels_here()) {
        RunResult one = run(p, level, nullptr);
        RunResult two = run(p, level, pool2->get());
        RunResult three = run(p, level, pool3->get());
        const std::string what = describe(type, level, p.rows, p.cols, tokens);
        REQUIRE_MESSAGE(one.status.ok(), what);
        REQUIRE(two.status.ok());
        REQUIRE(three.status.ok());
        // memcmp: NaN canaries compare equal bitwise, and -0.0 vs 0.0 would count as a change.
        CHECK_MESSAGE(std::memcmp(one.y.data(), two.y.data(), one.y.size() * sizeof(float)) == 0, what << " 1 vs 2");
        CHECK_MESSAGE(std::memcmp(one.y.data(), three.y.data(), one.y.size() * sizeof(float)) == 0, what << " 1 vs 3");
        check_against_reference(p, three, what + " 3 threads");
      }
    }
  }
}

TEST_CASE("matmul reports bad arguments instead of crashing") {
  Problem p = make_problem(DType::F32, 4, 32, 2, 7);
  std::vector<float> y(static_cast<size_t>(p.tokens * p.ldy));
  std::vector<uint8_t> scratch(kernels::matmul_scratch_bytes(p.type, p.cols, p.tokens) + 64);
  auto call = [&](kernels::Matrix m, int64_t ldx, int64_t ldy) {
    return kernels::matmul(m, p.x.data(), ldx, p.tokens, y.data(), ldy, scratch.data(), scratch.size(), nullptr);
  };
  CHECK(call(p.matrix(), p.ldx, p.ldy).ok());
  kernels::Matrix m = p.matrix();
  m.row_stride = 4;
  CHECK_FALSE(call(m, p.ldx, p.ldy).ok());
  CHECK_FALSE(call(p.matrix(), p.cols - 1, p.ldy).ok());
  CHECK_FALSE(call(p.matrix(), p.ldx, p.rows - 1).ok());
  m = p.matrix();
  m.type = static_cast<DType>(5);  // a retired id
  CHECK_FALSE(call(m, p.ldx, p.ldy).ok());
  m = p.matrix();
  m.data = nullptr;
  CHECK_FALSE(call(m, p.ldx, p.ldy).ok());
  m = p.matrix();
  m.type = DType::Q8_0;
  m.n_cols = 33;  // not a whole number of blocks
  CHECK_FALSE(call(m, p.ldx, p.ldy).ok());
  if (traits(DType::Q8_0).to_float) {
    Problem q = make_problem(DType::Q8_0, 4, 64, 3, 9);
    std::vector<float> yq(static_cast<size_t>(q.tokens * q.ldy));
    for (IsaLevel level : levels_here()) {
      const size_t need = kernels::matmul_scratch_bytes(q.type, q.cols, q.tokens);
      if (need == 0) continue;
      std::vector<uint8_t> small(need - 1);
      Status s = kernels::matmul(level, q.matrix(), q.x.data(), q.ldx, q.tokens, yq.data(), q.ldy, small.data(),
                                 small.size(), nullptr);
      // Every level quantizes Q8_0 activations into the scratch.
      CHECK_FALSE_MESSAGE(s.ok(), std::string(isa_level_name(level)));
    }
  }
}

TEST_CASE("kernels that keep the reference's arithmetic equal it bit for bit") {
  // The K-quant kernels (all levels) and the NEON Q8_0/Q4_0 kernels form the reference's exact
  // integer sums and add each block with the reference's own float expression (quant.hpp), so
  // any difference is a bug, not rounding.
  uint32_t seed = 500;
  for (DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_0, DType::Q4_0}) {
    const bool k_quant = type == DType::Q4_K || type == DType::Q5_K || type == DType::Q6_K;
    for (int64_t tokens : {1, 3, 9}) {  // 9: two 4-token groups and a single
      Problem p = make_problem(type, 37, 3 * 256, tokens, seed++);
      RunResult ref = run(p, IsaLevel::scalar, nullptr);
      REQUIRE(ref.status.ok());
      for (IsaLevel level : levels_here()) {
        if (!k_quant && level != IsaLevel::neon && level != IsaLevel::neon_dotprod) continue;
        RunResult got = run(p, level, nullptr);
        REQUIRE(got.status.ok());
        CHECK_MESSAGE(std::memcmp(ref.y.data(), got.y.data(), ref.y.size() * sizeof(float)) == 0,
                      describe(type, level, p.rows, p.cols, tokens) << " kernel "
                                                                     << std::string(kernels::matmul_kernel_name(type, level)));
      }
    }
  }
}

TEST_CASE("weighted_row_sum equals the scalar product-then-sum loop bit for bit on every level") {
  std::mt19937 rng(900);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (DType type : {DType::F16, DType::F32}) {
    const size_t elem = type == DType::F16 ? 2 : 4;
    for (int64_t n : {128, 70, 13}) {  // 70: a 64-wide chunk, an 8-wide step and a scalar tail
      for (int64_t n_rows : {0, 1, 37}) {
        const size_t stride = elem * static_cast<size_t>(n + 9);
        std::vector<uint8_t> rows(stride * static_cast<size_t>(n_rows) + 64);
        std::vector<float> weights(static_cast<size_t>(n_rows) + 1);
        for (float& w : weights) w = u(rng);
        for (int64_t p = 0; p < n_rows; ++p)
          for (int64_t d = 0; d < n + 9; ++d) {
            uint8_t* at = rows.data() + static_cast<size_t>(p) * stride + static_cast<size_t>(d) * elem;
            if (type == DType::F16) {
              const uint16_t h = f32_to_f16(u(rng));
              std::memcpy(at, &h, 2);
            } else {
              const float f = u(rng);
              std::memcpy(at, &f, 4);
            }
          }
        std::vector<float> want(static_cast<size_t>(n), 0.0f);
        for (int64_t p = 0; p < n_rows; ++p)
          for (int64_t d = 0; d < n; ++d) {
            const uint8_t* at = rows.data() + static_cast<size_t>(p) * stride + static_cast<size_t>(d) * elem;
            float v;
            if (type == DType::F16) {
              uint16_t h;
              std::memcpy(&h, at, 2);
              v = f16_to_f32(h);
            } else {
              std::memcpy(&v, at, 4);
            }
            const float prod = weights[static_cast<size_t>(p)] * v;
            want[static_cast<size_t>(d)] = want[static_cast<size_t>(d)] + prod;
          }
        for (IsaLevel level : levels_here()) {
          std::vector<float> got(static_cast<size_t>(n) + 1, NAN);
          REQUIRE(kernels::weighted_row_sum(level, type, rows.data(), stride, n_rows, weights.data(), n, got.data()).ok());
          CHECK_MESSAGE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0,
                        isa_level_name(level) << " type " << static_cast<int>(type) << " n " << n << " rows " << n_rows);
          CHECK(std::isnan(got.back()));  // nothing written past n
        }
      }
    }
  }
  float out = 0.0f;
  CHECK_FALSE(kernels::weighted_row_sum(DType::Q8_0, &out, 4, 1, &out, 1, &out).ok());
}

// ---- Elementwise ops and the Q8_K activation quantizer --------------------------------------

namespace {

constexpr int64_t kOpSizes[] = {1, 7, 15, 16, 17, 31, 64, 1000, 8960};

// Spacing of the floats at |v| (v exact, in double): 2^(e - 24) for |v| in [2^(e-1), 2^e), and
// the smallest subnormal 2^-149 below FLT_MIN, where floats have fixed absolute spacing.
double float_ulp(double v) {
  v = std::fabs(v);
  if (v < FLT_MIN) return 0x1p-149;
  int e = 0;
  std::frexp(v, &e);
  return std::ldexp(1.0, e - 24);
}

// Error of `got` against the exact value in units of the float spacing there; inf counts as
// 2^128, the first value past FLT_MAX, so an overflow right at the edge is judged as 1 ulp
// (exact >= 2^128 - 2^103, the midpoint past FLT_MAX, rounds to inf: then inf is exact).
double ulp_error(float got, double exact) {
  if (std::isnan(got) || std::isnan(exact)) return std::isnan(got) && std::isnan(exact) ? 0.0 : INFINITY;
  if (std::isinf(got) && std::fabs(exact) >= 0x1p128 - 0x1p103 && (got > 0) == (exact > 0)) return 0.0;
  const double g = std::isinf(got) ? std::copysign(0x1p128, static_cast<double>(got)) : got;
  return std::fabs(g - exact) / float_ulp(std::fmin(std::fabs(exact), 0x1p128 - 0x1p104));
}

// |got - want| <= rel * |want| + 8 * 2^-149 (below FLT_MIN a float has too few significant bits
// for a relative bound; 8 units of the smallest subnormal covers the two roundings there), with
// NaN and infinities required to match exactly.
bool close_rel(float got, float want, double rel) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::fabs(static_cast<double>(got) - want) <= rel * std::fabs(static_cast<double>(want)) + 8 * 0x1p-149;
}

std::vector<float> random_row(std::mt19937& rng, int64_t n, float scale) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng) * scale;
  return v;
}

}  // namespace

TEST_CASE("exp_f32: <= 4 ulp of exp in double over [-104, 89] at every level; specials") {
  // The sweep: 10^6 evenly spaced points plus 2 * 10^5 random ones, through the vector body and
  // (n not a multiple of the lane count) the padded tail.
  std::vector<float> x;
  constexpr int kSweep = 1000000;
  for (int i = 0; i <= kSweep; ++i) x.push_back(static_cast<float>(-104.0 + 193.0 * i / kSweep));
  std::mt19937 rng(41);
  std::uniform_real_distribution<float> u(-104.0f, 89.0f);
  for (int i = 0; i < 200000; ++i) x.push_back(u(rng));
  x.push_back(88.72283f);  // the largest float with exp(x) <= FLT_MAX
  x.push_back(88.72284f);  // overflows
  x.push_back(-87.33654f);  // exp near FLT_MIN
  x.push_back(-103.2789f);  // exp near the smallest subnormal
  for (IsaLevel level : levels_here()) {
    std::vector<float> out(x.size() + 1, NAN);
    kernels::exp_f32(level, x.data(), out.data(), static_cast<int64_t>(x.size()));
    double worst = 0;
    float worst_x = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double err = ulp_error(out[i], std::exp(static_cast<double>(x[i])));
      if (!(err <= worst)) {
        worst = err;
        worst_x = x[i];
      }
    }
    MESSAGE(std::string(isa_level_name(level)) << ": exp max error " << worst << " ulp at x = " << worst_x);
    CHECK_MESSAGE(worst <= 4.0, std::string(isa_level_name(level)) << ": exp max error " << worst << " ulp at x = " << worst_x);
    CHECK(std::isnan(out.back()));

    const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, NAN,
                              89.0f, 100.0f, -104.0f, -200.0f, 1.0f};
    constexpr size_t kN = sizeof specials / sizeof specials[0];
    float got[kN];
    kernels::exp_f32(level, specials, got, static_cast<int64_t>(kN));
    CHECK(got[0] == 1.0f);
    CHECK(got[1] == 1.0f);
    CHECK(got[2] == 1.0f);
    CHECK(got[3] == 1.0f);
    CHECK(got[4] == INFINITY);
    CHECK(got[5] == 0.0f);
    CHECK(got[6] == INFINITY);
    CHECK(got[7] == 0.0f);
    CHECK(std::isnan(got[8]));
    CHECK(got[9] == INFINITY);
    CHECK(got[10] == INFINITY);
    CHECK(got[11] == 0.0f);
    CHECK(got[12] == 0.0f);
    CHECK(ulp_error(got[13], std::exp(1.0)) <= 2.0);
    float in_place[kN];
    std::memcpy(in_place, specials, sizeof in_place);
    kernels::exp_f32(level, in_place, in_place, static_cast<int64_t>(kN));
    CHECK(std::memcmp(in_place, got, sizeof got) == 0);
  }
}

TEST_CASE("silu_mul, softmax, rmsnorm, add at every level against the scalar loops") {
  std::mt19937 rng(77);
  const std::vector<IsaLevel> levels = levels_here();
  for (int64_t n : kOpSizes) {
    CAPTURE(n);
    // silu_mul: gates in [-12, 12] with edge values spread in; tolerance 1e-6 relative (exp
    // <= ~2 ulp here, the division and product 0.5 ulp each, the scalar loop's libm ~1 ulp).
    std::vector<float> gate = random_row(rng, n, 12.0f), up = random_row(rng, n, 2.0f);
    const float edges[] = {0.0f, -0.0f, 1e-30f, 20.0f, -20.0f, 80.0f, -80.0f, 100.0f, -100.0f, INFINITY,
                           -INFINITY, NAN, 88.0f, -88.0f};
    for (size_t k = 0; k < sizeof edges / sizeof edges[0] && n > 16; ++k)
      gate[(k * 37) % static_cast<size_t>(n)] = edges[k];
    gate.push_back(NAN);  // canary past n
    std::vector<float> want = gate;
    kernels::silu_mul(IsaLevel::scalar, want.data(), up.data(), n);
    // softmax: scores of a wide spread (differences up to ~120: some probabilities underflow).
    std::vector<float> scores = random_row(rng, n, 60.0f);
    scores.push_back(NAN);
    std::vector<float> p_want = scores;
    kernels::softmax(IsaLevel::scalar, p_want.data(), n);
    // rmsnorm: a residual stream of mixed magnitudes, out prefilled with NaN.
    std::vector<float> x = random_row(rng, n, 30.0f), w = random_row(rng, n, 1.5f);
    if (n > 3) x[2] = 400.0f;
    std::vector<float> r_want(static_cast<size_t>(n) + 1, NAN);
    kernels::rmsnorm(IsaLevel::scalar, r_want.data(), x.data(), w.data(), n, 1e-6f);
    // add
    std::vector<float> a = random_row(rng, n, 5.0f), b = random_row(rng, n, 5.0f);
    a.push_back(NAN);
    std::vector<float> a_want = a;
    kernels::add(IsaLevel::scalar, a_want.data(), b.data(), n);

    for (IsaLevel level : levels) {
      const std::string level_name = isa_level_name(level);
      CAPTURE(level_name);
      std::vector<float> got = gate;
      kernels::silu_mul(level, got.data(), up.data(), n);
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        const auto k = static_cast<size_t>(i);
        if (!close_rel(got[k], want[k], 1e-6) && bad++ < 3)
          MESSAGE("silu_mul g=" << gate[k] << " up=" << up[k] << " got " << got[k] << " want " << want[k]);
      }
      CHECK_MESSAGE(bad == 0, "silu_mul: " << bad << " outputs off");
      CHECK(std::isnan(got.back()));

      std::vector<float> p = scores;
      kernels::softmax(level, p.data(), n);
      bad = 0;
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const auto k = static_cast<size_t>(i);
        sum += p[k];
        if (!close_rel(p[k], p_want[k], 1e-6) && bad++ < 3)
          MESSAGE("softmax x=" << scores[k] << " got " << p[k] << " want " << p_want[k]);
      }
      CHECK_MESSAGE(bad == 0, "softmax: " << bad << " outputs off");
      CHECK(std::fabs(sum - 1.0) <= 1e-6);
      CHECK(std::isnan(p.back()));

      std::vector<float> r(static_cast<size_t>(n) + 1, NAN);
      kernels::rmsnorm(level, r.data(), x.data(), w.data(), n, 1e-6f);
      bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        const auto k = static_cast<size_t>(i);
        if (!close_rel(r[k], r_want[k], 1e-6) && bad++ < 3)
          MESSAGE("rmsnorm x=" << x[k] << " got " << r[k] << " want " << r_want[k]);
      }
      CHECK_MESSAGE(bad == 0, "rmsnorm: " << bad << " outputs off");
      CHECK(std::isnan(r.back()));
      std::vector<float> in_place = x;  // out aliasing x: the same bits
      kernels::rmsnorm(level, in_place.data(), in_place.data(), w.data(), n, 1e-6f);
      CHECK(std::memcmp(in_place.data(), r.data(), static_cast<size_t>(n) * sizeof(float)) == 0);

      std::vector<float> s = a;
      kernels::add(level, s.data(), b.data(), n);
      CHECK(std::memcmp(s.data(), a_want.data(), static_cast<size_t>(n) * sizeof(float)) == 0);
      CHECK(std::isnan(s.back()));
    }
  }
}

TEST_CASE("softmax edge cases at every level: one element, equal scores, -inf, NaN") {
  for (IsaLevel level : levels_here()) {
    const std::string level_name = isa_level_name(level);
    CAPTURE(level_name);
    float one[2] = {-3.5f, NAN};
    kernels::softmax(level, one, 1);
    CHECK(one[0] == 1.0f);
    CHECK(std::isnan(one[1]));
    std::vector<float> flat(37, 2.0f);
    kernels::softmax(level, flat.data(), 37);
    for (float v : flat) CHECK(v == doctest::Approx(1.0 / 37).epsilon(1e-6));
    std::vector<float> masked = {1.0f, -INFINITY, 1.0f, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY,
                                 -INFINITY, 1.0f, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, 1.0f};
    kernels::softmax(level, masked.data(), static_cast<int64_t>(masked.size()));
    for (size_t i = 0; i < masked.size(); ++i) CHECK(masked[i] == (i == 0 || i == 2 || i == 9 || i == 16 ? 0.25f : 0.0f));
    std::vector<float> with_nan = {0.5f, 1.0f, NAN, 2.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 1.1f, 1.2f, 1.3f};
    kernels::softmax(level, with_nan.data(), static_cast<int64_t>(with_nan.size()));
    for (float v : with_nan) CHECK(std::isnan(v));
    kernels::softmax(level, nullptr, 0);  // nothing to do
  }
}

TEST_CASE("Q8_K activation quantizer: every level writes the reference's bytes") {
  // The K-quant entries of every level quantize activations with their own quantize_act (SIMD on
  // x86); the dot kernels are held to the reference bit for bit, so the blocks must be too.
  std::mt19937 rng(2024);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<std::vector<float>> blocks;
  auto block = [&](auto fill) {
    std::vector<float> b(256);
    for (int i = 0; i < 256; ++i) b[static_cast<size_t>(i)] = fill(i);
    blocks.push_back(b);
  };
  for (int r = 0; r < 6; ++r) block([&](int) { return u(rng) * std::pow(10.0f, static_cast<float>(r - 3)); });
  block([&](int) { return 0.0f; });                                          // all zero
  block([&](int) { return -0.0f; });                                         // all -0
  block([&](int i) { return i == 200 ? -3.0f : 0.0f; });                     // one value, negative
  block([&](int i) { return i == 9 ? 5.0f : (i == 3 ? -5.0f : u(rng)); });   // |max| tie: the first wins
  block([&](int i) { return i == 3 ? 5.0f : (i == 9 ? -5.0f : u(rng)); });
  block([&](int i) { return static_cast<float>(i % 255 - 127) + (i % 2 ? 0.5f : -0.5f); });  // exact halves
  block([&](int i) { return i == 0 ? 127.0f : static_cast<float>(i % 200 - 100) + 0.5f; });   // iscale = -1
  block([&](int i) { return i % 7 == 0 ? FLT_MAX : -u(rng) * 1e38f; });      // extremes
  block([&](int i) { return i % 5 == 0 ? -FLT_MAX : u(rng); });
  block([&](int) { return u(rng) * 1e-40f; });                             // subnormal: iscale = -inf
  block([&](int i) { return i == 17 ? INFINITY : u(rng); });                 // inf: iscale = -0
  block([&](int i) { return i % 3 == 0 ? NAN : u(rng); });                   // NaNs are never the max
  block([&](int) { return NAN; });
  block([&](int i) { return i == 100 ? -INFINITY : (i == 101 ? NAN : 0.0f); });
  for (int r = 0; r < 4; ++r) block([&](int i) { return (i % 16 == 0 ? 40.0f : 1.0f) * u(rng); });  // outliers

  std::vector<float> row;
  for (const auto& b : blocks) row.insert(row.end(), b.begin(), b.end());
  const int64_t n = static_cast<int64_t>(row.size());
  const size_t bytes = static_cast<size_t>(n / 256) * sizeof(quant::block_q8_k);
  std::vector<uint8_t> want(bytes);
  quant::quantize_row_q8_k_ref(row.data(), reinterpret_cast<quant::block_q8_k*>(want.data()), n);
  for (IsaLevel level : levels_here()) {
    for (DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      const auto* table = kernels::detail::kernel_table(level);
      REQUIRE(table != nullptr);
      const auto& k = table->by_type[static_cast<int>(type)];
      REQUIRE(static_cast<bool>(k.quantize_act));
      std::vector<uint8_t> got(bytes + 64, 0xAB);
      k.quantize_act(row.data(), got.data(), n);
      for (size_t b = 0; b < blocks.size(); ++b) {
        CHECK_MESSAGE(std::memcmp(got.data() + b * sizeof(quant::block_q8_k), want.data() + b * sizeof(quant::block_q8_k),
                                  sizeof(quant::block_q8_k)) == 0,
                      std::string(isa_level_name(level)) << " " << dtype_name(type) << " block " << b << " (" << k.name << ")");
      }
      CHECK(got[bytes] == 0xAB);  // nothing written past the row
    }
  }
}

// ---- Q4_1, Q5_0, Q5_1 SIMD row kernels (issue 5) ---------------------------------------------

TEST_CASE("Q4_1, Q5_0, Q5_1 run a SIMD kernel at every SIMD level, with the scalar table's activation type") {
  const kernels::detail::KernelTable* scalar = kernels::detail::kernel_table(IsaLevel::scalar);
  REQUIRE(scalar != nullptr);
  for (IsaLevel level : levels_here()) {
    if (level == IsaLevel::scalar) continue;
    const kernels::detail::KernelTable* table = kernels::detail::kernel_table(level);
    REQUIRE(table != nullptr);
    for (DType type : {DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
      const auto& k = table->by_type[static_cast<int>(type)];
      const std::string what = std::string(dtype_name(type)) + " @" + isa_level_name(level);
      REQUIRE_MESSAGE(k.name != nullptr, what);
      CHECK_MESSAGE(std::string(k.name) != "vec_dot_ref", what);
      // Q4_1 / Q5_1 dot with Q8_1 activations, Q5_0 with Q8_0 (traits.dot_type): the kernel's
      // name says which, and its activation rows hold at least the scalar table's bytes.
      const char* act = traits(type).dot_type == DType::Q8_1 ? "_q8_1_" : "_q8_0_";
      CHECK_MESSAGE(std::string(k.name).find(act) != std::string::npos, what << " " << k.name);
      CHECK(traits(DType::Q4_1).dot_type == DType::Q8_1);
      CHECK(traits(DType::Q5_0).dot_type == DType::Q8_0);
      CHECK(traits(DType::Q5_1).dot_type == DType::Q8_1);
    }
  }
}

namespace {
// T_b of one 32-element block (see below); a function of its own because GCC 12 for aarch64 hit
// an internal compiler error vectorizing std::fmax reductions inlined in the test body.
double q4_1_q5_block_terms(const float* w, const float* x) {
  double wmax = 0, amax = 0;
  for (int k = 0; k < 32; ++k) {
    const double aw = std::fabs(static_cast<double>(w[k])), ax = std::fabs(static_cast<double>(x[k]));
    if (aw > wmax) wmax = aw;
    if (ax > amax) amax = ax;
  }
  double terms = 0;
  for (int k = 0; k < 32; ++k)
    terms += (std::fabs(static_cast<double>(w[k])) + 2 * wmax) * (std::fabs(static_cast<double>(x[k])) + amax / 100);
  return terms;
}
}  // namespace

TEST_CASE("Q4_1, Q5_0, Q5_1: every level agrees with the scalar table within a summation-order bound") {
  // The SIMD kernels quantize the activations to the same codes, d and (Q8_1) s as the scalar
  // table and form the same exact integer block sums; only the float accumulation differs (8
  // partial-sum lanes, FMA, two or three accumulators). Stated tolerance per output:
  //   |got - scalar| <= (nb + 16) * 2^-22 * sum_b T_b + 1e-30,
  //   T_b = sum_{k in b} (|w_k| + 2 max_b |w|) * (|x_k| + amax_b(x) / 100)
  // where T_b bounds the magnitudes of the block's terms d*da*sumi and m*s (|d q| <= |w| + 2 max|w|
  // for all three layouts; |a * da| <= |x| + amax / 254). Shapes cover full groups of 8 blocks,
  // tails, one block, one row, tokens around 1..5, and the NaN-prefilled outputs of run().
  struct Shape {
    int64_t rows, blocks, tokens;
  };
  const Shape shapes[] = {{1, 1, 1}, {3, 7, 1}, {33, 8, 1}, {17, 9, 2}, {5, 16, 5}, {2, 17, 1}, {9, 51, 3}, {40, 48, 1}};
  uint32_t seed = 900;
  for (DType type : {DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
    for (const Shape& s : shapes) {
      Problem p = make_problem(type, s.rows, 32 * s.blocks, s.tokens, seed++);
      RunResult ref = run(p, IsaLevel::scalar, nullptr);
      REQUIRE(ref.status.ok());
      for (IsaLevel level : levels_here()) {
        if (level == IsaLevel::scalar) continue;
        RunResult got = run(p, level, nullptr);
        const std::string what = describe(type, level, p.rows, p.cols, p.tokens) + " " +
                                 std::string(kernels::matmul_kernel_name(type, level));
        REQUIRE_MESSAGE(got.status.ok(), what);
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
            double terms = 0;
            for (int64_t k0 = 0; k0 < p.cols; k0 += 32) terms += q4_1_q5_block_terms(w + k0, x + k0);
            const double tol = static_cast<double>(s.blocks + 16) * std::ldexp(1.0, -22) * terms + 1e-30;
            const float want = ref.y[static_cast<size_t>(t * p.ldy + r)];
            const double err = std::fabs(static_cast<double>(g) - want);
            if (!(err <= tol) && bad++ < 3)
              MESSAGE(what << " r=" << r << " t=" << t << " got " << g << " scalar " << want << " tol " << tol);
          }
        }
        CHECK_MESSAGE(bad == 0, what << ": " << bad << " outputs off the scalar table");
        CHECK_MESSAGE(canary == 0, what << ": " << canary << " outputs written past n_rows");
      }
    }
  }
}

TEST_CASE("Q4_1, Q5_0, Q5_1: the NEON kernels equal the scalar table bit for bit") {
  // They use the reference activation blocks and add each block with the reference's expression.
  uint32_t seed = 950;
  int compared = 0;
  for (DType type : {DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
    for (int64_t tokens : {1, 3}) {
      Problem p = make_problem(type, 37, 3 * 256 + 32, tokens, seed++);
      RunResult ref = run(p, IsaLevel::scalar, nullptr);
      REQUIRE(ref.status.ok());
      for (IsaLevel level : levels_here()) {
        if (level != IsaLevel::neon && level != IsaLevel::neon_dotprod) continue;
        RunResult got = run(p, level, nullptr);
        REQUIRE(got.status.ok());
        ++compared;
        CHECK_MESSAGE(std::memcmp(ref.y.data(), got.y.data(), ref.y.size() * sizeof(float)) == 0,
                      describe(type, level, p.rows, p.cols, tokens) << " kernel "
                                                                     << std::string(kernels::matmul_kernel_name(type, level)));
      }
    }
  }
#if defined(__aarch64__)
  CHECK(compared > 0);
#else
  if (compared == 0) MESSAGE("no NEON level on this machine: the bit-for-bit NEON check did not run here (scripts/cross-test.sh runs it)");
#endif
}

// ---- Interleaved Q4_0 / Q8_0 (kernels::Layout::x16, made at model load) ----------------------

namespace {

// Interleaving takes plain GGUF rows (row_stride = the row's bytes): an unpadded copy of p's
// rows, and the interleaved copy of that.
struct Interleaved {
  std::vector<uint8_t> plain, x16;
  kernels::Matrix m;
};

Interleaved interleave(const Problem& p) {
  Interleaved out;
  const size_t rb = *row_bytes(p.type, p.cols);
  for (int64_t r = 0; r < p.rows; ++r)
    out.plain.insert(out.plain.end(), p.w.begin() + static_cast<std::ptrdiff_t>(r * p.row_stride),
                     p.w.begin() + static_cast<std::ptrdiff_t>(r * p.row_stride + rb));
  const kernels::Matrix plain{p.type, out.plain.data(), p.rows, p.cols, rb};
  out.x16.assign(kernels::interleaved_bytes(plain), 0);
  auto m = kernels::interleave_x16(plain, out.x16.data(), out.x16.size());
  REQUIRE_MESSAGE(m.ok(), m.error().message);
  out.m = *m;
  return out;
}

RunResult run_matrix(const Problem& p, const kernels::Matrix& m, IsaLevel level, ThreadPool* pool) {
  RunResult out;
  out.y.assign(static_cast<size_t>(p.tokens * p.ldy), NAN);
  std::vector<uint8_t> scratch(kernels::matmul_scratch_bytes(p.type, p.cols, p.tokens));
  out.status = kernels::matmul(level, m, p.x.data(), p.ldx, p.tokens, out.y.data(), p.ldy, scratch.data(),
                               scratch.size(), pool);
  return out;
}

}  // namespace

TEST_CASE("interleaved Q4_0 / Q8_0: every level and thread count gives the scalar reference's bits") {
  auto pool2 = ThreadPool::create(2);
  auto pool3 = ThreadPool::create(3);
  REQUIRE(pool2.ok());
  REQUIRE(pool3.ok());
  uint32_t seed = 500;
  for (DType type : {DType::Q4_0, DType::Q8_0}) {
    bool native_somewhere = false;
    // Rows: one group, two (one panel), odd group counts (a half-empty last panel); K from one
    // block to the 1.5B model's width; tokens on both sides of the GEMV / GEMM switch (4) and
    // of the GEMM tiles (6 and 8).
    for (int64_t rows : {16, 32, 48, 80, 160}) {
      for (int64_t blocks : {1, 3, 48}) {
        for (int64_t tokens : {1, 2, 3, 4, 5, 9, 17}) {
          if (rows * blocks * tokens > 160 * 48 * 5 && tokens > 5) continue;  // keep the ASan run short
          Problem p = make_problem(type, rows, 32 * blocks, tokens, seed++);
          Interleaved q = interleave(p);
          const std::string shape = std::string(dtype_name(type)) + " " + std::to_string(rows) + "x" +
                                    std::to_string(32 * blocks) + " tokens=" + std::to_string(tokens);
          RunResult ref = run_matrix(p, q.m, IsaLevel::scalar, nullptr);
          check_against_reference(p, ref, "x16 reference " + shape);
          for (IsaLevel level : levels_here()) {
            const std::string what = std::string("x16 @") + isa_level_name(level) + " " + shape;
            const char* name = kernels::matmul_kernel_name(q.m, level);
            REQUIRE(name != nullptr);
            if (kernels::interleave_pays(level, type)) {
              native_somewhere = true;
              const std::string prefix = std::string("gemm_") + (type == DType::Q4_0 ? "q4_0" : "q8_0") + "_x16_";
              CHECK_MESSAGE(std::string(name).rfind(prefix, 0) == 0, what << ": " << name);
            } else {
              CHECK_MESSAGE(std::string(name) == "rows_x16_ref", what << ": " << name);
            }
            for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), pool2->get(), pool3->get()}) {
              RunResult got = run_matrix(p, q.m, level, pool);
              REQUIRE_MESSAGE(got.status.ok(), what << ": " << got.status.message());
              CHECK_MESSAGE(std::memcmp(got.y.data(), ref.y.data(), got.y.size() * sizeof(float)) == 0,
                            what << " threads " << (pool ? pool->size() : 1));
            }
          }
        }
      }
    }
#if defined(__x86_64__)
    // This CPU has AVX-512 VNNI (and AMX): the native kernels must have run above.
    if (isa_level_supported(IsaLevel::avx512vnni)) CHECK(native_somewhere);
#else
    (void)native_somewhere;  // arm64: no native interleaved kernel is required (-Werror)
#endif
  }
}

TEST_CASE("interleaved layout: what cannot be interleaved is an error, not a crash") {
  std::vector<uint8_t> dst(1 << 16);
  Problem q4k = make_problem(DType::Q5_K, 16, 256, 1, 7);  // Q5_K: no interleaved layout
  const kernels::Matrix q4km{DType::Q5_K, q4k.w.data(), 16, 256, *row_bytes(DType::Q5_K, 256)};
  CHECK_FALSE(kernels::can_interleave(q4km));
  CHECK(kernels::interleaved_bytes(q4km) == 0);
  CHECK_FALSE(kernels::interleave_x16(q4km, dst.data(), dst.size()).ok());

  Problem odd = make_problem(DType::Q4_0, 17, 64, 1, 8);  // 17 rows: not whole groups of 16
  const kernels::Matrix oddm{DType::Q4_0, odd.w.data(), 17, 64, *row_bytes(DType::Q4_0, 64)};
  CHECK_FALSE(kernels::interleave_x16(oddm, dst.data(), dst.size()).ok());
  const kernels::Matrix padded{DType::Q4_0, odd.w.data(), 16, 64, odd.row_stride};  // padded rows
  CHECK_FALSE(kernels::interleave_x16(padded, dst.data(), dst.size()).ok());

  Problem p = make_problem(DType::Q4_0, 32, 64, 1, 9);
  Interleaved q = interleave(p);
  CHECK_FALSE(kernels::interleave_x16(kernels::Matrix{DType::Q4_0, q.plain.data(), 32, 64, q.m.row_stride},
                                      dst.data(), 10).ok());                         // too small
  CHECK_FALSE(kernels::interleave_x16(q.m, dst.data(), dst.size()).ok());            // already interleaved
  // A matrix that claims the layout with another type or a partial group.
  kernels::Matrix wrong = q.m;
  wrong.type = DType::Q4_K;
  std::vector<float> y(64, NAN), scratch_f(4096);
  for (IsaLevel level : levels_here()) {
    CHECK_FALSE(kernels::matmul(level, wrong, p.x.data(), p.ldx, 1, y.data(), 64, scratch_f.data(),
                                scratch_f.size() * 4, nullptr).ok());
    kernels::Matrix partial = q.m;
    partial.n_rows = 20;
    CHECK_FALSE(kernels::matmul(level, partial, p.x.data(), p.ldx, 1, y.data(), 64, scratch_f.data(),
                                scratch_f.size() * 4, nullptr).ok());
  }
}

TEST_CASE("interleaved Q4_0 / Q8_0 GEMM: 16-token tiles, their tails and long K give the reference's bits") {
  // Tokens around the AMX GEMM's 16-token tile (one tile, a tile + 1, two tiles - 1 / + 1, many
  // tiles and a tail); K of the 1.5B model's width and of its FFN-down width (several K chunks).
  auto pool3 = ThreadPool::create(3);
  REQUIRE(pool3.ok());
  uint32_t seed = 900;
  for (DType type : {DType::Q4_0, DType::Q8_0}) {
    for (int64_t rows : {16, 48, 160}) {
      for (int64_t blocks : {48, 280}) {
        for (int64_t tokens : {16, 17, 31, 33, 64, 100}) {
          if (rows * blocks * tokens > 48 * 280 * 33) continue;  // keep the ASan run short
          Problem p = make_problem(type, rows, 32 * blocks, tokens, seed++);
          Interleaved q = interleave(p);
          const std::string shape = std::string(dtype_name(type)) + " " + std::to_string(rows) + "x" +
                                    std::to_string(32 * blocks) + " tokens=" + std::to_string(tokens);
          RunResult ref = run_matrix(p, q.m, IsaLevel::scalar, nullptr);
          check_against_reference(p, ref, "x16 reference " + shape);
          for (IsaLevel level : levels_here()) {
            if (!kernels::interleave_pays(level, type)) continue;  // the reference itself: checked above
            const std::string what = std::string("x16 @") + isa_level_name(level) + " " + shape;
            for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), pool3->get()}) {
              RunResult got = run_matrix(p, q.m, level, pool);
              REQUIRE_MESSAGE(got.status.ok(), what << ": " << got.status.message());
              CHECK_MESSAGE(std::memcmp(got.y.data(), ref.y.data(), got.y.size() * sizeof(float)) == 0,
                            what << " threads " << (pool ? pool->size() : 1));
            }
          }
        }
      }
    }
  }
}

TEST_CASE("plain-row Q4_0 / Q8_0: the AMX GEMM gives the AVX-512 VNNI row kernels' bits") {
  // Both add each block as acc = fma(float(isum), dw * da, acc) in block order, so they must agree
  // bit for bit: GEMM tiles (16 tokens and tails, 32-row panels and a ragged last one), the
  // under-4-token fallback and a K past one 64-block chunk. Runs where AMX does.
  if (!isa_level_supported(IsaLevel::amx)) {
    MESSAGE("no AMX-INT8 here (or the kernel refused the tile state): the AMX GEMM was not checked");
    return;
  }
  auto pool3 = ThreadPool::create(3);
  REQUIRE(pool3.ok());
  uint32_t seed = 1300;
  for (DType type : {DType::Q4_0, DType::Q8_0}) {
    for (int64_t rows : {17, 45}) {
      for (int64_t blocks : {3, 70}) {
        for (int64_t tokens : {1, 3, 4, 16, 17, 35}) {
          Problem p = make_problem(type, rows, 32 * blocks, tokens, seed++);
          const RunResult vnni = run(p, IsaLevel::avx512vnni, nullptr);
          REQUIRE(vnni.status.ok());
          for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), pool3->get()}) {
            const RunResult amx = run(p, IsaLevel::amx, pool);
            REQUIRE(amx.status.ok());
            CHECK_MESSAGE(std::memcmp(amx.y.data(), vnni.y.data(), amx.y.size() * sizeof(float)) == 0,
                          describe(type, IsaLevel::amx, rows, 32 * blocks, tokens)
                              << " threads " << (pool ? pool->size() : 1));
          }
        }
      }
    }
  }
}
