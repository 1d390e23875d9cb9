// Kernels compiled with -mavx2 -mfma -mf16c -mavxvnni (see CMakeLists.txt): the avx2 level's
// kernels with their 8-bit integer dots on VEX-encoded vpdpbusd / vpdpwssd (AVX-VNNI, e.g.
// Alder Lake, which has no AVX-512). The shared code picks them under SLM_X86_VNNI256
// (x86_simd.hpp); the sums are exact on both paths, so every result equals the avx2 level's.
// Reached only through the table built in cpu.cpp after the CPU was checked.
#include "kernels/gemm_q8_avx2.hpp"
#include "kernels/x86_simd.hpp"

#if !defined(__AVXVNNI__)
#error "kernels_avxvnni.cpp needs -mavxvnni"
#endif

namespace slm::kernels::detail {

void add_avxvnni_kernels(KernelTable& table) {
  add_x86_row_kernels(table, "vec_dot_q8_0_q8_0_avxvnni", "vec_dot_q4_0_q8_0_avxvnni",
                      "vec_dot_q4_k_q8_k_avxvnni", "vec_dot_q5_k_q8_k_avxvnni",
                      "vec_dot_q6_k_q8_k_avxvnni", "vec_dot_f32_f32_avxvnni",
                      "vec_dot_f16_f32_avxvnni", "vec_dot_bf16_f32_avxvnni");
  table.by_type[static_cast<int>(DType::Q8_0)].name = "gemm_q8_0_q8_0_avxvnni";
  table.by_type[static_cast<int>(DType::Q8_0)].rows = gemm_avx2<quant::block_q8_0, rows_q8_0_q8x>;
  table.by_type[static_cast<int>(DType::Q4_0)].name = "gemm_q4_0_q8_0_avxvnni";
  table.by_type[static_cast<int>(DType::Q4_0)].rows = gemm_avx2<quant::block_q4_0, rows_q4_0_q8x>;
  add_x86_q4_1_q5_kernels(table, "vec_dot_q4_1_q8_1_avxvnni", "vec_dot_q5_0_q8_0_avxvnni",
                          "vec_dot_q5_1_q8_1_avxvnni");
}

}  // namespace slm::kernels::detail
