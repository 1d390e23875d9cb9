// Kernels for arm64 NEON (baseline ARMv8-A, no extra flags); reached only through the table.
#include "kernels/arm_neon.hpp"

namespace slm::kernels::detail {

void add_neon_kernels(KernelTable& table) {
  add_neon_row_kernels(table, "vec_dot_q8_0_q8_0_neon", "vec_dot_q4_0_q8_0_neon");
}

}  // namespace slm::kernels::detail
