// The quantized block layouts of GGUF (ggml), byte for byte: one struct per format, with its
// bits per weight, dequantization formula and a picture of the bit packing.
//
// Internal header: the reference routines (quant.hpp) and the SIMD kernels include it.
//
// Conventions used in the pictures below:
//   - "f16" is an IEEE half stored as uint16_t (convert with f16_to_f32 / f32_to_f16);
//   - multi-byte fields are little-endian, as GGUF files are;
//   - q[i] is the integer code of element i of the block, x[i] the float it stands for;
//   - "lo(b)" is b & 0x0F, "hi(b)" is b >> 4.
// Every block is a plain array of bytes (alignment 2, or 4 for Q8_K), so a tensor of n blocks
// is exactly n * sizeof(block) bytes and blocks can be read in place from a mapped file.
#pragma once

#include <cstdint>

namespace slm::quant {

// Elements per block of the "legacy" formats and per super-block of the K-quants.
inline constexpr int kQK = 32;
inline constexpr int kQK_K = 256;

// ============================================================================================
// Legacy 32-element formats
// ============================================================================================

// Q4_0: 4.5 bits per weight (18 bytes / 32 weights). Symmetric, one scale.
//   x[i] = d * (q[i] - 8),  q in 0..15
//
//   byte  0   1   2   3  ...  17
//        [  d  ][qs0][qs1] ... [qs15]
//   qs[j] = q[j] | q[j+16] << 4      (element j in the low nibble, element j+16 in the high one)
//
//        bit 7      4 3      0
//   qs[j]  | q[j+16] | q[j]  |
struct block_q4_0 {
  uint16_t d;       // f16 scale
  uint8_t qs[16];   // 32 nibbles
};
static_assert(sizeof(block_q4_0) == 18, "Q4_0 block is 18 bytes");

// Q4_1: 5.0 bits per weight (20 bytes / 32 weights). Asymmetric: scale and offset.
//   x[i] = d * q[i] + m,  q in 0..15
//   qs packs the nibbles exactly as Q4_0 does.
struct block_q4_1 {
  uint16_t d;       // f16 scale
  uint16_t m;       // f16 offset (the block minimum)
  uint8_t qs[16];   // 32 nibbles: qs[j] = q[j] | q[j+16] << 4
};
static_assert(sizeof(block_q4_1) == 20, "Q4_1 block is 20 bytes");

// Q5_0: 5.5 bits per weight (22 bytes / 32 weights). Symmetric, 5-bit codes.
//   x[i] = d * (q[i] - 16),  q in 0..31
//   q[i] = (low nibble as in Q4_0) | (bit i of qh) << 4
//
//   qh, read as a little-endian uint32:  bit i = bit 4 of q[i], for i = 0..31
//        bit 31 ........ 16 15 ......... 0
//            q[31]..q[16] top | q[15]..q[0] top
//   qs[j] = lo4(q[j]) | lo4(q[j+16]) << 4
struct block_q5_0 {
  uint16_t d;       // f16 scale
  uint8_t qh[4];    // 32 fifth bits (little-endian uint32; a byte array so the block stays 22 bytes)
  uint8_t qs[16];   // 32 low nibbles
};
static_assert(sizeof(block_q5_0) == 22, "Q5_0 block is 22 bytes");

// Q5_1: 6.0 bits per weight (24 bytes / 32 weights). Asymmetric, 5-bit codes.
//   x[i] = d * q[i] + m,  q in 0..31;  qh and qs as in Q5_0.
struct block_q5_1 {
  uint16_t d;       // f16 scale
  uint16_t m;       // f16 offset
  uint8_t qh[4];    // 32 fifth bits, bit i = bit 4 of q[i]
  uint8_t qs[16];   // 32 low nibbles
};
static_assert(sizeof(block_q5_1) == 24, "Q5_1 block is 24 bytes");

// Q8_0: 8.5 bits per weight (34 bytes / 32 weights). Symmetric bytes. Also the activation type
// the matmul kernels pair with Q4_0, Q5_0 and Q8_0 weights.
//   x[i] = d * q[i],  q in -127..127 (the quantizer never emits -128)
struct block_q8_0 {
  uint16_t d;       // f16 scale
  int8_t qs[32];
};
static_assert(sizeof(block_q8_0) == 34, "Q8_0 block is 34 bytes");

// Q8_1: 9.0 bits per weight (36 bytes / 32 weights). Q8_0 plus s = d * sum(q), the activation
// type for Q4_1 / Q5_1 weights: the offset term m * sum(a) of their dot product is then m * s.
//   x[i] = d * q[i]
struct block_q8_1 {
  uint16_t d;       // f16 scale
  uint16_t s;       // f16: d * (q[0] + ... + q[31])
  int8_t qs[32];
};
static_assert(sizeof(block_q8_1) == 36, "Q8_1 block is 36 bytes");

// ============================================================================================
// K-quants: 256-element super-blocks made of sub-blocks
// ============================================================================================
//
// Q4_K and Q5_K share the 12-byte "scales" field: 8 sub-blocks of 32 elements, each with a
// 6-bit scale sc[j] and a 6-bit min m[j] (0..63), which are multiplied by the super-block's
// f16 d and dmin. The 16 six-bit numbers (96 bits) are packed into 12 bytes like this:
//
//                bit:  7   6 | 5   4   3   2   1   0
//   scales[0..3]     : sc[4..7] bits 5:4 | sc[0..3] (bits 5:0)
//   scales[4..7]     : m[4..7]  bits 5:4 | m[0..3]  (bits 5:0)
//
//                bit:  7   6   5   4 | 3   2   1   0
//   scales[8..11]    : m[4..7] bits 3:0 | sc[4..7] bits 3:0
//
// So for sub-block j < 4:   sc[j] = scales[j] & 63,          m[j] = scales[j+4] & 63
// and for j = 4..7:         sc[j] = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4
//                           m[j]  = (scales[j+4] >> 4) | (scales[j]   >> 6) << 4
// (get_scale_min_k4() below decodes it; pack_scale_min_k4() encodes it.)

// Q4_K: 4.5 bits per weight (144 bytes / 256 weights).
//   element e of sub-block j (e = 32*j + l):  x[e] = d * sc[j] * q[e] - dmin * m[j],  q in 0..15
//
//   byte  0..1  2..3   4 ........ 15   16 ............................ 143
//        [ d  ][dmin][ scales (12) ][ qs (128) ]
//   qs is four 32-byte chunks, one per pair of sub-blocks:
//     chunk c = qs[32c .. 32c+31]:  qs[32c + l] = q[64c + l] | q[64c + 32 + l] << 4
//     i.e. sub-block 2c lives in the low nibbles, sub-block 2c+1 in the high nibbles.
struct block_q4_k {
  uint16_t d;          // f16 super-block scale for the 6-bit scales
  uint16_t dmin;       // f16 super-block scale for the 6-bit mins
  uint8_t scales[12];  // 8 scales + 8 mins, 6 bits each (packing above)
  uint8_t qs[128];     // 256 nibbles
};
static_assert(sizeof(block_q4_k) == 144, "Q4_K block is 144 bytes");

// Q5_K: 5.5 bits per weight (176 bytes / 256 weights).
//   x[e] = d * sc[j] * q[e] - dmin * m[j],  q in 0..31,  e = 32*j + l
//   low 4 bits of q: the nibbles of qs, laid out exactly as in Q4_K;
//   bit 4 of q[32*j + l] is bit j of qh[l]:
//
//          bit:   7    6    5    4    3    2    1    0
//   qh[l]      : q[224+l] q[192+l] ...          q[32+l] q[l]     (bit 4 of each)
struct block_q5_k {
  uint16_t d;          // f16 super-block scale for the 6-bit scales
  uint16_t dmin;       // f16 super-block scale for the 6-bit mins
  uint8_t scales[12];  // as in Q4_K
  uint8_t qh[32];      // fifth bits
  uint8_t qs[128];     // low nibbles
};
static_assert(sizeof(block_q5_k) == 176, "Q5_K block is 176 bytes");

// Q6_K: 6.5625 bits per weight (210 bytes / 256 weights). 16 sub-blocks of 16 elements, each
// with a signed 8-bit scale; no mins.
//   x[e] = d * scales[e / 16] * (q[e] - 32),  q in 0..63
//
//   byte  0 ..... 127   128 ..... 191   192 ...... 207   208..209
//        [ ql (128)   ][ qh (64)      ][ scales (16)  ][   d    ]
//   The block is two halves of 128 elements; half h uses ql[64h .. 64h+63] and
//   qh[32h .. 32h+31]. For l = 0..31, the four elements e = 128h + 32k + l (k = 0..3) are:
//
//     k   low 4 bits of q            high 2 bits of q
//     0   lo(ql[64h + l])            qh[32h + l] bits 1:0
//     1   lo(ql[64h + 32 + l])       qh[32h + l] bits 3:2
//     2   hi(ql[64h + l])            qh[32h + l] bits 5:4
//     3   hi(ql[64h + 32 + l])       qh[32h + l] bits 7:6
//
//          bit:  7 6 | 5 4 | 3 2 | 1 0
//   qh[32h+l]  :  k=3 | k=2 | k=1 | k=0
struct block_q6_k {
  uint8_t ql[128];     // low 4 bits
  uint8_t qh[64];      // high 2 bits
  int8_t scales[16];   // signed sub-block scales
  uint16_t d;          // f16 super-block scale
};
static_assert(sizeof(block_q6_k) == 210, "Q6_K block is 210 bytes");

// Q8_K: 9.125 bits per value (292 bytes / 256). The activation type of the K-quant dot products;
// never stored in model files. The scale is a full float, and bsums caches the sums of 16
// consecutive codes so the min term of Q4_K/Q5_K costs 16 multiplies instead of 256.
//   x[i] = d * q[i],  q in -127..127;  bsums[k] = q[16k] + ... + q[16k+15]
struct block_q8_k {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};
static_assert(sizeof(block_q8_k) == 292, "Q8_K block is 292 bytes");

// ============================================================================================
// Helpers shared by the reference code and the kernels
// ============================================================================================

// Decodes the 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
inline void get_scale_min_k4(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Encodes eight 6-bit scales and mins (each 0..63) into the 12-byte Q4_K / Q5_K field.
inline void pack_scale_min_k4(const uint8_t sc[8], const uint8_t m[8], uint8_t scales[12]) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
  }
}

}  // namespace slm::quant
