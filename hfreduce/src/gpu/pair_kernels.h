// The NVLink-pair stage's elementwise kernels (pair_kernels.cu), with HFReduce's arithmetic so the
// pair's step is the host kernels' step (hfreduce/src/kernels/reduce_kernels.h): f32 accumulation
// for the narrow floating types rounded once to nearest even, integers wrap around, NaN
// propagates as the canonical quiet NaN, max/min keep the first of two equal values. Internal;
// built only with the CUDA toolkit. Launch failures throw hfreduce::Error naming the GPU.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "ffb/numeric.h"

namespace hfreduce::gpu {

// out[i] = op(a[i], b[i]); avg combines like sum (divide once at the end with divide_by). out may
// alias a or b.
void pair_combine(ffb::DataType t, ffb::ReduceOp op, const void* a, const void* b, void* out,
                  std::size_t n, cudaStream_t stream, int device);

// buf[i] = buf[i] / divisor: f32 (f64 for double) division rounded once; integers truncate. The
// host kernels' reduce(avg) of a single input.
void divide_by(ffb::DataType t, void* buf, std::size_t n, int divisor, cudaStream_t stream,
               int device);

}  // namespace hfreduce::gpu
