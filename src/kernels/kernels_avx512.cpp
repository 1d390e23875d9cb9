// Kernels compiled with AVX2 + AVX-512 F/BW/VL flags (see CMakeLists.txt). Without VNNI the
// 8-bit dot products gain little over AVX2's maddubs on 256-bit vectors, so this level reuses
// the x86 row kernels rebuilt with these flags (the compiler may use the 32 vector registers)
// and keeps the AVX2 level's Q8_0 / Q4_0 GEMM entries.
#include "kernels/x86_simd.hpp"

namespace slm::kernels::detail {

void add_avx512_kernels(KernelTable& table) {
  const TypeKernels q8_0 = table.by_type[static_cast<int>(DType::Q8_0)];
  const TypeKernels q4_0 = table.by_type[static_cast<int>(DType::Q4_0)];
  add_x86_row_kernels(table, "vec_dot_q8_0_q8_0_avx512", "vec_dot_q4_0_q8_0_avx512",
                      "vec_dot_q4_k_q8_k_avx512", "vec_dot_q5_k_q8_k_avx512",
                      "vec_dot_q6_k_q8_k_avx512", "vec_dot_f32_f32_avx512",
                      "vec_dot_f16_f32_avx512", "vec_dot_bf16_f32_avx512");
  table.by_type[static_cast<int>(DType::Q8_0)] = q8_0;
  table.by_type[static_cast<int>(DType::Q4_0)] = q4_0;
  add_x86_q4_1_q5_kernels(table, "vec_dot_q4_1_q8_1_avx512", "vec_dot_q5_0_q8_0_avx512", "vec_dot_q5_1_q8_1_avx512");
}

}  // namespace slm::kernels::detail
