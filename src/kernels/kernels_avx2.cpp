// Kernels compiled with -mavx2 -mfma -mf16c (see CMakeLists.txt); reached only through the
// table built in cpu.cpp after the CPU was checked. Row kernels only: for several tokens each
// weight row is reread from L1/L2 per token.
#include "kernels/x86_simd.hpp"

namespace slm::kernels::detail {

void add_avx2_kernels(KernelTable& table) {
  add_x86_row_kernels(table, "vec_dot_q8_0_q8_0_avx2", "vec_dot_q4_0_q8_0_avx2",
                      "vec_dot_q4_k_q8_k_avx2", "vec_dot_q5_k_q8_k_avx2",
                      "vec_dot_q6_k_q8_k_avx2", "vec_dot_f32_f32_avx2",
                      "vec_dot_f16_f32_avx2", "vec_dot_bf16_f32_avx2");
}

}  // namespace slm::kernels::detail
