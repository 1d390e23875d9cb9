// Kernels compiled with -mavx2 -mfma -mf16c (see CMakeLists.txt); reached only through the
// table built in cpu.cpp after the CPU was checked: the shared x86 row kernels, and the
// register-blocked Q8_0 / Q4_0 GEMM for prefill (gemm_q8_avx2.hpp) built on vpmaddubsw.
#include "kernels/gemm_q8_avx2.hpp"
#include "kernels/x86_simd.hpp"

namespace slm::kernels::detail {

void add_avx2_kernels(KernelTable& table) {
  add_x86_row_kernels(table, "vec_dot_q8_0_q8_0_avx2", "vec_dot_q4_0_q8_0_avx2",
                      "vec_dot_q4_k_q8_k_avx2", "vec_dot_q5_k_q8_k_avx2",
                      "vec_dot_q6_k_q8_k_avx2", "vec_dot_f32_f32_avx2",
                      "vec_dot_f16_f32_avx2", "vec_dot_bf16_f32_avx2");
  table.by_type[static_cast<int>(DType::Q8_0)].name = "gemm_q8_0_q8_0_avx2";
  table.by_type[static_cast<int>(DType::Q8_0)].rows = gemm_avx2<quant::block_q8_0, rows_q8_0_q8x>;
  table.by_type[static_cast<int>(DType::Q4_0)].name = "gemm_q4_0_q8_0_avx2";
  table.by_type[static_cast<int>(DType::Q4_0)].rows = gemm_avx2<quant::block_q4_0, rows_q4_0_q8x>;
  add_x86_q4_1_q5_kernels(table, "vec_dot_q4_1_q8_1_avx2", "vec_dot_q5_0_q8_0_avx2", "vec_dot_q5_1_q8_1_avx2");
}

}  // namespace slm::kernels::detail
