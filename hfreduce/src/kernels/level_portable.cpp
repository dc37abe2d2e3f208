// Portable level: baseline ISA of the target (SSE2 on x86-64), 16-byte GCC vectors, f16 by bit
// manipulation. Always compiled; the fallback on CPUs without AVX2 + F16C.
#define HFREDUCE_VECTOR_BYTES 16
#include "kernel_body.inc"

namespace hfreduce::kernels::detail {

LevelKernels portable_level_kernels() { return this_level_kernels(); }

}  // namespace hfreduce::kernels::detail
