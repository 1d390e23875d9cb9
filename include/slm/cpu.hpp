// CPU feature detection and the instruction-set level the matmul kernels run at.
//
// The only process-wide state is a table filled once (std::call_once) on first use: the CPU's
// features, the SLM_ISA environment variable as read at that moment, and one const table of
// kernel function pointers per level. Nothing changes afterwards; a caller that wants another
// level (tests, benchmarks, a --isa flag) passes it per call (kernels::matmul's IsaLevel overload).
#pragma once

#include <string_view>

#include "slm/status.hpp"

namespace slm {

// Kernel levels. Each level's kernels extend those of the level it builds on:
//   scalar < avx2 (+FMA, F16C) < avx512 (F, BW, VL) < avx512vnni < amx (AMX-INT8/BF16 tiles)
//   scalar < avx2 < avxvnni (256-bit VEX VNNI: Alder Lake and later cores without AVX-512)
//   scalar < neon < neon_dotprod
// A level runs only where the CPU has all of its own features (AVX-512 does not imply AVX-VNNI).
// The values are this build's table indices, not an ABI: the C API names levels by string.
enum class IsaLevel : int { scalar = 0, avx2, avxvnni, avx512, avx512vnni, amx, neon, neon_dotprod };
constexpr int kIsaLevelCount = 8;

// "scalar", "avx2", "avxvnni", "avx512", "avx512vnni", "amx", "neon", "neon-dotprod".
const char* isa_level_name(IsaLevel level);
// Parses a name as printed by isa_level_name (case-insensitive; "neon_dotprod" also accepted).
Expected<IsaLevel> parse_isa_level(std::string_view name);

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;        // usable: CPUID and OS (XCR0) agree
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false;
  bool avx_vnni = false;                               // VEX-encoded VNNI (Alder Lake, SPR)
  bool amx_int8 = false, amx_bf16 = false;             // tiles present AND Linux granted them
  bool neon = false, dotprod = false;                  // arm64 (getauxval HWCAP_ASIMD/ASIMDDP)
};

// What this CPU and OS support (detected once).
const CpuFeatures& cpu_features();

// The best level this CPU supports among the levels this build compiled kernels for.
IsaLevel cpu_max_isa_level();

// True when kernels for `level` were compiled and this CPU can run them.
bool isa_level_supported(IsaLevel level);

// The level matmul uses when the caller does not name one: cpu_max_isa_level(), lowered by the
// environment variable SLM_ISA=<name> when it names a supported level. An SLM_ISA that is unknown
// or above what the CPU has is ignored; isa_env_note() then says why (for --verbose).
IsaLevel default_isa_level();
// Empty when SLM_ISA was unset or honoured; otherwise one line explaining why it was ignored.
const char* isa_env_note();

}  // namespace slm
