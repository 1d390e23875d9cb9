// The GGUF type table (elements and bytes per block for every ggml type id) and the scalar
// float <-> half / bfloat16 conversions.
#include "slm/dtype.hpp"

#include <array>
#include <cstring>
#include <limits>

#include "quant/quant.hpp"

namespace slm {

// ============================================================================================
// The traits table
// ============================================================================================
//
// Sizes follow ggml's block structs (ggml/src/ggml-common.h). K-quant and IQ super-blocks hold
// QK_K = 256 weights. Sizes of the types we do not compute with are listed so the GGUF reader can
// still lay out (and skip) their tensors:
//   Q8_1    32: half d, half s, int8 qs[32]                               =  36
//   Q2_K   256: uint8 scales[16], uint8 qs[64], half d, half dmin          =  84
//   Q3_K   256: uint8 hmask[32], uint8 qs[64], uint8 scales[12], half d    = 110
//   IQ2_XXS 256: half d, uint16 qs[32]                                    =  66
//   IQ2_XS 256: half d, uint16 qs[32], uint8 scales[8]                     =  74
//   IQ3_XXS 256: half d, uint8 qs[96]                                     =  98
//   IQ1_S  256: half d, uint8 qs[32], uint16 qh[8]                         =  50
//   IQ4_NL  32: half d, uint8 qs[16]                                      =  18
//   IQ3_S  256: half d, uint8 qs[64], qh[8], signs[32], scales[4]           = 110
//   IQ2_S  256: half d, uint8 qs[64], qh[8], scales[8]                     =  82
//   IQ4_XS 256: half d, uint16 scales_h, uint8 scales_l[4], uint8 qs[128]  = 136
//   IQ1_M  256: uint8 qs[32], qh[16], scales[8] (the scale hides in scales) =  56
//   TQ1_0  256: uint8 qs[48] (5 trits a byte), uint8 qh[4], half d          =  54
//   TQ2_0  256: uint8 qs[64] (2 bits each), half d                         =  66
//   MXFP4   32: uint8 e (E8M0 shared exponent), uint8 qs[16] (E2M1 nibbles) =  17
//   NVFP4   64: uint8 d[4] (UE4M3 scale per 16), uint8 qs[32] (E2M1)        =  36
//   Q1_0   128: half d, uint8 qs[16] (1 bit each)                          =  18
//   Q2_0    64: half d, uint8 qs[16] (2 bits each)                         =  18
// The formats we compute with are defined (and size-checked) in src/quant/blocks.hpp.

namespace {

constexpr uint32_t kMaxTypeId = 42;  // Q2_0, the highest id ggml assigns (2026)

struct Entry {
  bool present = false;
  TypeTraits traits{};
};

constexpr Entry entry(DType t, const char* name, int64_t block_elems, size_t block_bytes,
                      DType dot_type, ToFloatFn to_float = nullptr,
                      FromFloatFn from_float = nullptr) {
  return Entry{true, TypeTraits{t, name, block_elems, block_bytes, to_float, from_float, dot_type}};
}

// F32 rows convert by copying.
void f32_to_float_row(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
void f32_from_float_row(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

// Typed reference routines seen through the table's untyped signatures.
template <class Block, void (*F)(const Block*, float*, int64_t)>
void to_float_as(const void* src, float* dst, int64_t n) {
  F(static_cast<const Block*>(src), dst, n);
}
template <class Block, void (*F)(const float*, Block*, int64_t)>
void from_float_as(const float* src, void* dst, int64_t n) {
  F(src, static_cast<Block*>(dst), n);
}
#define SLM_QUANT_REF(block, name) \
  to_float_as<block, quant::dequantize_row_##name##_ref>, \
      from_float_as<block, quant::quantize_row_##name##_ref>

constexpr std::array<Entry, kMaxTypeId + 1> make_table() {
  std::array<Entry, kMaxTypeId + 1> t{};
  using D = DType;
  auto put = [&t](Entry e) { t[static_cast<uint32_t>(e.traits.type)] = e; };
  put(entry(D::F32, "F32", 1, 4, D::F32, f32_to_float_row, f32_from_float_row));
  put(entry(D::F16, "F16", 1, 2, D::F32, SLM_QUANT_REF(uint16_t, f16)));
  put(entry(D::Q4_0, "Q4_0", 32, 18, D::Q8_0,
            SLM_QUANT_REF(quant::block_q4_0, q4_0)));
  put(entry(D::Q4_1, "Q4_1", 32, 20, D::Q8_1,
            SLM_QUANT_REF(quant::block_q4_1, q4_1)));
  // ids 4 and 5 (Q4_2, Q4_3) were retired.
  put(entry(D::Q5_0, "Q5_0", 32, 22, D::Q8_0,
            SLM_QUANT_REF(quant::block_q5_0, q5_0)));
  put(entry(D::Q5_1, "Q5_1", 32, 24, D::Q8_1,
            SLM_QUANT_REF(quant::block_q5_1, q5_1)));
  put(entry(D::Q8_0, "Q8_0", 32, 34, D::Q8_0,
            SLM_QUANT_REF(quant::block_q8_0, q8_0)));
  put(entry(D::Q8_1, "Q8_1", 32, 36, D::Q8_1,
            SLM_QUANT_REF(quant::block_q8_1, q8_1)));
  put(entry(D::Q2_K, "Q2_K", 256, 84, D::Q8_K));
  put(entry(D::Q3_K, "Q3_K", 256, 110, D::Q8_K));
  put(entry(D::Q4_K, "Q4_K", 256, 144, D::Q8_K,
            SLM_QUANT_REF(quant::block_q4_k, q4_k)));
  put(entry(D::Q5_K, "Q5_K", 256, 176, D::Q8_K,
            SLM_QUANT_REF(quant::block_q5_k, q5_k)));
  put(entry(D::Q6_K, "Q6_K", 256, 210, D::Q8_K,
            SLM_QUANT_REF(quant::block_q6_k, q6_k)));
  put(entry(D::Q8_K, "Q8_K", 256, 292, D::Q8_K,
            SLM_QUANT_REF(quant::block_q8_k, q8_k)));
  put(entry(D::IQ2_XXS, "IQ2_XXS", 256, 66, D::Q8_K));
  put(entry(D::IQ2_XS, "IQ2_XS", 256, 74, D::Q8_K));
  put(entry(D::IQ3_XXS, "IQ3_XXS", 256, 98, D::Q8_K));
  put(entry(D::IQ1_S, "IQ1_S", 256, 50, D::Q8_K));
  put(entry(D::IQ4_NL, "IQ4_NL", 32, 18, D::Q8_0));
  put(entry(D::IQ3_S, "IQ3_S", 256, 110, D::Q8_K));
  put(entry(D::IQ2_S, "IQ2_S", 256, 82, D::Q8_K));
  put(entry(D::IQ4_XS, "IQ4_XS", 256, 136, D::Q8_K));
  put(entry(D::I8, "I8", 1, 1, D::I8));
  put(entry(D::I16, "I16", 1, 2, D::I16));
  put(entry(D::I32, "I32", 1, 4, D::I32));
  put(entry(D::I64, "I64", 1, 8, D::I64));
  put(entry(D::F64, "F64", 1, 8, D::F64));
  put(entry(D::IQ1_M, "IQ1_M", 256, 56, D::Q8_K));
  put(entry(D::BF16, "BF16", 1, 2, D::F32, SLM_QUANT_REF(uint16_t, bf16)));
  // ids 31-33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) were retired from GGUF files.
  put(entry(D::TQ1_0, "TQ1_0", 256, 54, D::Q8_K));
  put(entry(D::TQ2_0, "TQ2_0", 256, 66, D::Q8_K));
  // ids 36-38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) were retired from GGUF files.
  put(entry(D::MXFP4, "MXFP4", 32, 17, D::Q8_0));
  put(entry(D::NVFP4, "NVFP4", 64, 36, D::Q8_0));
  put(entry(D::Q1_0, "Q1_0", 128, 18, D::Q8_0));
  put(entry(D::Q2_0, "Q2_0", 64, 18, D::Q8_0));
  return t;
}
#undef SLM_QUANT_REF

const std::array<Entry, kMaxTypeId + 1> kTable = make_table();

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool equals_ignore_case(std::string_view a, const char* b) {
  size_t i = 0;
  for (; i < a.size(); ++i) {
    if (b[i] == '\0' || ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  }
  return b[i] == '\0';
}

}  // namespace

const TypeTraits* type_traits(uint32_t id) {
  if (id > kMaxTypeId || !kTable[id].present) return nullptr;
  return &kTable[id].traits;
}

const TypeTraits* type_traits_by_name(std::string_view name) {
  for (const Entry& e : kTable) {
    if (e.present && equals_ignore_case(name, e.traits.name)) return &e.traits;
  }
  return nullptr;
}

Expected<size_t> row_bytes(DType t, int64_t n) {
  const TypeTraits* tt = type_traits(static_cast<uint32_t>(t));
  if (tt == nullptr) return errorf("row_bytes: unknown type id %u", static_cast<uint32_t>(t));
  if (n <= 0) {
    return errorf("row_bytes: %s row of %lld elements: the length must be positive", tt->name,
                  static_cast<long long>(n));
  }
  if (n % tt->block_elems != 0) {
    return errorf("row_bytes: %s row of %lld elements is not a multiple of the block size %lld",
                  tt->name, static_cast<long long>(n), static_cast<long long>(tt->block_elems));
  }
  const auto blocks = static_cast<uint64_t>(n / tt->block_elems);
  if (blocks > std::numeric_limits<size_t>::max() / tt->block_bytes) {
    return errorf("row_bytes: %s row of %lld elements overflows size_t", tt->name,
                  static_cast<long long>(n));
  }
  return static_cast<size_t>(blocks) * tt->block_bytes;
}

// ============================================================================================
// Reference dot products by weight type
// ============================================================================================

namespace quant {
namespace {
template <class W, class A, float (*F)(int64_t, const W*, const A*)>
float vec_dot_as(int64_t n, const void* w, const void* a) {
  return F(n, static_cast<const W*>(w), static_cast<const A*>(a));
}
}  // namespace

VecDotFn vec_dot_ref(DType w) {
  switch (w) {
    case DType::F32: return vec_dot_as<float, float, vec_dot_f32_f32_ref>;
    case DType::F16: return vec_dot_as<uint16_t, float, vec_dot_f16_f32_ref>;
    case DType::BF16: return vec_dot_as<uint16_t, float, vec_dot_bf16_f32_ref>;
    case DType::Q4_0: return vec_dot_as<block_q4_0, block_q8_0, vec_dot_q4_0_q8_0_ref>;
    case DType::Q4_1: return vec_dot_as<block_q4_1, block_q8_1, vec_dot_q4_1_q8_1_ref>;
    case DType::Q5_0: return vec_dot_as<block_q5_0, block_q8_0, vec_dot_q5_0_q8_0_ref>;
    case DType::Q5_1: return vec_dot_as<block_q5_1, block_q8_1, vec_dot_q5_1_q8_1_ref>;
    case DType::Q8_0: return vec_dot_as<block_q8_0, block_q8_0, vec_dot_q8_0_q8_0_ref>;
    case DType::Q4_K: return vec_dot_as<block_q4_k, block_q8_k, vec_dot_q4_k_q8_k_ref>;
    case DType::Q5_K: return vec_dot_as<block_q5_k, block_q8_k, vec_dot_q5_k_q8_k_ref>;
    case DType::Q6_K: return vec_dot_as<block_q6_k, block_q8_k, vec_dot_q6_k_q8_k_ref>;
    default: return nullptr;
  }
}
}  // namespace quant

// ============================================================================================
// Half and bfloat16 conversions
// ============================================================================================
//
// IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. bfloat16: the top 16 bits of a
// binary32 (1 sign, 8 exponent, 7 mantissa). Rounding is to nearest, ties to even, for normal
// and subnormal results alike; overflow rounds to infinity. NaNs keep their sign and top payload
// bits and become quiet, as the F16C / AVX512-BF16 / Arm conversion instructions do, so a SIMD
// conversion and this reference agree bit for bit.

namespace {
uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in binary32.
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return bits_float(float_bits(v) | sign);
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));  // Inf / NaN
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));  // rebias 15 -> 127
}

uint16_t f32_to_f16(float f) {
  const uint32_t x = float_bits(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) {  // NaN: keep the top 10 payload bits, set the quiet bit
    return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  }
  if (ax >= 0x38800000u) {  // |f| >= 2^-14: a normal half, or an overflow to Inf
    if (ax >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65536 (or Inf)
    const uint32_t r = ax - (112u << 23);  // rebias 127 -> 15; mantissa still 23 bits
    const uint32_t h = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;  // round to nearest even
    return static_cast<uint16_t>(sign | (h >= 0x7c00u ? 0x7c00u : h));
  }
  if (ax <= 0x33000000u) return sign;  // |f| <= 2^-25: rounds to zero (2^-25 is a tie -> even)
  // Subnormal half: the value is m * 2^(e-150) = q * 2^-24 with q = m >> (126 - e).
  const uint32_t e = ax >> 23;  // 102 .. 112
  const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14 .. 24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into 0x400: smallest normal
  return static_cast<uint16_t>(sign | q);
}

float bf16_to_f32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);  // nearest even
}

}  // namespace slm
