// The pair stage's elementwise kernels (pair_kernels.h): HFReduce's arithmetic on the GPU.
#include <string>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "copy/cuda_util.h"
#include "gpu/pair_kernels.h"

namespace hfreduce::gpu {

namespace {

using ffb::DataType;
using ffb::ReduceOp;

void check_launch(const char* what, int device) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) cuda::fail(err, what, device);
}

unsigned blocks_for(std::size_t n, unsigned threads) {
  const std::size_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535ull * 16 ? (b == 0 ? 1 : b) : 65535ull * 16);
}

// ---- element codecs: load to the accumulation type, store with one rounding ----

template <class Storage, class Acc>
struct Codec;

template <>
struct Codec<float, float> {
  __device__ static float load(float v) { return v; }
  __device__ static float store(float v) { return isnan(v) ? __int_as_float(0x7fc00000) : v; }
};
template <>
struct Codec<double, double> {
  __device__ static double load(double v) { return v; }
  __device__ static double store(double v) {
    return isnan(v) ? __longlong_as_double(0x7ff8000000000000ll) : v;
  }
};
template <>
struct Codec<__half, float> {
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float v) {
    return isnan(v) ? __ushort_as_half(0x7e00) : __float2half_rn(v);
  }
};
template <>
struct Codec<__nv_bfloat16, float> {
  __device__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 store(float v) {
    return isnan(v) ? __ushort_as_bfloat16(0x7fc0) : __float2bfloat16_rn(v);
  }
};
template <__nv_fp8_interpretation_t Kind>
struct Fp8 {
  std::uint8_t bits;
};
template <__nv_fp8_interpretation_t Kind>
struct Codec<Fp8<Kind>, float> {
  __device__ static float load(Fp8<Kind> v) {
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(v.bits, Kind)));
  }
  __device__ static Fp8<Kind> store(float v) {
    if (isnan(v)) return {0x7f};
    return {static_cast<std::uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, Kind))};
  }
};
template <class I>
struct IntCodec {
  __device__ static I load(I v) { return v; }
  __device__ static I store(I v) { return v; }
};
template <>
struct Codec<std::int32_t, std::int32_t> : IntCodec<std::int32_t> {};
template <>
struct Codec<std::int64_t, std::int64_t> : IntCodec<std::int64_t> {};
template <>
struct Codec<std::uint8_t, std::uint8_t> : IntCodec<std::uint8_t> {};
template <>
struct Codec<std::int8_t, std::int8_t> : IntCodec<std::int8_t> {};
template <>
struct Codec<std::uint32_t, std::uint32_t> : IntCodec<std::uint32_t> {};
template <>
struct Codec<std::uint64_t, std::uint64_t> : IntCodec<std::uint64_t> {};

template <class Acc>
__device__ __forceinline__ Acc combine(Acc x, Acc y, int op) {
  if constexpr (std::is_integral_v<Acc>) {
    using U = std::make_unsigned_t<Acc>;  // wrap-around without undefined behaviour
    switch (op) {
      case 1:
        return static_cast<Acc>(static_cast<U>(x) * static_cast<U>(y));
      case 2:
        return y > x ? y : x;
      case 3:
        return y < x ? y : x;
      default:
        return static_cast<Acc>(static_cast<U>(x) + static_cast<U>(y));
    }
  } else {
    switch (op) {
      case 1:
        return x * y;
      case 2:
        return (isnan(x) || isnan(y)) ? x + y : (y > x ? y : x);
      case 3:
        return (isnan(x) || isnan(y)) ? x + y : (y < x ? y : x);
      default:
        return x + y;
    }
  }
}

template <class S, class A>
__global__ void combine_kernel(const S* a, const S* b, S* out, std::size_t n, int op) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = Codec<S, A>::store(combine<A>(Codec<S, A>::load(a[i]), Codec<S, A>::load(b[i]), op));
}

template <class S, class A>
__global__ void divide_kernel(S* buf, std::size_t n, int divisor) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const A v = Codec<S, A>::load(buf[i]);
    if constexpr (std::is_unsigned_v<A>)  // u64 beyond INT64_MAX: divide unsigned
      buf[i] = static_cast<S>(v / static_cast<A>(divisor));
    else if constexpr (std::is_integral_v<A>)
      buf[i] = static_cast<S>(static_cast<std::int64_t>(v) / divisor);
    else
      buf[i] = Codec<S, A>::store(v / static_cast<A>(divisor));
  }
}

template <class S, class A>
void launch_combine(const void* a, const void* b, void* out, std::size_t n, int op,
                    cudaStream_t stream) {
  combine_kernel<S, A><<<blocks_for(n, 256), 256, 0, stream>>>(
      static_cast<const S*>(a), static_cast<const S*>(b), static_cast<S*>(out), n, op);
}

template <class S, class A>
void launch_divide(void* buf, std::size_t n, int divisor, cudaStream_t stream) {
  divide_kernel<S, A><<<blocks_for(n, 256), 256, 0, stream>>>(static_cast<S*>(buf), n, divisor);
}

// Calls F<S, A>(args...) for the storage/accumulator types of t.
template <template <class, class> class F, class... Args>
void dispatch(DataType t, Args&&... args) {
  switch (t) {
    case DataType::f32:
      return F<float, float>::run(args...);
    case DataType::f64:
      return F<double, double>::run(args...);
    case DataType::f16:
      return F<__half, float>::run(args...);
    case DataType::bf16:
      return F<__nv_bfloat16, float>::run(args...);
    case DataType::i32:
      return F<std::int32_t, std::int32_t>::run(args...);
    case DataType::i64:
      return F<std::int64_t, std::int64_t>::run(args...);
    case DataType::u8:
      return F<std::uint8_t, std::uint8_t>::run(args...);
    case DataType::i8:
      return F<std::int8_t, std::int8_t>::run(args...);
    case DataType::u32:
      return F<std::uint32_t, std::uint32_t>::run(args...);
    case DataType::u64:
      return F<std::uint64_t, std::uint64_t>::run(args...);
    case DataType::f8e4m3:
      return F<Fp8<__NV_E4M3>, float>::run(args...);
    case DataType::f8e5m2:
      return F<Fp8<__NV_E5M2>, float>::run(args...);
  }
  throw Error(Status::invalid_argument, "hfreduce: unknown data type");
}

template <class S, class A>
struct CombineOp {
  static void run(const void* a, const void* b, void* out, std::size_t n, int op,
                  cudaStream_t stream) {
    launch_combine<S, A>(a, b, out, n, op, stream);
  }
};
template <class S, class A>
struct DivideOp {
  static void run(void* buf, std::size_t n, int divisor, cudaStream_t stream) {
    launch_divide<S, A>(buf, n, divisor, stream);
  }
};

}  // namespace

void pair_combine(DataType t, ReduceOp op, const void* a, const void* b, void* out, std::size_t n,
                  cudaStream_t stream, int device) {
  if (n == 0) return;
  int code = 0;  // sum and avg
  if (op == ReduceOp::prod) code = 1;
  if (op == ReduceOp::max) code = 2;
  if (op == ReduceOp::min) code = 3;
  dispatch<CombineOp>(t, a, b, out, n, code, stream);
  check_launch("pair_combine (kernel launch)", device);
}

void divide_by(DataType t, void* buf, std::size_t n, int divisor, cudaStream_t stream, int device) {
  if (n == 0) return;
  if (divisor <= 0)
    throw Error(Status::invalid_argument, "hfreduce: divide_by: divisor must be positive");
  dispatch<DivideOp>(t, buf, n, divisor, stream);
  check_launch("divide_by (kernel launch)", device);
}

}  // namespace hfreduce::gpu
