#include "ffb/cpu.h"

#include <fstream>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace ffb {

SimdLevel detect_simd_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // F16C through CPUID (clang rejects __builtin_cpu_supports("f16c")).
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && f16c)
    return SimdLevel::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
    return SimdLevel::avx2_f16c;
#endif
  return SimdLevel::portable;
}

const char* name_of(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512:
      return "avx512";
    case SimdLevel::avx2_f16c:
      return "avx2+f16c";
    case SimdLevel::portable:
      return "portable";
  }
  return "?";
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

}  // namespace ffb
