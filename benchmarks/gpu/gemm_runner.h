// Square matrix products with cuBLAS (R7: TF32, FP16, BF16): shared by gemm_bench and
// interference_bench. Inputs are random (fill_uniform), never zeros.
#pragma once

#include <cstdint>
#include <cublas_v2.h>
#include <optional>
#include <string>

#include <cuda_runtime.h>

#include "gpu_util.h"

namespace ffb::gpu {

enum class GemmType { tf32, fp16, bf16, fp32 };
std::optional<GemmType> parse_gemm_type(const std::string& s);  // "tf32", "fp16", "bf16", "fp32"
const char* name_of(GemmType t);

class Gemm {
 public:
  // Allocates A, B, C (n x n) on the current device and fills A and B with random values.
  Gemm(std::uint64_t n, GemmType type, cudaStream_t stream, std::uint64_t seed = 1);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Enqueues `reps` products C = A x B on the stream (no synchronisation).
  void enqueue(int reps);
  // Seconds for `reps` products, timed with CUDA events after the queue drained.
  double time(int reps);
  // Largest relative error of a few entries of C against a double-precision dot product on the
  // host (call after enqueue + synchronise). Tolerance guide: fp16/bf16 ~1e-2, tf32 ~1e-2.
  double spot_check(int samples = 8);
  std::uint64_t n() const { return n_; }
  static std::size_t bytes_needed(std::uint64_t n, GemmType type);

 private:
  std::uint64_t n_;
  GemmType type_;
  cudaStream_t stream_;
  cublasHandle_t handle_ = nullptr;
  DeviceMemory a_, b_, c_;
};

}  // namespace ffb::gpu
