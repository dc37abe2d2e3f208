// The few GPU kernels the GPU programs need, behind plain C++ functions (gpu_kernels.cu): random
// matrix data for GEMM, and the elementwise steps of HFReduce's NVLink-pair variant. HFReduce's
// own data path runs no kernel: its reduce is on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "ffb/numeric.h"

namespace ffb::gpu {

// Uniform values in [-1, 1) from a counter-based hash of (seed, index): f32, f16 or bf16.
// Never zeros-only data (tensor cores are faster on zeros: R7 must be measured on random data).
void fill_uniform(void* dst, DataType t, std::size_t n, std::uint64_t seed, cudaStream_t stream);

// out[i] = op(a[i], b[i]) with HFReduce's arithmetic: f32 accumulation for the narrow floating
// types rounded once to nearest even, integers wrap around, NaN propagates as the canonical quiet
// NaN. avg combines like sum (divide once at the end with divide_by). out may alias a or b.
void pair_combine(DataType t, ReduceOp op, const void* a, const void* b, void* out, std::size_t n,
                  cudaStream_t stream);

// buf[i] = buf[i] / divisor: f32 (f64 for double) division rounded once; integers truncate.
void divide_by(DataType t, void* buf, std::size_t n, int divisor, cudaStream_t stream);

}  // namespace ffb::gpu
