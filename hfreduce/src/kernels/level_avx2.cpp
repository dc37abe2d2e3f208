// AVX2 + F16C + FMA level (Zen 2/3, Haswell and later): 32-byte vectors, f16 through F16C.
// Compiled with -mavx2 -mf16c -mfma -ffp-contract=off; only called after a CPU check.
#define HFREDUCE_VECTOR_BYTES 32
#include "kernel_body.inc"

namespace hfreduce::kernels::detail {

LevelKernels avx2_level_kernels() { return this_level_kernels(); }

}  // namespace hfreduce::kernels::detail
