// Kernels compiled with -march=armv8.2-a+dotprod (SDOT); reached only after cpu.cpp found
// HWCAP_ASIMDDP.
#include "kernels/arm_neon.hpp"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "kernels_neon_dotprod.cpp needs -march=armv8.2-a+dotprod"
#endif

namespace slm::kernels::detail {

void add_neon_dotprod_kernels(KernelTable& table) {
  add_neon_row_kernels(table, "vec_dot_q8_0_q8_0_neon_dotprod", "vec_dot_q4_0_q8_0_neon_dotprod");
  add_neon_q4_1_q5_kernels(table, "vec_dot_q4_1_q8_1_neon_dotprod", "vec_dot_q5_0_q8_0_neon_dotprod", "vec_dot_q5_1_q8_1_neon_dotprod");
  add_neon_kquant_float_kernels(table, "vec_dot_q4_k_q8_k_neon_dotprod", "vec_dot_q5_k_q8_k_neon_dotprod", "vec_dot_q6_k_q8_k_neon_dotprod",
                                "vec_dot_f32_f32_neon_dotprod", "vec_dot_f16_f32_neon_dotprod", "vec_dot_bf16_f32_neon_dotprod");
}

}  // namespace slm::kernels::detail
