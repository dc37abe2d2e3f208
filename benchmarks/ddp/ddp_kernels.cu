// CUDA kernels of ddp_bench's GPU engine (compute_cublas.cpp): scratch fill and the optimizer
// updates. Plain C++ interface so the engine compiles with the host compiler (nvcc and fmt's
// headers do not mix).
#include <cstddef>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ddp_kernels.h"

namespace ffb::ddp::kernels {

namespace {

__device__ float hash_value(std::size_t i) {
  auto x = static_cast<unsigned>(i * 2654435761u) ^ static_cast<unsigned>(i >> 32);
  x ^= x >> 13;
  x *= 0x5bd1e995u;
  x ^= x >> 15;
  return (static_cast<float>(x & 0xffffu) / 65535.0f - 0.5f) * 0.25f;
}

__global__ void fill_f32(float* p, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = hash_value(i);
}

__global__ void fill_bf16(__nv_bfloat16* p, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16(hash_value(i));
}

template <typename G>
__device__ float grad_at(const G* g, std::size_t i);
template <>
__device__ float grad_at<float>(const float* g, std::size_t i) {
  return g[i];
}
template <>
__device__ float grad_at<__nv_bfloat16>(const __nv_bfloat16* g, std::size_t i) {
  return __bfloat162float(g[i]);
}
template <>
__device__ float grad_at<__half>(const __half* g, std::size_t i) {
  return __half2float(g[i]);
}

// Updates of fp32 master weights from the allreduced gradients (the values are not meaningful;
// the memory traffic is: sgd 12 B, adam 28 B per parameter).
template <typename G>
__global__ void sgd_step(float* w, const G* g, std::size_t n, float lr) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    w[i] -= lr * grad_at(g, i);
}

template <typename G>
__global__ void adam_step(float* w, float* m, float* v, const G* g, std::size_t n, float lr) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const float gi = grad_at(g, i);
    const float mi = 0.9f * m[i] + 0.1f * gi;
    const float vi = 0.999f * v[i] + 0.001f * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= lr * mi / (sqrtf(vi) + 1e-8f);
  }
}

}  // namespace

void fill(void* p, std::size_t n, bool bf16, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16)
    fill_bf16<<<1024, 256, 0, s>>>(static_cast<__nv_bfloat16*>(p), n);
  else
    fill_f32<<<1024, 256, 0, s>>>(static_cast<float*>(p), n);
}

void optimizer_step(int kind, int grad_type, float* w, float* m, float* v, const void* g,
                    std::size_t n, float lr, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  auto launch = [&](auto* gp) {
    if (kind == 1)
      sgd_step<<<2048, 256, 0, s>>>(w, gp, n, lr);
    else
      adam_step<<<2048, 256, 0, s>>>(w, m, v, gp, n, lr);
  };
  if (grad_type == 1)
    launch(static_cast<const __nv_bfloat16*>(g));
  else if (grad_type == 2)
    launch(static_cast<const __half*>(g));
  else
    launch(static_cast<const float*>(g));
}

}  // namespace ffb::ddp::kernels
