#include "gemm_runner.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "ffb/numeric.h"
#include "gpu_kernels.h"

namespace ffb::gpu {

namespace {

void check_blas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(
        fmt::format("{}: {} ({})", what, cublasGetStatusName(st), cublasGetStatusString(st)));
}

DataType storage_of(GemmType t) {
  switch (t) {
    case GemmType::fp16:
      return DataType::f16;
    case GemmType::bf16:
      return DataType::bf16;
    default:
      return DataType::f32;
  }
}

cudaDataType_t cuda_type_of(GemmType t) {
  switch (t) {
    case GemmType::fp16:
      return CUDA_R_16F;
    case GemmType::bf16:
      return CUDA_R_16BF;
    default:
      return CUDA_R_32F;
  }
}

double to_double(const void* p, GemmType t, std::size_t i) {
  return load_as_double(p, storage_of(t), i);
}

}  // namespace

std::optional<GemmType> parse_gemm_type(const std::string& s) {
  if (s == "tf32") return GemmType::tf32;
  if (s == "fp16" || s == "half") return GemmType::fp16;
  if (s == "bf16" || s == "bfloat16") return GemmType::bf16;
  if (s == "fp32" || s == "float") return GemmType::fp32;
  return std::nullopt;
}

const char* name_of(GemmType t) {
  switch (t) {
    case GemmType::tf32:
      return "tf32";
    case GemmType::fp16:
      return "fp16";
    case GemmType::bf16:
      return "bf16";
    case GemmType::fp32:
      return "fp32";
  }
  return "?";
}

std::size_t Gemm::bytes_needed(std::uint64_t n, GemmType type) {
  return 3 * n * n * size_of(storage_of(type));
}

Gemm::Gemm(std::uint64_t n, GemmType type, cudaStream_t stream, std::uint64_t seed)
    : n_(n),
      type_(type),
      stream_(stream),
      a_(n * n * size_of(storage_of(type))),
      b_(n * n * size_of(storage_of(type))),
      c_(n * n * size_of(storage_of(type))) {
  check_blas(cublasCreate(&handle_), "cublasCreate");
  check_blas(cublasSetStream(handle_, stream_), "cublasSetStream");
  // TF32 is asked for through the compute type; keep the handle's math mode at its default.
  fill_uniform(a_.get(), storage_of(type), n * n, seed * 2 + 1, stream_);
  fill_uniform(b_.get(), storage_of(type), n * n, seed * 2 + 2, stream_);
  check(cudaMemsetAsync(c_.get(), 0, c_.bytes(), stream_), "cudaMemsetAsync");
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

Gemm::~Gemm() {
  if (handle_ != nullptr) (void)cublasDestroy(handle_);
}

void Gemm::enqueue(int reps) {
  const float alpha = 1.0f, beta = 0.0f;
  const auto n = static_cast<int>(n_);
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  if (type_ == GemmType::tf32) compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  const cudaDataType_t dt = cuda_type_of(type_);
  for (int i = 0; i < reps; ++i)
    check_blas(cublasGemmEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a_.get(), dt, n,
                            b_.get(), dt, n, &beta, c_.get(), dt, n, compute, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

double Gemm::time(int reps) {
  Event start, stop;
  start.record(stream_);
  enqueue(reps);
  stop.record(stream_);
  stop.synchronize();
  return static_cast<double>(elapsed_ms(start, stop)) * 1e-3;
}

double Gemm::spot_check(int samples) {
  const std::size_t es = size_of(storage_of(type_));
  const std::size_t n = n_;
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  double worst = 0;
  std::vector<unsigned char> row(n * es), col(n * es), cval(es);
  for (int s = 0; s < samples; ++s) {
    // Column-major: C(i,j) = sum_k A(i,k) B(k,j); A(i,k) at i + k*n.
    const std::size_t i = (static_cast<std::size_t>(s) * 7919u + 13u) % n;
    const std::size_t j = (static_cast<std::size_t>(s) * 104729u + 5u) % n;
    check(cudaMemcpy2D(row.data(), es, static_cast<const char*>(a_.get()) + i * es, n * es, es, n,
                       cudaMemcpyDeviceToHost),
          "cudaMemcpy2D");
    check(cudaMemcpy(col.data(), static_cast<const char*>(b_.get()) + j * n * es, n * es,
                     cudaMemcpyDeviceToHost),
          "cudaMemcpy");
    check(cudaMemcpy(cval.data(), static_cast<const char*>(c_.get()) + (i + j * n) * es, es,
                     cudaMemcpyDeviceToHost),
          "cudaMemcpy");
    double ref = 0, mag = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double p = to_double(row.data(), type_, k) * to_double(col.data(), type_, k);
      ref += p;
      mag += std::fabs(p);
    }
    const double got = to_double(cval.data(), type_, 0);
    // Error relative to sum |a b| (the scale rounding errors live on), not to a cancelled sum.
    worst = std::max(worst, std::fabs(got - ref) / std::max(mag, 1e-30));
  }
  return worst;
}

}  // namespace ffb::gpu
