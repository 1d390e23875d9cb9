// Quant block formats: hand-built blocks dequantize to the values the layout defines, the
// table agrees with the structs, and the reference dot products equal a double-precision dot of
// the dequantized operands.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "quant/blocks.hpp"
#include "quant/quant.hpp"
#include "slm/dtype.hpp"

using namespace slm::quant;
using slm::DType;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Halves used as scales below, with their values (exact binary fractions).
constexpr uint16_t kHalf_0_5 = 0x3800, kHalf_0_25 = 0x3400, kHalf_2 = 0x4000,
                   kHalf_m1_5 = 0xbe00, kHalf_1 = 0x3c00, kHalf_0_125 = 0x3000;

std::vector<float> nan_filled(size_t n) { return std::vector<float>(n, kNaN); }

// Sets bits [bit, bit+width) of a byte array to v (little-endian bit order within bytes).
void put_bits(uint8_t* bytes, int bit, int width, int v) {
  for (int k = 0; k < width; ++k) {
    const int b = bit + k;
    if ((v >> k) & 1) {
      bytes[b / 8] = static_cast<uint8_t>(bytes[b / 8] | (1 << (b % 8)));
    } else {
      bytes[b / 8] = static_cast<uint8_t>(bytes[b / 8] & ~(1 << (b % 8)));
    }
  }
}

// Deterministic pseudo-random numbers (LCG), so failures reproduce.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  int below(int n) { return static_cast<int>(next() % static_cast<uint32_t>(n)); }
  float uniform() { return static_cast<float>(next() >> 7) * 0x1p-24f; }  // [0, 1)
  float normal() {  // Irwin-Hall: sum of 12 uniforms - 6, close enough to N(0, 1)
    float s12 = 0;
    for (int i = 0; i < 12; ++i) s12 += uniform();
    return s12 - 6.0f;
  }
};

}  // namespace

// ============================================================================================
// Table and structs agree
// ============================================================================================

TEST_CASE("traits: block sizes equal the structs; computed types have converters") {
  CHECK(slm::traits(DType::Q4_0).block_bytes == sizeof(block_q4_0));
  CHECK(slm::traits(DType::Q4_1).block_bytes == sizeof(block_q4_1));
  CHECK(slm::traits(DType::Q5_0).block_bytes == sizeof(block_q5_0));
  CHECK(slm::traits(DType::Q5_1).block_bytes == sizeof(block_q5_1));
  CHECK(slm::traits(DType::Q8_0).block_bytes == sizeof(block_q8_0));
  CHECK(slm::traits(DType::Q8_1).block_bytes == sizeof(block_q8_1));
  CHECK(slm::traits(DType::Q4_K).block_bytes == sizeof(block_q4_k));
  CHECK(slm::traits(DType::Q5_K).block_bytes == sizeof(block_q5_k));
  CHECK(slm::traits(DType::Q6_K).block_bytes == sizeof(block_q6_k));
  CHECK(slm::traits(DType::Q8_K).block_bytes == sizeof(block_q8_k));
  CHECK(slm::traits(DType::Q4_0).block_elems == kQK);
  CHECK(slm::traits(DType::Q6_K).block_elems == kQK_K);

  const DType computed[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                            DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4_K, DType::Q5_K,
                            DType::Q6_K};
  for (DType t : computed) {
    const std::string name = slm::dtype_name(t);
    CAPTURE(name);
    const slm::TypeTraits& tt = slm::traits(t);
    CHECK((tt.to_float != nullptr));
    CHECK((tt.from_float != nullptr));
    CHECK((vec_dot_ref(t) != nullptr));
    // The dot type is itself convertible (the activations are quantized with it).
    CHECK((slm::traits(tt.dot_type).from_float != nullptr));
  }
  CHECK(slm::traits(DType::Q4_0).dot_type == DType::Q8_0);
  CHECK(slm::traits(DType::Q5_0).dot_type == DType::Q8_0);
  CHECK(slm::traits(DType::Q8_0).dot_type == DType::Q8_0);
  CHECK(slm::traits(DType::Q4_1).dot_type == DType::Q8_1);
  CHECK(slm::traits(DType::Q5_1).dot_type == DType::Q8_1);
  CHECK(slm::traits(DType::Q4_K).dot_type == DType::Q8_K);
  CHECK(slm::traits(DType::Q5_K).dot_type == DType::Q8_K);
  CHECK(slm::traits(DType::Q6_K).dot_type == DType::Q8_K);
  CHECK(slm::traits(DType::F16).dot_type == DType::F32);
  CHECK(slm::traits(DType::BF16).dot_type == DType::F32);
  for (DType t : {DType::Q2_K, DType::Q3_K, DType::IQ4_NL, DType::IQ2_XXS, DType::TQ1_0,
                  DType::MXFP4, DType::I8, DType::F64}) {
    const std::string name = slm::dtype_name(t);
    CAPTURE(name);
    CHECK((slm::traits(t).to_float == nullptr));
    CHECK((vec_dot_ref(t) == nullptr));
  }
}

// ============================================================================================
// Hand-built blocks
// ============================================================================================

TEST_CASE("Q4_0 block: x = d * (q - 8), element j low nibble, j+16 high nibble") {
  block_q4_0 b{};
  b.d = kHalf_0_5;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | (15 - j) << 4);
  auto y = nan_filled(32);
  dequantize_row_q4_0_ref(&b, y.data(), 32);
  for (int j = 0; j < 16; ++j) {
    CHECK(y[j] == 0.5f * static_cast<float>(j - 8));
    CHECK(y[j + 16] == 0.5f * static_cast<float>(15 - j - 8));
  }
  CHECK(y[0] == -4.0f);   // code 0 -> -8 * 0.5
  CHECK(y[16] == 3.5f);   // code 15 -> 7 * 0.5
}

TEST_CASE("Q4_1 block: x = d * q + m") {
  block_q4_1 b{};
  b.d = kHalf_0_25;
  b.m = kHalf_m1_5;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>((j * 5) % 16 | ((j * 3 + 1) % 16) << 4);
  auto y = nan_filled(32);
  dequantize_row_q4_1_ref(&b, y.data(), 32);
  for (int j = 0; j < 16; ++j) {
    CHECK(y[j] == 0.25f * static_cast<float>((j * 5) % 16) - 1.5f);
    CHECK(y[j + 16] == 0.25f * static_cast<float>((j * 3 + 1) % 16) - 1.5f);
  }
}

TEST_CASE("Q5_0 / Q5_1 blocks: fifth bit i of element i in the little-endian qh word") {
  // Codes 0..31 chosen per element; the fifth bits go to bit i of the 32-bit little-endian qh.
  int q[32];
  for (int i = 0; i < 32; ++i) q[i] = (i * 13 + 7) % 32;
  uint8_t qh[4] = {0, 0, 0, 0};
  uint8_t qs[16];
  for (int i = 0; i < 32; ++i) put_bits(qh, i, 1, q[i] >> 4);
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 15) | (q[j + 16] & 15) << 4);

  block_q5_0 b0{};
  b0.d = kHalf_2;
  std::memcpy(b0.qh, qh, 4);
  std::memcpy(b0.qs, qs, 16);
  auto y = nan_filled(32);
  dequantize_row_q5_0_ref(&b0, y.data(), 32);
  for (int i = 0; i < 32; ++i) CHECK(y[i] == 2.0f * static_cast<float>(q[i] - 16));

  block_q5_1 b1{};
  b1.d = kHalf_0_125;
  b1.m = kHalf_1;
  std::memcpy(b1.qh, qh, 4);
  std::memcpy(b1.qs, qs, 16);
  y = nan_filled(32);
  dequantize_row_q5_1_ref(&b1, y.data(), 32);
  for (int i = 0; i < 32; ++i) CHECK(y[i] == 0.125f * static_cast<float>(q[i]) + 1.0f);

  // One literal byte: element 31 has code (31*13+7)%32 = 26 = 0b11010: bit 4 set -> qh[3] bit 7.
  CHECK((b0.qh[3] >> 7) == 1);
}

TEST_CASE("Q8_0 / Q8_1 / Q8_K blocks: x = d * q") {
  block_q8_0 b{};
  b.d = kHalf_0_125;
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 127);
  auto y = nan_filled(32);
  dequantize_row_q8_0_ref(&b, y.data(), 32);
  for (int j = 0; j < 32; ++j) CHECK(y[j] == 0.125f * static_cast<float>(j * 8 - 127));

  block_q8_1 b1{};
  b1.d = kHalf_2;
  for (int j = 0; j < 32; ++j) b1.qs[j] = static_cast<int8_t>(j - 16);
  y = nan_filled(32);
  dequantize_row_q8_1_ref(&b1, y.data(), 32);
  for (int j = 0; j < 32; ++j) CHECK(y[j] == 2.0f * static_cast<float>(j - 16));

  block_q8_k bk{};
  bk.d = 0.01f;
  for (int j = 0; j < 256; ++j) bk.qs[j] = static_cast<int8_t>((j * 37) % 255 - 127);
  y = nan_filled(256);
  dequantize_row_q8_k_ref(&bk, y.data(), 256);
  for (int j = 0; j < 256; ++j) CHECK(y[j] == 0.01f * static_cast<float>((j * 37) % 255 - 127));
}

namespace {
// Packs eight 6-bit scales and mins by the layout table of blocks.hpp, bit by bit: a second,
// independent statement of the packing (pack_scale_min_k4 is the library's).
void pack_k4_by_bits(const int sc[8], const int m[8], uint8_t out[12]) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 4; ++j) {
    put_bits(out, 8 * j, 6, sc[j]);                  // scales[j] bits 5:0 = sc[j]
    put_bits(out, 8 * (j + 4), 6, m[j]);             // scales[j+4] bits 5:0 = m[j]
    put_bits(out, 8 * j + 6, 2, sc[j + 4] >> 4);     // scales[j] bits 7:6 = sc[j+4] bits 5:4
    put_bits(out, 8 * (j + 4) + 6, 2, m[j + 4] >> 4);  // scales[j+4] bits 7:6 = m[j+4] bits 5:4
    put_bits(out, 8 * (j + 8), 4, sc[j + 4] & 15);   // scales[j+8] bits 3:0 = sc[j+4] bits 3:0
    put_bits(out, 8 * (j + 8) + 4, 4, m[j + 4] & 15);  // scales[j+8] bits 7:4 = m[j+4] bits 3:0
  }
}
const int kSc[8] = {1, 63, 17, 32, 5, 53, 33, 60};
const int kMin[8] = {0, 7, 63, 18, 31, 2, 47, 16};
}  // namespace

TEST_CASE("K-quant 6-bit scale/min packing") {
  uint8_t packed[12];
  pack_k4_by_bits(kSc, kMin, packed);
  // Literal bytes for two of them: sc[5] = 53 = 0b110101 -> top bits 0b11 in scales[1] bits 7:6
  // above sc[1] = 63; low nibble 0b0101 in scales[9] below m[5] & 15 = 2.
  CHECK(packed[1] == (0xC0 | 63));
  CHECK(packed[9] == (2 << 4 | 0x5));
  uint8_t sc8[8], m8[8], lib[12];
  for (int j = 0; j < 8; ++j) {
    sc8[j] = static_cast<uint8_t>(kSc[j]);
    m8[j] = static_cast<uint8_t>(kMin[j]);
  }
  pack_scale_min_k4(sc8, m8, lib);
  CHECK(std::memcmp(lib, packed, 12) == 0);
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    get_scale_min_k4(j, packed, &s, &m);
    CHECK(s == kSc[j]);
    CHECK(m == kMin[j]);
  }
}

TEST_CASE("Q4_K block: x = d * sc[j] * q - dmin * m[j]") {
  block_q4_k b{};
  b.d = kHalf_0_5;
  b.dmin = kHalf_0_25;
  pack_k4_by_bits(kSc, kMin, b.scales);
  int q[256];
  for (int e = 0; e < 256; ++e) {
    q[e] = (e * 7 + 3) % 16;
    // Element e = 32*j + l sits in qs[32*(j/2) + l]: low nibble for even j, high for odd j.
    const int j = e / 32, l = e % 32;
    put_bits(b.qs, 8 * (32 * (j / 2) + l) + 4 * (j % 2), 4, q[e]);
  }
  auto y = nan_filled(256);
  dequantize_row_q4_k_ref(&b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32;
    CAPTURE(e);
    CHECK(y[e] == 0.5f * static_cast<float>(kSc[j] * q[e]) - 0.25f * static_cast<float>(kMin[j]));
  }
}

TEST_CASE("Q5_K block: fifth bit of element 32*j + l is bit j of qh[l]") {
  block_q5_k b{};
  b.d = kHalf_0_25;
  b.dmin = kHalf_0_5;
  pack_k4_by_bits(kSc, kMin, b.scales);
  int q[256];
  for (int e = 0; e < 256; ++e) {
    q[e] = (e * 11 + 5) % 32;
    const int j = e / 32, l = e % 32;
    put_bits(b.qs, 8 * (32 * (j / 2) + l) + 4 * (j % 2), 4, q[e] & 15);
    put_bits(b.qh, 8 * l + j, 1, q[e] >> 4);
  }
  auto y = nan_filled(256);
  dequantize_row_q5_k_ref(&b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32;
    CAPTURE(e);
    CHECK(y[e] == 0.25f * static_cast<float>(kSc[j] * q[e]) - 0.5f * static_cast<float>(kMin[j]));
  }
}

TEST_CASE("Q6_K block: x = d * scales[e/16] * (q - 32)") {
  block_q6_k b{};
  b.d = kHalf_0_125;
  const int8_t sc[16] = {1, -1, 127, -128, 5, 0, 64, -33, 17, 99, -7, 2, 3, -100, 45, 8};
  std::memcpy(b.scales, sc, 16);
  int q[256];
  for (int e = 0; e < 256; ++e) {
    q[e] = (e * 29 + 11) % 64;
    // Half h = e/128; within it k = (e%128)/32 picks the ql byte (k odd: +32) and nibble (k >= 2:
    // high), and the 2-bit field 2k of qh[32h + l].
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    put_bits(b.ql, 8 * (64 * h + 32 * (k % 2) + l) + 4 * (k / 2), 4, q[e] & 15);
    put_bits(b.qh, 8 * (32 * h + l) + 2 * k, 2, q[e] >> 4);
  }
  auto y = nan_filled(256);
  dequantize_row_q6_k_ref(&b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    CAPTURE(e);
    CHECK(y[e] == 0.125f * static_cast<float>(sc[e / 16] * (q[e] - 32)));
  }
}

TEST_CASE("two-block rows: the second block is read from the right offset") {
  block_q4_0 b[2]{};
  b[0].d = kHalf_1;
  b[1].d = kHalf_2;
  for (int j = 0; j < 16; ++j) {
    b[0].qs[j] = 0x99;  // code 9 -> +1
    b[1].qs[j] = 0x77;  // code 7 -> -1
  }
  auto y = nan_filled(64);
  slm::traits(DType::Q4_0).to_float(b, y.data(), 64);
  for (int i = 0; i < 32; ++i) CHECK(y[i] == 1.0f);
  for (int i = 32; i < 64; ++i) CHECK(y[i] == -2.0f);
}

// ============================================================================================
// Reference dot products against a double-precision dot of the dequantized operands
// ============================================================================================

namespace {

template <class W, class A>
void check_dot(DType wt, DType at, int64_t n, uint64_t seed, bool offset_data) {
  const std::string name = slm::dtype_name(wt);
  CAPTURE(name);
  CAPTURE(n);
  Rng rng(seed);
  std::vector<float> wf(static_cast<size_t>(n)), af(static_cast<size_t>(n));
  for (auto& v : wf) v = rng.normal() + (offset_data ? 0.7f : 0.0f);
  for (auto& v : af) v = rng.normal() * 3.0f;
  const auto& wtr = slm::traits(wt);
  const auto& atr = slm::traits(at);
  std::vector<W> wq(static_cast<size_t>(n / wtr.block_elems));
  std::vector<A> aq(static_cast<size_t>(n / atr.block_elems));
  wtr.from_float(wf.data(), wq.data(), n);
  atr.from_float(af.data(), aq.data(), n);
  std::vector<float> wd(static_cast<size_t>(n)), ad(static_cast<size_t>(n));
  wtr.to_float(wq.data(), wd.data(), n);
  atr.to_float(aq.data(), ad.data(), n);
  double exact = 0, sum_abs_a = 0, max_abs_w = 0;
  for (int64_t i = 0; i < n; ++i) {
    exact += static_cast<double>(wd[i]) * static_cast<double>(ad[i]);
    sum_abs_a += std::fabs(static_cast<double>(ad[i]));
    max_abs_w = std::max(max_abs_w, std::fabs(static_cast<double>(wd[i])));
  }
  const float got = vec_dot_ref(wt)(n, wq.data(), aq.data());
  // Error budget: the integer sums are exact; what differs from `exact` is float rounding: each
  // dequantized weight (d*sc*q - dmin*m: terms up to ~3 max|w|) carries up to 3 roundings of
  // 2^-24, the activation's d*q one, and the per-block float accumulation adds one rounding of
  // the running sum per block. A single wrong code would be off by ~ a quantization step times
  // |a_i| (~ max|w| / 16 * 3), far above this.
  const double nblocks = static_cast<double>(n) / 32.0;
  double tol = (nblocks + 8.0) * 0x1p-24 * 3.0 * max_abs_w * sum_abs_a;
  if constexpr (std::is_same_v<A, block_q8_1>) {
    // Q8_1 stores s = d * sum(q) as a half: the offset term m * s of each block carries that
    // f16 rounding (relative 2^-11), by design of the format.
    for (size_t b = 0; b < aq.size(); ++b) {
      tol += std::fabs(static_cast<double>(slm::f16_to_f32(wq[b].m)) *
                       static_cast<double>(slm::f16_to_f32(aq[b].s))) * 0x1p-11;
    }
  }
  CHECK(std::fabs(static_cast<double>(got) - exact) <= tol);
  // And the quantized dot tracks the float dot of the unquantized inputs (sanity of both sides).
  double raw = 0;
  for (int64_t i = 0; i < n; ++i) raw += static_cast<double>(wf[i]) * static_cast<double>(af[i]);
  CHECK(std::fabs(static_cast<double>(got) - raw) <= 0.08 * sum_abs_a * max_abs_w / std::sqrt(n) + 0.15 * std::fabs(raw));
}

}  // namespace

TEST_CASE("vec_dot refs equal a double dot of the dequantized operands") {
  for (int64_t n : {256, 1024, 4096}) {
    for (bool offset : {false, true}) {
      const uint64_t seed = static_cast<uint64_t>(n) * 2 + (offset ? 1 : 0);
      check_dot<block_q4_0, block_q8_0>(DType::Q4_0, DType::Q8_0, n, seed, offset);
      check_dot<block_q4_1, block_q8_1>(DType::Q4_1, DType::Q8_1, n, seed, offset);
      check_dot<block_q5_0, block_q8_0>(DType::Q5_0, DType::Q8_0, n, seed, offset);
      check_dot<block_q5_1, block_q8_1>(DType::Q5_1, DType::Q8_1, n, seed, offset);
      check_dot<block_q8_0, block_q8_0>(DType::Q8_0, DType::Q8_0, n, seed, offset);
      check_dot<block_q4_k, block_q8_k>(DType::Q4_K, DType::Q8_K, n, seed, offset);
      check_dot<block_q5_k, block_q8_k>(DType::Q5_K, DType::Q8_K, n, seed, offset);
      check_dot<block_q6_k, block_q8_k>(DType::Q6_K, DType::Q8_K, n, seed, offset);
      check_dot<uint16_t, float>(DType::F16, DType::F32, n, seed, offset);
      check_dot<uint16_t, float>(DType::BF16, DType::F32, n, seed, offset);
      check_dot<float, float>(DType::F32, DType::F32, n, seed, offset);
    }
  }
  // The smallest legal length: one block.
  check_dot<block_q4_0, block_q8_0>(DType::Q4_0, DType::Q8_0, 32, 7, false);
  check_dot<block_q8_0, block_q8_0>(DType::Q8_0, DType::Q8_0, 32, 7, true);
  check_dot<block_q5_1, block_q8_1>(DType::Q5_1, DType::Q8_1, 32, 7, true);
}

TEST_CASE("vec_dot refs on hand-built extremes: integer sums do not overflow") {
  // Q4_K with every scale, min and code at its maximum against all -127 activations.
  block_q4_k w{};
  w.d = kHalf_1;
  w.dmin = kHalf_1;
  std::memset(w.scales, 0xff, sizeof w.scales);  // all 6-bit scales and mins = 63
  std::memset(w.qs, 0xff, sizeof w.qs);          // all codes 15
  block_q8_k a{};
  a.d = 1.0f;
  std::memset(a.qs, 0x81, sizeof a.qs);  // -127
  for (auto& s : a.bsums) s = static_cast<int16_t>(-127 * 16);
  // Each element: (63 * 15 - 63) * -127 = -112014; 256 of them.
  CHECK(vec_dot_q4_k_q8_k_ref(256, &w, &a) == static_cast<float>(-112014 * 256));

  block_q6_k w6{};
  w6.d = kHalf_1;
  std::memset(w6.scales, 0x80, sizeof w6.scales);  // -128
  // Code 0 everywhere -> q - 32 = -32: each element 1 * -128 * -32 * -127 = -520192.
  CHECK(vec_dot_q6_k_q8_k_ref(256, &w6, &a) == static_cast<float>(-520192LL * 256));
}
