#include <stdexcept>
#include <string>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gpu_kernels.h"

namespace ffb::gpu {

namespace {

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(err) + ": " +
                             cudaGetErrorString(err));
}

unsigned blocks_for(std::size_t n, unsigned threads) {
  const std::size_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535ull * 16 ? (b == 0 ? 1 : b) : 65535ull * 16);
}

__device__ __forceinline__ std::uint64_t mix(std::uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <class T>
__global__ void fill_kernel(T* dst, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t r = mix(seed * 0x100000001b3ull + i);
    const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
    if constexpr (sizeof(T) == 4)
      dst[i] = u;
    else
      dst[i] = T(u);
  }
}

}  // namespace

void fill_uniform(void* dst, DataType t, std::size_t n, std::uint64_t seed, cudaStream_t stream) {
  const unsigned blocks = blocks_for(n, 256);
  switch (t) {
    case DataType::f32:
      fill_kernel<<<blocks, 256, 0, stream>>>(static_cast<float*>(dst), n, seed);
      break;
    case DataType::f16:
      fill_kernel<<<blocks, 256, 0, stream>>>(static_cast<__half*>(dst), n, seed);
      break;
    case DataType::bf16:
      fill_kernel<<<blocks, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(dst), n, seed);
      break;
    default:
      throw std::invalid_argument("fill_uniform: f32, f16 or bf16 only");
  }
  check_launch("fill_uniform");
}

}  // namespace ffb::gpu
