// Helpers shared by the kernel tests (test_kernels*.cpp): the ISA levels this CPU runs, and one
// kernels::matmul call with its outputs pre-filled with NaN (an element the kernel fails to
// write shows up) and exactly the scratch matmul_scratch_bytes asks for.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernels.hpp"
#include "slm/cpu.hpp"
#include "slm/thread_pool.hpp"

namespace slm_test {

inline std::vector<slm::IsaLevel> levels_here() {
  std::vector<slm::IsaLevel> out;
  for (int i = 0; i < slm::kIsaLevelCount; ++i)
    if (slm::isa_level_supported(static_cast<slm::IsaLevel>(i))) out.push_back(static_cast<slm::IsaLevel>(i));
  return out;
}

// y (tokens rows, ldy apart, NaN where the kernel writes nothing) = W x.
inline std::vector<float> run_matmul(slm::IsaLevel level, const slm::kernels::Matrix& w, const float* x, int64_t ldx,
                                     int64_t tokens, int64_t ldy, slm::ThreadPool* pool) {
  std::vector<float> y(static_cast<size_t>(tokens * ldy), NAN);
  std::vector<uint8_t> scratch(slm::kernels::matmul_scratch_bytes(w.type, w.n_cols, tokens));
  const slm::Status st = slm::kernels::matmul(level, w, x, ldx, tokens, y.data(), ldy, scratch.data(), scratch.size(), pool);
  REQUIRE_MESSAGE(st.ok(), st.message());
  return y;
}

}  // namespace slm_test
