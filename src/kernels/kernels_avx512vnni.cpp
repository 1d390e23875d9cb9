// Kernels compiled with the avx512vnni flags (see CMakeLists.txt); reached only through the table.
#include "kernels/kernel_table.hpp"

namespace slm::kernels::detail {

void add_avx512vnni_kernels(KernelTable& table) { (void)table; }

}  // namespace slm::kernels::detail
