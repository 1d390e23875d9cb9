// kernels::matmul at every ISA level this CPU runs, for every weight type the engine computes
// with, held to a double-precision reference with a stated error bound; thread-count invariance;
// unwritten or overwritten outputs (NaN canaries); argument errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.hpp"
#include "slm/cpu.hpp"
#include "slm/thread_pool.hpp"

using namespace slm;

namespace {

// The types the brief requires matmul for (everything whose traits have to_float).
constexpr DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,
                            DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                            DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<IsaLevel> levels_here() {
  std::vector<IsaLevel> out;
  for (int i = 0; i < kIsaLevelCount; ++i)
    if (isa_level_supported(static_cast<IsaLevel>(i))) out.push_back(static_cast<IsaLevel>(i));
  return out;
}

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
