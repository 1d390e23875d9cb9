// The GGUF type table, row sizes, and the F16 / BF16 scalar conversions.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "slm/dtype.hpp"

using slm::DType;

namespace {
uint32_t fbits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float bitsf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace

TEST_CASE("type table: sizes of every GGUF type id") {
  struct Want {
    uint32_t id;
    const char* name;
    int64_t elems;
    size_t bytes;
  };
  // Independent restatement of ggml's block sizes (ggml-common.h static_asserts).
  const Want want[] = {
      {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 2 + 16},
      {3, "Q4_1", 32, 4 + 16},  {6, "Q5_0", 32, 2 + 4 + 16}, {7, "Q5_1", 32, 4 + 4 + 16},
      {8, "Q8_0", 32, 2 + 32},  {9, "Q8_1", 32, 4 + 32},
      {10, "Q2_K", 256, 4 + 16 + 64},       {11, "Q3_K", 256, 2 + 64 + 32 + 12},
      {12, "Q4_K", 256, 4 + 12 + 128},      {13, "Q5_K", 256, 4 + 12 + 32 + 128},
      {14, "Q6_K", 256, 2 + 16 + 128 + 64}, {15, "Q8_K", 256, 4 + 256 + 32},
      {16, "IQ2_XXS", 256, 2 + 64},         {17, "IQ2_XS", 256, 2 + 64 + 8},
      {18, "IQ3_XXS", 256, 2 + 96},         {19, "IQ1_S", 256, 2 + 32 + 16},
      {20, "IQ4_NL", 32, 2 + 16},           {21, "IQ3_S", 256, 2 + 64 + 8 + 32 + 4},
      {22, "IQ2_S", 256, 2 + 64 + 8 + 8},   {23, "IQ4_XS", 256, 2 + 2 + 4 + 128},
      {24, "I8", 1, 1},  {25, "I16", 1, 2}, {26, "I32", 1, 4}, {27, "I64", 1, 8},
      {28, "F64", 1, 8}, {29, "IQ1_M", 256, 32 + 16 + 8}, {30, "BF16", 1, 2},
      {34, "TQ1_0", 256, 48 + 4 + 2},       {35, "TQ2_0", 256, 64 + 2},
      {39, "MXFP4", 32, 1 + 16},            {40, "NVFP4", 64, 4 + 32},
      {41, "Q1_0", 128, 2 + 16},            {42, "Q2_0", 64, 2 + 16},
  };
  for (const Want& w : want) {
    CAPTURE(w.name);
    const slm::TypeTraits* t = slm::type_traits(w.id);
    REQUIRE(t != nullptr);
    CHECK(static_cast<uint32_t>(t->type) == w.id);
    CHECK(std::strcmp(t->name, w.name) == 0);
    CHECK(t->block_elems == w.elems);
    CHECK(t->block_bytes == w.bytes);
    CHECK(slm::type_traits_by_name(w.name) == t);
  }
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 43u, 44u, 1000u, 0xffffffffu}) {
    CAPTURE(id);
    CHECK(slm::type_traits(id) == nullptr);
  }
  CHECK(slm::type_traits_by_name("q4_k") == slm::type_traits(12));
  CHECK(slm::type_traits_by_name("bf16") == slm::type_traits(30));
  CHECK(slm::type_traits_by_name("Q4_K_M") == nullptr);
  CHECK(slm::type_traits_by_name("Q4") == nullptr);
  CHECK(slm::type_traits_by_name("") == nullptr);
}

TEST_CASE("row_bytes") {
  CHECK(*slm::row_bytes(DType::F32, 7) == 28);
  CHECK(*slm::row_bytes(DType::Q4_0, 64) == 36);
  CHECK(*slm::row_bytes(DType::Q4_K, 4096) == 16 * 144);
  CHECK_FALSE(slm::row_bytes(DType::Q4_0, 33).ok());
  CHECK_FALSE(slm::row_bytes(DType::Q4_K, 128).ok());
  CHECK_FALSE(slm::row_bytes(DType::F16, 0).ok());
  CHECK_FALSE(slm::row_bytes(DType::F16, -2).ok());
  CHECK_FALSE(slm::row_bytes(static_cast<DType>(4), 32).ok());
  // 2^62 elements of F64 need 2^65 bytes.
  CHECK_FALSE(slm::row_bytes(DType::F64, int64_t{1} << 62).ok());
  CHECK(slm::row_bytes(DType::I8, std::numeric_limits<int64_t>::max()).ok());
  auto bad = slm::row_bytes(DType::Q8_0, 40);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("Q8_0") != std::string::npos);
}

TEST_CASE("f16: every half survives half -> float -> half") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto hh = static_cast<uint16_t>(h);
    const float f = slm::f16_to_f32(hh);
    const bool is_nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
    if (is_nan) {
      REQUIRE(std::isnan(f));
      // Quiet NaNs come back unchanged; signalling ones come back quieted.
      REQUIRE(slm::f32_to_f16(f) == (hh | 0x200u));
    } else {
      REQUIRE(slm::f32_to_f16(f) == hh);
    }
  }
}

TEST_CASE("f16: values and rounding") {
  CHECK(slm::f16_to_f32(0x3c00) == 1.0f);
  CHECK(slm::f16_to_f32(0xc000) == -2.0f);
  CHECK(slm::f16_to_f32(0x7bff) == 65504.0f);
  CHECK(slm::f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(slm::f16_to_f32(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(slm::f16_to_f32(0x0400) == std::ldexp(1.0f, -14));
  CHECK(std::isinf(slm::f16_to_f32(0x7c00)));
  CHECK(std::signbit(slm::f16_to_f32(0x8000)));
  // Ties between two halves go to the even mantissa.
  CHECK(slm::f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);             // tie -> even
  CHECK(slm::f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);         // tie -> even (up)
  CHECK(slm::f32_to_f16(bitsf(fbits(1.0f + std::ldexp(1.0f, -11)) + 1)) == 0x3c01);  // above tie
  CHECK(slm::f32_to_f16(65504.0f) == 0x7bff);
  CHECK(slm::f32_to_f16(65519.996f) == 0x7bff);
  CHECK(slm::f32_to_f16(65520.0f) == 0x7c00);  // tie with the odd 0x7bff -> Inf
  CHECK(slm::f32_to_f16(1e10f) == 0x7c00);
  CHECK(slm::f32_to_f16(-std::numeric_limits<float>::infinity()) == 0xfc00);
  CHECK(slm::f32_to_f16(-0.0f) == 0x8000);
  // Subnormal results: 2^-25 is the tie between 0 and the smallest subnormal.
  CHECK(slm::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);
  CHECK(slm::f32_to_f16(bitsf(fbits(std::ldexp(1.0f, -25)) + 1)) == 0x0001);
  CHECK(slm::f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 ulp -> 2 (even)
  CHECK(slm::f32_to_f16(std::ldexp(5.0f, -25)) == 0x0002);  // 2.5 ulp -> 2 (even)
  CHECK(slm::f32_to_f16(std::ldexp(1023.5f, -24)) == 0x0400);  // carries into the normal range
  CHECK(slm::f32_to_f16(-std::ldexp(7.0f, -24)) == 0x8007);
  CHECK(slm::f32_to_f16(1e-30f) == 0x0000);
  CHECK(slm::f32_to_f16(std::numeric_limits<float>::denorm_min()) == 0x0000);
  CHECK((slm::f32_to_f16(std::nanf("")) & 0x7e00) == 0x7e00);
}

TEST_CASE("f16: float -> half rounds to the nearest half (sampled floats)") {
  // Every float whose nearest halves bracket it: compare to a rounding computed in double.
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 200000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t u = static_cast<uint32_t>(state >> 32);
    // Keep magnitudes between 2^-26 and 2^17 to exercise subnormals, normals and overflow.
    const uint32_t e = 101 + (u % 43);
    const float f = bitsf((u & 0x807fffffu) | (e << 23));
    const uint16_t h = slm::f32_to_f16(f);
    const double x = std::fabs(static_cast<double>(f));
    const double got = std::fabs(static_cast<double>(slm::f16_to_f32(h)));
    if (x >= 65520.0) {
      REQUIRE((h & 0x7fff) == 0x7c00);
      continue;
    }
    // The neighbours of the chosen half must not be closer.
    const uint16_t mag = h & 0x7fff;
    const double up = static_cast<double>(slm::f16_to_f32(static_cast<uint16_t>(mag + 1)));
    const double err = std::fabs(got - x);
    REQUIRE(err <= std::fabs(up - x));
    if (mag > 0) {
      const double down = static_cast<double>(slm::f16_to_f32(static_cast<uint16_t>(mag - 1)));
      REQUIRE(err <= std::fabs(down - x));
      if (err == std::fabs(down - x) || err == std::fabs(up - x)) REQUIRE((mag & 1) == 0);
    }
    REQUIRE(std::signbit(f) == ((h & 0x8000) != 0));
  }
}

TEST_CASE("bf16: every bfloat16 round-trips; rounding") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto hh = static_cast<uint16_t>(h);
    const float f = slm::bf16_to_f32(hh);
    const bool is_nan = (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0;
    REQUIRE(slm::f32_to_bf16(f) == (is_nan ? (hh | 0x40u) : hh));
  }
  CHECK(slm::f32_to_bf16(1.0f) == 0x3f80);
  CHECK(slm::f32_to_bf16(bitsf(0x3f808000u)) == 0x3f80);  // tie -> even
  CHECK(slm::f32_to_bf16(bitsf(0x3f818000u)) == 0x3f82);  // tie -> even (up)
  CHECK(slm::f32_to_bf16(bitsf(0x3f808001u)) == 0x3f81);
  CHECK(slm::f32_to_bf16(bitsf(0x7f7fffffu)) == 0x7f80);  // FLT_MAX rounds to Inf
  CHECK(slm::f32_to_bf16(bitsf(0x00008000u)) == 0x0000);  // subnormal tie -> even (0)
  CHECK(slm::f32_to_bf16(bitsf(0x00018000u)) == 0x0002);  // subnormal tie -> even (up)
  CHECK(slm::f32_to_bf16(bitsf(0x80010001u)) == 0x8001);
  CHECK(slm::f32_to_bf16(bitsf(0x7f800001u)) == 0x7fc0);  // signalling NaN -> quiet NaN
}
