// The compute side of a data-parallel training step: per layer, a forward and a backward pass,
// and an optional optimizer update. Two engines: EmulatedCompute (no GPU: sleeps for the time the
// layer's FLOPs take at a configured device rate, so the CPU cores stay free for the host reduce)
// and, on GPUs, a cuBLAS engine (compute_cublas.cu, built only with CUDA).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ffb/numeric.h"
#include "model.h"

namespace ffb::ddp {

// Called repeatedly while the host waits for compute (the MPI backend's progress). May be empty.
using Idle = std::function<void()>;

enum class Optimizer { none, sgd, adam };
const char* name_of(Optimizer o);
// Bytes of device memory an update moves per parameter (fp32 master weights): sgd reads w, g and
// writes w (12 B); adam reads w, g, m, v and writes w, m, v (28 B).
double optimizer_bytes_per_param(Optimizer o);

struct ComputeConfig {
  double tflops = 107.0;           // emulated device rate (the paper's A100-PCIe TF32 GEMM, R7)
  std::string gemm_type = "tf32";  // GPU GEMMs: tf32 (fp32 data, TF32 tensor cores) or bf16
  double efficiency = 1.0;         // fraction of tflops a layer achieves
  int batch = 1;                   // samples per rank per step
  Optimizer optimizer = Optimizer::none;
  DataType grad_type = DataType::f32;  // of the gradients the optimizer reads
  double device_membw_gbs = 1555.0;    // for the optimizer update (A100-40GB HBM2)
  double progress_us = 100.0;          // longest sleep between two idle() calls when idle() is set
};

double now_s();  // steady clock, seconds

class ComputeEngine {
 public:
  virtual ~ComputeEngine() = default;
  virtual std::string name() const = 0;  // "emulated", "cublas"
  virtual bool emulated() const = 0;
  virtual std::string describe() const = 0;  // one header line
  // This rank's device as the `ranks` table names it ("GPU0 NVIDIA H100 ... [bus]"), "-" for none.
  virtual std::string device_description() const { return "-"; }
  virtual void prepare(const Model& model, const ComputeConfig& cfg) = 0;

  // Gradient memory (host for the emulated engine, device for cuBLAS): the allreduce reads and
  // writes it; upload/download move host data in and out (set-up and validation only).
  virtual bool device_memory() const { return false; }
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* p) = 0;
  virtual void upload(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void download(void* dst, const void* src, std::size_t bytes) = 0;
  // GPU only (nullptr / no-ops on the host): the compute stream, a second stream for the
  // allreduces (as PyTorch DDP's communication stream), "waiter waits for the work queued on
  // producer so far" (an event), and a host wait for a stream.
  virtual void* stream() { return nullptr; }
  virtual void* comm_stream() { return nullptr; }
  virtual void stream_wait(void* /*waiter*/, void* /*producer*/) {}
  virtual void stream_sync(void* /*s*/) {}
  // Where the allreduced gradients are (the optimizer update reads them).
  virtual void set_gradients(const void* /*recv*/) {}

  // A step: begin, forward(0..L-1), backward(L-1..0), end_backward, optimizer, end.
  // forward/backward return once the layer's results exist as far as the host can tell
  // (emulated: its time has passed; GPU: its kernels are queued and stream order makes the rest
  // wait for them), calling idle() meanwhile.
  virtual void begin_step() = 0;
  virtual void forward(std::size_t layer, const Idle& idle) = 0;
  virtual void backward(std::size_t layer, const Idle& idle) = 0;
  // Host time (steady clock seconds) when the forward / backward pass has finished on the device
  // (GPU: the host waits for the compute stream; the allreduces go on on their own stream).
  virtual double end_forward(const Idle& /*idle*/) { return now_s(); }
  virtual double end_backward(const Idle& idle) = 0;
  virtual void optimizer(const Idle& idle) = 0;
  virtual void end_step() {}
  // Expected compute seconds per step (emulated: exact; GPU: 0 = unknown).
  virtual double nominal_step_compute_s() const { return 0.0; }
};

// No GPU: each pass takes flops x batch / (tflops x efficiency) seconds of a virtual device clock
// that runs ahead of the host like a GPU queue (a pass starts when the previous one ended, not when
// the host got round to it); the host sleeps until the pass's end. Sleeping (never spinning) leaves
// the cores to HFReduce's reduce threads, as a GPU would. Gradient memory is host memory.
class EmulatedCompute final : public ComputeEngine {
 public:
  std::string name() const override { return "emulated"; }
  bool emulated() const override { return true; }
  std::string describe() const override;
  void prepare(const Model& model, const ComputeConfig& cfg) override;
  void* allocate(std::size_t bytes) override;
  void deallocate(void* p) override;
  void upload(void* dst, const void* src, std::size_t bytes) override;
  void download(void* dst, const void* src, std::size_t bytes) override;
  void begin_step() override;
  void forward(std::size_t layer, const Idle& idle) override;
  void backward(std::size_t layer, const Idle& idle) override;
  double end_backward(const Idle& idle) override;
  void optimizer(const Idle& idle) override;
  double nominal_step_compute_s() const override;

 private:
  void advance(double seconds, const Idle& idle);
  const Model* model_ = nullptr;
  ComputeConfig cfg_;
  double deadline_ = 0;  // the virtual device clock
  std::uint64_t params_ = 0;
};

// "cublas" when this binary was built with CUDA and a GPU is usable; throws SkipError (exit 77)
// with one line otherwise. Defined in compute_cublas.cu, or in compute_factory.cpp without CUDA.
std::unique_ptr<ComputeEngine> make_gpu_compute(int requested_device, int local_rank);
bool built_with_cuda();
int gpu_count_or_zero();

}  // namespace ffb::ddp
