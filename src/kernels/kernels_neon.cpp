// Kernels for arm64 NEON (baseline ARMv8-A, no extra flags); reached only through the table.
#include "kernels/arm_neon.hpp"

namespace slm::kernels::detail {

void add_neon_kernels(KernelTable& table) {
  add_neon_row_kernels(table, "vec_dot_q8_0_q8_0_neon", "vec_dot_q4_0_q8_0_neon");
  add_neon_q4_1_q5_kernels(table, "vec_dot_q4_1_q8_1_neon", "vec_dot_q5_0_q8_0_neon", "vec_dot_q5_1_q8_1_neon");
  add_neon_kquant_float_kernels(table, "vec_dot_q4_k_q8_k_neon", "vec_dot_q5_k_q8_k_neon", "vec_dot_q6_k_q8_k_neon",
                                "vec_dot_f32_f32_neon", "vec_dot_f16_f32_neon", "vec_dot_bf16_f32_neon");
}

}  // namespace slm::kernels::detail
