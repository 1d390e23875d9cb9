// Tensor element types as numbered by GGUF (ggml_type ids), and the one traits table that the
// reader, the tools, the model and the tests use for sizes and reference conversions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "slm/status.hpp"

namespace slm {

// GGUF type ids. Gaps are ids that GGUF retired; they are rejected as unknown.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,  // listed only (sizes known, no conversion)
  Q1_0 = 41,   // listed only
  Q2_0 = 42,   // listed only
};

// Reference (scalar, portable) conversions of a row of `n` elements; n is a multiple of
// block_elems (the caller checks with row_bytes()).
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);

struct TypeTraits {
  DType type;
  const char* name;      // as GGUF tools print it: "Q4_K", "F16", ...
  int64_t block_elems;   // elements per block (1 for plain types)
  size_t block_bytes;    // bytes per block
  ToFloatFn to_float;    // nullptr: the engine cannot compute with this type (only list it)
  FromFloatFn from_float;  // nullptr: no quantizer
  DType dot_type;        // activation type the matmul kernels pair with this weight type
};

// The traits of a GGUF type id; nullptr when the id is unknown or retired.
const TypeTraits* type_traits(uint32_t id);
inline const TypeTraits& traits(DType t) { return *type_traits(static_cast<uint32_t>(t)); }
inline const char* dtype_name(DType t) { return traits(t).name; }
// Looks a type up by name (case-insensitive: "q4_k", "F16"); nullptr when unknown.
const TypeTraits* type_traits_by_name(std::string_view name);

// Bytes of a row of `n` elements; an error when n <= 0, when n is not a multiple of the block
// size, when the type id is unknown, or when the size does not fit in size_t.
Expected<size_t> row_bytes(DType t, int64_t n);

// Scalar float <-> half / bfloat16 conversions (IEEE round-to-nearest-even), used by the
// reference routines and by kernels for single values.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace slm
