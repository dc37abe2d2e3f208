// What the CPU can do, decided at run time (no -march=native anywhere).
#pragma once

#include <string>

namespace ffb {

enum class SimdLevel { portable, avx2_f16c, avx512 };

SimdLevel detect_simd_level();
const char* name_of(SimdLevel level);  // "portable", "avx2+f16c", "avx512"
std::string cpu_model();               // /proc/cpuinfo "model name", or "unknown"

}  // namespace ffb
