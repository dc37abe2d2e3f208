// The GPU kernel the GPU programs need, behind a plain C++ function (gpu_kernels.cu): random
// matrix data for GEMM. HFReduce's own data path runs no kernel (its reduce is on the CPU); the
// NVLink-pair stage's elementwise kernels are the library's (hfreduce/src/gpu/pair_kernels.cu).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "ffb/numeric.h"

namespace ffb::gpu {

// Uniform values in [-1, 1) from a counter-based hash of (seed, index): f32, f16 or bf16.
// Never zeros-only data (tensor cores are faster on zeros: R7 must be measured on random data).
void fill_uniform(void* dst, DataType t, std::size_t n, std::uint64_t seed, cudaStream_t stream);

}  // namespace ffb::gpu
