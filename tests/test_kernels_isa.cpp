// Level-specific kernel checks: the avxvnni level (detection, its place in the default order, its
// integer-dot kernels against the avx2 level bit for bit), and the RoPE and f32 -> f16 row kernels
// at every level this CPU runs against the scalar loops bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <ios>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.hpp"
#include "kernel_test_util.hpp"
#include "slm/cpu.hpp"
#include "slm/dtype.hpp"

using namespace slm;

namespace {

using slm_test::levels_here;

bool ends_with(const char* s, const std::string& suffix) {
  const std::string str = s ? s : "";
  return str.size() >= suffix.size() && str.compare(str.size() - suffix.size(), suffix.size(), suffix) == 0;
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

TEST_CASE("avxvnni: a level of its own, runnable only with AVX-VNNI, below avx512 in preference") {
  CHECK(std::string(isa_level_name(IsaLevel::avxvnni)) == "avxvnni");
  REQUIRE(parse_isa_level("AVXVNNI").ok());
  CHECK(*parse_isa_level("AVXVNNI") == IsaLevel::avxvnni);
  CHECK(*parse_isa_level("avx512vnni") == IsaLevel::avx512vnni);  // not confused with each other
  const CpuFeatures& f = cpu_features();
  CHECK(isa_level_supported(IsaLevel::avxvnni) == (f.avx2 && f.fma && f.f16c && f.avx_vnni));
  // The default is the best level: amx where it runs (Sapphire Rapids has AVX-VNNI too), avxvnni
  // on a CPU with AVX-VNNI and no AVX-512 (Alder Lake).
  if (isa_level_supported(IsaLevel::amx)) CHECK(cpu_max_isa_level() == IsaLevel::amx);
  if (isa_level_supported(IsaLevel::avxvnni) && !isa_level_supported(IsaLevel::avx512))
    CHECK(cpu_max_isa_level() == IsaLevel::avxvnni);
  MESSAGE("avxvnni " << std::string(isa_level_supported(IsaLevel::avxvnni) ? "runs" : "does not run") << " here; max level "
                     << std::string(isa_level_name(cpu_max_isa_level())));
}

TEST_CASE("avxvnni: integer-dot kernels are its own and equal the avx2 level bit for bit") {
  if (!isa_level_supported(IsaLevel::avxvnni) || !isa_level_supported(IsaLevel::avx2)) {
    MESSAGE("no AVX-VNNI on this CPU: the avxvnni-vs-avx2 comparison did not run");
    return;
  }
  const DType types[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                         DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  CHECK(std::string(kernels::matmul_kernel_name(DType::Q8_0, IsaLevel::avxvnni)) == "gemm_q8_0_q8_0_avxvnni");
  CHECK(std::string(kernels::matmul_kernel_name(DType::Q4_0, IsaLevel::avxvnni)) == "gemm_q4_0_q8_0_avxvnni");
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (DType type : types) {
    const std::string name = dtype_name(type);
    CHECK_MESSAGE(ends_with(kernels::matmul_kernel_name(type, IsaLevel::avxvnni), "_avxvnni"), name);
    const TypeTraits& tt = traits(type);
    const bool k_quant = tt.block_elems == 256;
    // Rows not a multiple of the GEMM panel (8); blocks past a 32-block chunk and a group of 8.
    const int64_t rows = 37, cols = k_quant ? 768 : 32 * 41;
    const size_t stride = *row_bytes(type, cols);
    std::vector<uint8_t> w(static_cast<size_t>(rows) * stride);
    std::vector<float> src(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (auto& v : src) v = u(rng) * (0.05f + 0.1f * static_cast<float>(r % 5));
      tt.from_float(src.data(), w.data() + r * stride, cols);
    }
    if (type == DType::Q8_0) {
      // Any code a file may hold, -128 included (the widest products of the sign trick).
      auto* blocks = reinterpret_cast<uint8_t*>(w.data());
      for (size_t b = 0; b < w.size() / 34; ++b)
        for (int j = 0; j < 32; ++j) blocks[b * 34 + 2 + j] = static_cast<uint8_t>(rng());
    }
    const kernels::Matrix m{type, w.data(), rows, cols, stride};
    for (int64_t tokens : {1, 2, 4, 5, 11}) {
      std::vector<float> x(static_cast<size_t>(tokens * cols));
      for (auto& v : x) v = u(rng) * 2.0f;
      std::vector<uint8_t> scratch(kernels::matmul_scratch_bytes(type, cols, tokens));
      std::vector<float> y2(static_cast<size_t>(tokens * rows), NAN), yv(y2);
      REQUIRE(kernels::matmul(IsaLevel::avx2, m, x.data(), cols, tokens, y2.data(), rows, scratch.data(),
                              scratch.size(), nullptr).ok());
      REQUIRE(kernels::matmul(IsaLevel::avxvnni, m, x.data(), cols, tokens, yv.data(), rows, scratch.data(),
                              scratch.size(), nullptr).ok());
      int differ = 0;
      for (size_t i = 0; i < y2.size(); ++i) differ += bits_of(y2[i]) != bits_of(yv[i]) || std::isnan(yv[i]);
      CHECK_MESSAGE(differ == 0, name << " tokens " << tokens << ": " << differ << " outputs differ from avx2 ("
                                      << kernels::matmul_kernel_name(type, IsaLevel::avxvnni) << ")");
    }
  }
}

TEST_CASE("rope: every level equals the scalar loop bit for bit (both pair layouts, odd sizes)") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  struct Shape {
    int64_t n_heads, head_dim, n_rot;
  };
  // Full rotation at the usual head sizes; partial rotation (elements past n_rot stay); halves
  // that are not a multiple of any vector width.
  const Shape shapes[] = {{1, 2, 2},   {3, 6, 6},    {2, 18, 18},  {5, 34, 34},  {4, 64, 64},
                          {2, 128, 128}, {3, 80, 64}, {2, 70, 38}, {1, 192, 64}, {7, 50, 50}};
  for (const Shape& s : shapes) {
    const int64_t half = s.n_rot / 2;
    std::vector<float> cos_v(static_cast<size_t>(half)), sin_v(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
      const double theta = 37.0 * static_cast<double>(i + 1) * u(rng);
      cos_v[static_cast<size_t>(i)] = static_cast<float>(std::cos(theta));
      sin_v[static_cast<size_t>(i)] = static_cast<float>(std::sin(theta));
    }
    std::vector<float> x(static_cast<size_t>(s.n_heads * s.head_dim));
    for (size_t i = 0; i < x.size(); ++i) x[i] = u(rng) * (i % 3 == 0 ? 300.0f : 1.5f);
    for (bool neox : {false, true}) {
      std::vector<float> want = x;
      kernels::rope(IsaLevel::scalar, want.data(), s.n_heads, s.head_dim, s.n_rot, cos_v.data(), sin_v.data(), neox);
      // The reference itself: the rotation, with elements past n_rot untouched.
      int changed_tail = 0, unrotated = 0;
      for (int64_t h = 0; h < s.n_heads; ++h)
        for (int64_t k = 0; k < s.head_dim; ++k) {
          const size_t i = static_cast<size_t>(h * s.head_dim + k);
          if (k >= s.n_rot) changed_tail += bits_of(want[i]) != bits_of(x[i]);
          else unrotated += want[i] == x[i];
        }
      CHECK(changed_tail == 0);
      CHECK(unrotated < s.n_heads * s.n_rot / 4 + 1);
      const auto ib = static_cast<size_t>(neox ? half : 1);  // pair 0 of head 0 is (0, ib)
      const float ac = x[0] * cos_v[0], bs = x[ib] * sin_v[0];
      CHECK(bits_of(want[0]) == bits_of(ac - bs));
      for (IsaLevel level : levels_here()) {
        std::vector<float> got = x;
        kernels::rope(level, got.data(), s.n_heads, s.head_dim, s.n_rot, cos_v.data(), sin_v.data(), neox);
        int differ = 0;
        for (size_t i = 0; i < got.size(); ++i) differ += bits_of(got[i]) != bits_of(want[i]);
        CHECK_MESSAGE(differ == 0, std::string(isa_level_name(level)) << (neox ? " neox" : " adjacent") << " heads " << s.n_heads
                                                         << " head_dim " << s.head_dim << " n_rot " << s.n_rot << ": "
                                                         << differ << " elements differ");
      }
    }
  }
}

TEST_CASE("f32_to_f16_row: every level equals f32_to_f16 bit for bit (ties, subnormals, overflow, Inf, NaN)") {
  std::vector<float> values;
  const float specials[] = {0.0f,
                            -0.0f,
                            1.0f,
                            -2.5f,
                            65504.0f,                      // largest half
                            65519.996f,                    // just below the overflow tie
                            65520.0f,                      // tie between 65504 and 65536: Inf
                            -70000.0f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min(),
                            0x1p-14f,                      // smallest normal half
                            0x1p-24f,                      // smallest subnormal half
                            0x1p-25f,                      // tie with 0: rounds to 0 (even)
                            0x1.000002p-25f,               // just above: rounds up
                            3.0f * 0x1p-25f,               // tie between subnormals 1 and 2: 2
                            0x1.ffcp-15f,                  // largest subnormal region
                            float_of(0x7fc00000u),         // quiet NaN
                            float_of(0xffc00001u),         // negative quiet NaN, low payload
                            float_of(0x7f800001u),         // signalling NaN, low payload only
                            float_of(0x7fa5a000u),         // signalling NaN, payload in the top bits
                            float_of(0xff9fe000u)};
  for (float v : specials) values.push_back(v);
  // Exact ties between neighbouring halves at several exponents (round to even both ways).
  for (int e = -14; e <= 15; e += 3)
    for (uint32_t m : {0u, 1u, 2u, 3u, 1022u, 1023u}) {
      const uint32_t half_bits = static_cast<uint32_t>((e + 127) << 23) | (m << 13);
      values.push_back(float_of(half_bits | 0x1000u));   // exactly halfway to the next half
      values.push_back(-float_of(half_bits | 0x0fffu));  // just below halfway
    }
  std::mt19937 rng(5);
  for (int i = 0; i < 3000; ++i) {
    const uint32_t r = static_cast<uint32_t>(rng());
    // Random bit patterns centred on the half range (exponents 100..150), and any pattern at all.
    values.push_back(i % 4 == 0 ? float_of(r) : float_of((r & 0x807fffffu) | ((100u + r % 51u) << 23)));
  }
  std::vector<uint16_t> want(values.size());
  for (size_t i = 0; i < values.size(); ++i) want[i] = f32_to_f16(values[i]);
  for (IsaLevel level : levels_here()) {
    const std::string name = isa_level_name(level);
    // Every offset and length up to 40 (tails of every vector width), then the whole set.
    for (size_t off = 0; off < 9; ++off)
      for (size_t n = 0; n <= 40; ++n) {
        std::vector<uint16_t> got(n + 1, 0xbeef);
        kernels::f32_to_f16_row(level, values.data() + off, got.data(), static_cast<int64_t>(n));
        CHECK_MESSAGE(std::memcmp(got.data(), want.data() + off, n * 2) == 0, name << " off " << off << " n " << n);
        CHECK_MESSAGE(got[n] == 0xbeef, name << ": wrote past n = " << n);
      }
    std::vector<uint16_t> got(values.size());
    kernels::f32_to_f16_row(level, values.data(), got.data(), static_cast<int64_t>(values.size()));
    int differ = 0;
    for (size_t i = 0; i < values.size(); ++i)
      if (got[i] != want[i] && differ++ < 3)
        MESSAGE(name << ": " << values[i] << " (0x" << std::hex << bits_of(values[i]) << ") -> 0x" << got[i]
                     << ", want 0x" << want[i] << std::dec);
    CHECK_MESSAGE(differ == 0, name << ": " << differ << " conversions differ");
  }
}
