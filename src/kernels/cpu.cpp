// CPU detection (cpuid + xgetbv on x86, getauxval on arm64) and the once-built kernel tables.
//
// Process-wide state, all of it written once under std::call_once and read-only afterwards:
// the CpuFeatures, the level SLM_ISA asked for, and one KernelTable per level. This file is
// compiled for the baseline ISA; it only calls into the per-ISA files after checking the CPU.
#include <strings.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "kernels/kernel_table.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__linux__) && defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace slm {
namespace {

constexpr const char* kLevelNames[kIsaLevelCount] = {"scalar",     "avx2", "avxvnni", "avx512",
                                                     "avx512vnni", "amx",  "neon",    "neon-dotprod"};

#if defined(__x86_64__)
// XCR0: which register states the OS saves on context switch. A CPU may report AVX-512 in
// cpuid while the OS (or a hypervisor) has not enabled the ZMM state; then it must not be used.
uint64_t read_xcr0() {
  uint32_t eax, edx;
  asm volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

// Linux (5.16+) requires each process to ask before using AMX tile data (a 8 KiB XSAVE state).
bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023;  // ARCH_REQ_XCOMP_PERM, asm/prctl.h
  constexpr long kXfeatureXtiledata = 18;     // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

void detect_x86(CpuFeatures& f) {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return;
  const bool osxsave = ecx & (1u << 27);
  const bool fma = ecx & (1u << 12), f16c = ecx & (1u << 29), avx = ecx & (1u << 28);
  if (!osxsave || !avx) return;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_ok = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool zmm_ok = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool tile_ok = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
  if (__get_cpuid_max(0, nullptr) < 7) return;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const unsigned ebx7 = ebx, ecx7 = ecx, edx7 = edx;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  const unsigned eax71 = eax;
  f.avx2 = ymm_ok && (ebx7 & (1u << 5));
  f.fma = ymm_ok && fma;
  f.f16c = ymm_ok && f16c;
  f.avx_vnni = ymm_ok && (eax71 & (1u << 4));
  f.avx512f = zmm_ok && (ebx7 & (1u << 16));
  f.avx512bw = zmm_ok && (ebx7 & (1u << 30));
  f.avx512vl = zmm_ok && (ebx7 & (1u << 31));
  f.avx512vnni = zmm_ok && (ecx7 & (1u << 11));
  const bool amx_tile = edx7 & (1u << 24);
  if (tile_ok && amx_tile && ((edx7 & (1u << 25)) || (edx7 & (1u << 22))) && request_amx_permission()) {
    f.amx_int8 = edx7 & (1u << 25);
    f.amx_bf16 = edx7 & (1u << 22);
  }
}
#endif

#if defined(__linux__) && defined(__aarch64__)
void detect_arm(CpuFeatures& f) {
  const unsigned long hw = getauxval(AT_HWCAP);
  f.neon = hw & HWCAP_ASIMD;
  f.dotprod = f.neon && (hw & HWCAP_ASIMDDP);
}
#endif

bool cpu_runs(const CpuFeatures& f, IsaLevel level) {
  switch (level) {
    case IsaLevel::scalar: return true;
    case IsaLevel::avx2: return f.avx2 && f.fma && f.f16c;
    case IsaLevel::avxvnni: return cpu_runs(f, IsaLevel::avx2) && f.avx_vnni;
    case IsaLevel::avx512: return cpu_runs(f, IsaLevel::avx2) && f.avx512f && f.avx512bw && f.avx512vl;
    case IsaLevel::avx512vnni: return cpu_runs(f, IsaLevel::avx512) && f.avx512vnni;
    case IsaLevel::amx: return cpu_runs(f, IsaLevel::avx512vnni) && f.amx_int8;
    case IsaLevel::neon: return f.neon;
    case IsaLevel::neon_dotprod: return f.neon && f.dotprod;
  }
  return false;
}

// Levels this build has kernels for and the level each one extends, in order of preference:
// the last one the CPU runs is the default (so amx beats avxvnni where both run).
using AddFn = void (*)(kernels::detail::KernelTable&);
struct LevelBuild {
  IsaLevel level;
  IsaLevel below;
  AddFn add;
};
constexpr LevelBuild kBuilds[] = {
#if defined(__x86_64__)
    {IsaLevel::avx2, IsaLevel::scalar, kernels::detail::add_avx2_kernels},
    {IsaLevel::avxvnni, IsaLevel::avx2, kernels::detail::add_avxvnni_kernels},
    {IsaLevel::avx512, IsaLevel::avx2, kernels::detail::add_avx512_kernels},
    {IsaLevel::avx512vnni, IsaLevel::avx512, kernels::detail::add_avx512vnni_kernels},
    {IsaLevel::amx, IsaLevel::avx512vnni, kernels::detail::add_amx_kernels},
#endif
#if defined(__aarch64__)
    {IsaLevel::neon, IsaLevel::scalar, kernels::detail::add_neon_kernels},
    {IsaLevel::neon_dotprod, IsaLevel::neon, kernels::detail::add_neon_dotprod_kernels},
#endif
    {IsaLevel::scalar, IsaLevel::scalar, nullptr},  // keeps the array non-empty on other CPUs
};

struct State {
  CpuFeatures features;
  bool available[kIsaLevelCount] = {};
  kernels::detail::KernelTable tables[kIsaLevelCount];
  IsaLevel max_level = IsaLevel::scalar;
  IsaLevel default_level = IsaLevel::scalar;
  char env_note[160] = {};
};

const State& state() {
  static State s;
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(__x86_64__)
    detect_x86(s.features);
#endif
#if defined(__linux__) && defined(__aarch64__)
    detect_arm(s.features);
#endif
    s.tables[0].level = IsaLevel::scalar;
    kernels::detail::add_scalar_kernels(s.tables[0]);
    kernels::detail::add_scalar_vector_ops(s.tables[0]);
    s.available[0] = true;
    for (const LevelBuild& b : kBuilds) {
      if (!b.add) continue;
      const int i = static_cast<int>(b.level), below = static_cast<int>(b.below);
      if (!s.available[below] || !cpu_runs(s.features, b.level)) continue;
      s.tables[i] = s.tables[below];
      s.tables[i].level = b.level;
      // Interleaved kernels read their level's activation layout: never inherited.
      for (kernels::detail::TypeKernels& k : s.tables[i].by_type) {
        k.rows_x16 = nullptr;
        k.name_x16 = nullptr;
      }
      b.add(s.tables[i]);
      s.available[i] = true;
      s.max_level = b.level;
    }
    s.default_level = s.max_level;
    if (const char* env = std::getenv("SLM_ISA"); env && *env) {
      Expected<IsaLevel> asked = parse_isa_level(env);
      if (!asked.ok()) {
        snprintf(s.env_note, sizeof s.env_note, "SLM_ISA=%.40s is not a known level; using %s", env,
                 kLevelNames[static_cast<int>(s.max_level)]);
      } else if (!s.available[static_cast<int>(*asked)]) {
        snprintf(s.env_note, sizeof s.env_note, "SLM_ISA=%s is not supported here; using %s",
                 kLevelNames[static_cast<int>(*asked)], kLevelNames[static_cast<int>(s.max_level)]);
      } else {
        s.default_level = *asked;
      }
    }
  });
  return s;
}

}  // namespace

const char* isa_level_name(IsaLevel level) {
  const int i = static_cast<int>(level);
  return i >= 0 && i < kIsaLevelCount ? kLevelNames[i] : "unknown";
}

Expected<IsaLevel> parse_isa_level(std::string_view name) {
  for (int i = 0; i < kIsaLevelCount; ++i) {
    std::string_view known = kLevelNames[i];
    if (name.size() != known.size()) continue;
    bool same = true;
    for (size_t k = 0; k < name.size() && same; ++k) {
      char c = name[k];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c == '_') c = '-';
      same = c == known[k];
    }
    if (same) return static_cast<IsaLevel>(i);
  }
  return errorf("unknown ISA level '%.*s' (expected scalar, avx2, avxvnni, avx512, avx512vnni, amx, "
                "neon or neon-dotprod)", static_cast<int>(name.size()), name.data());
}

const CpuFeatures& cpu_features() { return state().features; }
IsaLevel cpu_max_isa_level() { return state().max_level; }
bool isa_level_supported(IsaLevel level) {
  const int i = static_cast<int>(level);
  return i >= 0 && i < kIsaLevelCount && state().available[i];
}
IsaLevel default_isa_level() { return state().default_level; }
const char* isa_env_note() { return state().env_note; }

namespace kernels::detail {
const KernelTable* kernel_table(IsaLevel level) {
  return isa_level_supported(level) ? &state().tables[static_cast<int>(level)] : nullptr;
}
}  // namespace kernels::detail

}  // namespace slm
