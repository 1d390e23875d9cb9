// Kernels compiled with -march=armv8.2-a+dotprod (SDOT); reached only after cpu.cpp found
// HWCAP_ASIMDDP.
#include "kernels/arm_neon.hpp"

#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
#endif

#if !defined(__ARM_FEATURE_DOTPROD)
#error "kernels_neon_dotprod.cpp needs -march=armv8.2-a+dotprod"
#endif

namespace slm::kernels::detail {

void add_neon_i8mm_kernels(KernelTable& table);  // kernels_neon_i8mm.cpp: +i8mm (SMMLA) Q8_0 / Q4_0 GEMM

void add_neon_dotprod_kernels(KernelTable& table) {
  add_neon_row_kernels(table, "vec_dot_q8_0_q8_0_neon_dotprod", "vec_dot_q4_0_q8_0_neon_dotprod");
  add_neon_q4_1_q5_kernels(table, "vec_dot_q4_1_q8_1_neon_dotprod", "vec_dot_q5_0_q8_0_neon_dotprod", "vec_dot_q5_1_q8_1_neon_dotprod");
  add_neon_kquant_float_kernels(table, "vec_dot_q4_k_q8_k_neon_dotprod", "vec_dot_q5_k_q8_k_neon_dotprod", "vec_dot_q6_k_q8_k_neon_dotprod",
                                "vec_dot_f32_f32_neon_dotprod", "vec_dot_f16_f32_neon_dotprod", "vec_dot_bf16_f32_neon_dotprod");
#if defined(__linux__)
  if (getauxval(AT_HWCAP2) & HWCAP2_I8MM) add_neon_i8mm_kernels(table);  // the CPU has SMMLA
#endif
}

}  // namespace slm::kernels::detail
