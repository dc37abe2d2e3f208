// AVX-512 (F, BW, VL) level: 64-byte vectors, f16 through the AVX-512F conversions.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mf16c -mfma -ffp-contract=off; only called after a
// CPU check.
#define HFREDUCE_VECTOR_BYTES 64
#include "kernel_body.inc"

namespace hfreduce::kernels::detail {

LevelKernels avx512_level_kernels() { return this_level_kernels(); }

}  // namespace hfreduce::kernels::detail
