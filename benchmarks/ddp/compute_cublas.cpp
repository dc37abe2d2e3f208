// The GPU compute engine of ddp_bench: every layer's matrix products as cuBLAS GEMMs sized from the
// model file (forward C = A B with m x batch rows; backward the weight gradient A^T dC and, when
// the layer's backward FLOPs say so, the input gradient dC B^T), on one stream, TF32 tensor cores
// on fp32 data (the paper's 107 TFLOPS class) or bf16. Gradients live in device memory; the
// allreduces run on a second stream that waits for them (PyTorch DDP's arrangement). The GEMM
// operands are scratch buffers of small random values (only the time of the products matters;
// the gradients themselves are the validation pattern). Built only with CUDA (and NCCL); the
// kernels are in ddp_kernels.cu.
#include <algorithm>
#include <cmath>
#include <cublas_v2.h>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <fmt/format.h>

#include "compute.h"
#include "ddp_kernels.h"
#include "ffb/error.h"

namespace ffb::ddp {

namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(
        fmt::format("{}: {}: {}", what, cudaGetErrorName(e), cudaGetErrorString(e)));
}

void ckb(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(fmt::format("{}: cuBLAS status {}", what, static_cast<int>(s)));
}

struct GemmCall {
  std::uint64_t rows, n, k;  // rows = m x count x batch (x compute scale)
};

class CublasCompute final : public ComputeEngine {
 public:
  explicit CublasCompute(int device) : device_(device) {}
  ~CublasCompute() override {
    if (handle_ != nullptr) cublasDestroy(handle_);
    for (void* p : std::vector<void*>{a_, b_, c_, da_, db_, w_, m_, v_})
      if (p != nullptr) cudaFree(p);
    if (event_ != nullptr) cudaEventDestroy(event_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    if (comm_ != nullptr) cudaStreamDestroy(comm_);
  }

  std::string name() const override { return "cublas"; }
  bool emulated() const override { return false; }
  std::string describe() const override {
    return fmt::format(
        "cuBLAS {} GEMMs on {} sized from the model's gemm shapes (m x batch rows); layers "
        "without a gemm shape take no GPU time",
        cfg_.gemm_type == "bf16" ? "bf16" : "TF32 (fp32 data)", device_name_);
  }
  std::string device_description() const override { return device_name_; }
  bool device_memory() const override { return true; }

  void prepare(const Model& model, const ComputeConfig& cfg) override {
    model_ = &model;
    cfg_ = cfg;
    ck(cudaSetDevice(device_), "cudaSetDevice");
    cudaDeviceProp prop{};
    ck(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
    char bus[32] = {0};
    cudaDeviceGetPCIBusId(bus, sizeof bus, device_);
    device_name_ = fmt::format("GPU{} {} [{}]", device_, prop.name, bus);
    ck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    ck(cudaStreamCreateWithFlags(&comm_, cudaStreamNonBlocking), "cudaStreamCreate");
    ck(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreate");
    ckb(cublasCreate(&handle_), "cublasCreate");
    ckb(cublasSetStream(handle_, stream_), "cublasSetStream");
    bf16_ = cfg_.gemm_type == "bf16";
    esize_ = bf16_ ? 2 : 4;

    // GEMM calls per layer; the activations' row count is chunked so that no operand exceeds
    // kCap elements (same FLOPs, bounded scratch memory).
    constexpr std::uint64_t kCap = 64ull << 20;
    std::uint64_t max_kn = 1;
    calls_.assign(model.layers.size(), {});
    for (std::size_t l = 0; l < model.layers.size(); ++l) {
      const auto& layer = model.layers[l];
      // The file's FLOPs may have been scaled (--compute-scale): scale the rows alike.
      double unscaled = 0;
      for (const auto& g : layer.gemms) unscaled += g.flops();
      const double scale = unscaled > 0 ? layer.fwd_flops / unscaled : 0.0;
      for (const auto& g : layer.gemms) {
        const auto rows = static_cast<std::uint64_t>(
            std::llround(double(g.m) * double(g.count) * cfg.batch * scale));
        if (rows == 0) continue;
        max_kn = std::max(max_kn, g.k * g.n);
        const std::uint64_t cap_rows = std::max<std::uint64_t>(1, kCap / std::max(g.k, g.n));
        for (std::uint64_t done = 0; done < rows; done += cap_rows)
          calls_[l].push_back(GemmCall{std::min(cap_rows, rows - done), g.n, g.k});
      }
      const double ratio = layer.fwd_flops > 0 ? layer.bwd_flops / layer.fwd_flops : 0.0;
      wgrad_.push_back(ratio > 0.5);
      dgrad_.push_back(ratio > 1.5);
    }
    const std::size_t act = kCap * esize_, wts = max_kn * esize_;
    const std::vector<std::pair<void**, std::size_t>> scratch{
        {&a_, act}, {&c_, act}, {&da_, act}, {&b_, wts}, {&db_, wts}};
    for (auto [p, bytes] : scratch) {
      ck(cudaMalloc(p, bytes), "cudaMalloc (GEMM scratch)");
      const std::size_t n = bytes / esize_;
      kernels::fill(*p, n, bf16_, stream_);
    }
    params_ = model.total_params();
    if (cfg.optimizer != Optimizer::none) {
      ck(cudaMalloc(&w_, params_ * 4), "cudaMalloc (weights)");
      ck(cudaMemsetAsync(w_, 0, params_ * 4, stream_), "cudaMemset");
      if (cfg.optimizer == Optimizer::adam) {
        ck(cudaMalloc(&m_, params_ * 4), "cudaMalloc (adam m)");
        ck(cudaMalloc(&v_, params_ * 4), "cudaMalloc (adam v)");
        ck(cudaMemsetAsync(m_, 0, params_ * 4, stream_), "cudaMemset");
        ck(cudaMemsetAsync(v_, 0, params_ * 4, stream_), "cudaMemset");
      }
    }
    ck(cudaStreamSynchronize(stream_), "prepare");
  }

  void* allocate(std::size_t bytes) override {
    void* p = nullptr;
    ck(cudaSetDevice(device_), "cudaSetDevice");
    ck(cudaMalloc(&p, std::max<std::size_t>(bytes, 256)), "cudaMalloc (gradients)");
    ck(cudaMemset(p, 0, std::max<std::size_t>(bytes, 256)), "cudaMemset");
    return p;
  }
  void deallocate(void* p) override {
    if (p != nullptr) cudaFree(p);
  }
  void upload(void* dst, const void* src, std::size_t bytes) override {
    if (bytes > 0) ck(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }
  void download(void* dst, const void* src, std::size_t bytes) override {
    if (bytes > 0) ck(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  }
  void* stream() override { return stream_; }
  void* comm_stream() override { return comm_; }
  void stream_wait(void* waiter, void* producer) override {
    ck(cudaEventRecord(event_, static_cast<cudaStream_t>(producer)), "cudaEventRecord");
    ck(cudaStreamWaitEvent(static_cast<cudaStream_t>(waiter), event_, 0), "cudaStreamWaitEvent");
  }
  void stream_sync(void* s) override {
    ck(cudaStreamSynchronize(static_cast<cudaStream_t>(s)), "cudaStreamSynchronize");
  }

  void begin_step() override {}

  void forward(std::size_t layer, const Idle&) override {
    for (const auto& c : calls_[layer]) gemm(c.n, c.rows, c.k, b_, a_, c_, 0.0f, false);
  }

  void backward(std::size_t layer, const Idle&) override {
    bool first = true;
    for (const auto& c : calls_[layer]) {
      if (dgrad_[layer]) gemm(c.k, c.rows, c.n, b_, c_, da_, 0.0f, false);  // dA = dC B^T
      if (wgrad_[layer]) {
        gemm(c.n, c.k, c.rows, c_, a_, db_, first ? 0.0f : 1.0f, true);  // dB = A^T dC
        first = false;
      }
    }
  }

  double end_forward(const Idle&) override {
    ck(cudaStreamSynchronize(stream_), "forward");
    return now_s();
  }
  double end_backward(const Idle&) override {
    ck(cudaStreamSynchronize(stream_), "backward");
    return now_s();
  }

  void optimizer(const Idle&) override {
    if (cfg_.optimizer == Optimizer::none || grads_ == nullptr) return;
    const int kind = cfg_.optimizer == Optimizer::sgd ? 1 : 2;
    const int gt = cfg_.grad_type == DataType::bf16 ? 1 : cfg_.grad_type == DataType::f16 ? 2 : 0;
    kernels::optimizer_step(kind, gt, w_, m_, v_, grads_, params_, 1e-6f, stream_);
    ck(cudaGetLastError(), "optimizer kernel");
  }

  void end_step() override { ck(cudaStreamSynchronize(stream_), "step"); }
  void set_gradients(const void* recv) override { grads_ = recv; }

 private:
  // Column-major C (m x n) = A (m x k) B (k x n); `transpose_b`: B is stored n x k.
  void gemm(std::uint64_t m, std::uint64_t n, std::uint64_t k, const void* a, const void* b,
            void* c, float beta, bool transpose_b) {
    const float alpha = 1.0f;
    const cudaDataType_t t = bf16_ ? CUDA_R_16BF : CUDA_R_32F;
    const cublasComputeType_t ct = bf16_ ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    ckb(cublasGemmEx(handle_, CUBLAS_OP_N, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                     static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, a, t,
                     static_cast<int>(m), b, t, static_cast<int>(transpose_b ? n : k), &beta, c, t,
                     static_cast<int>(m), ct, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
  }

  int device_;
  std::string device_name_;
  const Model* model_ = nullptr;
  ComputeConfig cfg_;
  cudaStream_t stream_ = nullptr, comm_ = nullptr;
  cudaEvent_t event_ = nullptr;
  cublasHandle_t handle_ = nullptr;
  bool bf16_ = false;
  std::size_t esize_ = 4;
  std::vector<std::vector<GemmCall>> calls_;
  std::vector<bool> wgrad_, dgrad_;
  void *a_ = nullptr, *b_ = nullptr, *c_ = nullptr, *da_ = nullptr, *db_ = nullptr;
  float *w_ = nullptr, *m_ = nullptr, *v_ = nullptr;
  const void* grads_ = nullptr;
  std::uint64_t params_ = 0;
};

}  // namespace

bool built_with_cuda() { return true; }

int gpu_count_or_zero() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::unique_ptr<ComputeEngine> make_gpu_compute(int requested_device, int local_rank) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    throw SkipError(fmt::format("--compute cublas: no GPU ({})",
                                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices"));
  }
  if (requested_device >= n)
    throw UsageError(fmt::format("--device {}: this node has {} GPU(s)", requested_device, n));
  const int device = requested_device >= 0 ? requested_device : local_rank % n;
  return std::make_unique<CublasCompute>(device);
}

}  // namespace ffb::ddp
