// The GPU copy stage: copy-in is a chunked cudaMemcpyAsync device -> host on a copy engine, into
// the node's shared segment (pinned once with cudaHostRegister); copy-out is host -> device. No
// kernel runs on the GPU: the reduce stays on the CPU, the SMs stay free for compute. A CUDA event
// marks when a chunk has landed in host memory.
//
// Streams: every copy runs on a private non-blocking copy stream of the rank's device. For an
// operation started with a caller's stream, the copy stream first waits for an event recorded on
// the caller's stream (work already queued there, e.g. the backward kernels producing the
// gradients); afterwards the caller's stream waits for the copy-out (enqueue semantics as with
// NCCL). For asynchronous operations the stream position is captured on the caller's thread at
// queue time (enqueue) and the caller's stream is held by a host function until the operation is
// complete, so work queued on the stream after allreduce_async returns sees the result.
//
// Host-side bookkeeping (device choice, pinned ranges, the gate) is in cuda_stage_logic.h.
#include <memory>
#include <string>
#include <utility>

#include <cuda_runtime.h>

#include "copy/copy_stage.h"
#include "copy/cuda_stage_logic.h"
#include "hfreduce/hfreduce.h"

namespace hfreduce::copy {

namespace {

std::string cuda_text(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
}

[[noreturn]] void fail(cudaError_t err, const std::string& what, int device) {
  (void)cudaGetLastError();  // clear non-sticky errors
  throw Error(Status::system_error,
              "hfreduce: " + what + " on GPU " + std::to_string(device) + ": " + cuda_text(err));
}

void check(cudaError_t err, const char* what, int device) {
  if (err != cudaSuccess) fail(err, what, device);
}

// Makes `device` current on this thread and restores the previous device on destruction, so the
// library never changes the caller's current device behind its back.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice", device);
    device_ = device;
  }
  ~DeviceScope() {
    if (previous_ >= 0 && previous_ != device_) (void)cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = -1;
  int device_ = -1;
};

class EventHandle {
 public:
  explicit EventHandle(int device) {
    check(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming), "cudaEventCreateWithFlags",
          device);
  }
  ~EventHandle() {
    if (e_ != nullptr) (void)cudaEventDestroy(e_);
  }
  EventHandle(const EventHandle&) = delete;
  EventHandle& operator=(const EventHandle&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

class StreamHandle {
 public:
  explicit StreamHandle(int device) {
    check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags",
          device);
  }
  ~StreamHandle() {
    if (s_ != nullptr) (void)cudaStreamDestroy(s_);
  }
  StreamHandle(const StreamHandle&) = delete;
  StreamHandle& operator=(const StreamHandle&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// The host function that holds the caller's stream: it owns one reference to the gate.
void CUDART_CB wait_for_gate(void* user_data) {
  auto* gate = static_cast<std::shared_ptr<Gate>*>(user_data);
  (*gate)->wait();
  delete gate;
}

struct CudaTicket final : OpTicket {
  explicit CudaTicket(int device) : start(device) {}
  ~CudaTicket() override {
    if (gate) gate->release();  // an operation that never ran must not hold the stream forever
  }
  EventHandle start;           // the caller's stream position at queue time
  std::shared_ptr<Gate> gate;  // released when the operation is complete
};

class CudaCopyStage final : public CopyStage {
 public:
  explicit CudaCopyStage(int device)
      : device_(device),
        copy_stream_(device),
        start_(device),
        copied_in_(device),
        copied_out_(device),
        done_(device) {}

  ~CudaCopyStage() override {
    DeviceScope scope(device_);
    (void)cudaStreamSynchronize(copy_stream_.get());
    for (const auto& r : pinned_.ranges())
      if (r.owned) (void)cudaHostUnregister(reinterpret_cast<void*>(r.begin));
    (void)cudaGetLastError();
  }

  void register_host_memory(void* base, std::size_t bytes) override {
    if (base == nullptr || bytes == 0 || pinned_.covers(base, bytes)) return;
    DeviceScope scope(device_);
    const cudaError_t err = cudaHostRegister(base, bytes, cudaHostRegisterPortable);
    if (err == cudaErrorHostMemoryAlreadyRegistered) {
      (void)cudaGetLastError();
      pinned_.add(base, bytes, /*owned=*/false);
      return;
    }
    if (err != cudaSuccess)
      fail(err, "cudaHostRegister of the shared segment (" + std::to_string(bytes) + " B)",
           device_);
    pinned_.add(base, bytes, /*owned=*/true);
  }

  std::shared_ptr<OpTicket> enqueue(void* stream) override {
    DeviceScope scope(device_);
    auto ticket = std::make_shared<CudaTicket>(device_);
    const auto user = static_cast<cudaStream_t>(stream);
    check(cudaEventRecord(ticket->start.get(), user), "cudaEventRecord (caller's stream)", device_);
    ticket->gate = std::make_shared<Gate>();
    auto* hold = new std::shared_ptr<Gate>(ticket->gate);
    const cudaError_t err = cudaLaunchHostFunc(user, &wait_for_gate, hold);
    if (err != cudaSuccess) {
      delete hold;
      fail(err, "cudaLaunchHostFunc (caller's stream)", device_);
    }
    return ticket;
  }

  void begin_op(void* stream) override {
    enter(stream);
    check(cudaEventRecord(start_.get(), user_), "cudaEventRecord (caller's stream)", device_);
    check(cudaStreamWaitEvent(copy_stream_.get(), start_.get(), 0), "cudaStreamWaitEvent", device_);
  }

  void begin_queued_op(void* stream, OpTicket* ticket) override {
    auto* t = dynamic_cast<CudaTicket*>(ticket);
    if (t == nullptr) {
      begin_op(stream);
      return;
    }
    enter(stream);
    current_ = t;
    check(cudaStreamWaitEvent(copy_stream_.get(), t->start.get(), 0), "cudaStreamWaitEvent",
          device_);
  }

  // Never throws: it also runs while an exception from the pipeline is propagating. A failure
  // here is reported by the next operation.
  void end_op() override {
    cudaError_t err = cudaEventRecord(done_.get(), copy_stream_.get());
    if (current_ != nullptr) {
      if (current_->gate) current_->gate->release();
      current_ = nullptr;
    } else if (err == cudaSuccess) {
      err = cudaStreamWaitEvent(user_, done_.get(), 0);
    }
    if (err != cudaSuccess && deferred_ == cudaSuccess) deferred_ = err;
    (void)cudaGetLastError();
    scope_.reset();
  }

  void start_copy_in(void* host_dst, const void* src, std::size_t bytes) override {
    if (bytes == 0) return;
    // cudaMemcpyDefault: device, managed or host source alike (unified addressing).
    const cudaError_t err =
        cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDefault, copy_stream_.get());
    if (err != cudaSuccess)
      fail(err, "cudaMemcpyAsync device->host (" + std::to_string(bytes) + " B)", device_);
  }

  void finish_copy_in() override {
    check(cudaEventRecord(copied_in_.get(), copy_stream_.get()), "cudaEventRecord", device_);
    check(cudaEventSynchronize(copied_in_.get()), "copy-in (cudaEventSynchronize)", device_);
  }

  void copy_out(void* dst, const void* host_src, std::size_t bytes, bool /*streaming*/) override {
    if (bytes == 0) return;
    const cudaError_t err =
        cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyDefault, copy_stream_.get());
    if (err != cudaSuccess)
      fail(err, "cudaMemcpyAsync host->device (" + std::to_string(bytes) + " B)", device_);
  }

  void finish_copy_out() override {
    check(cudaEventRecord(copied_out_.get(), copy_stream_.get()), "cudaEventRecord", device_);
    check(cudaEventSynchronize(copied_out_.get()), "copy-out (cudaEventSynchronize)", device_);
  }

  bool user_buffer_host_readable() const override { return false; }

 private:
  void enter(void* stream) {
    if (deferred_ != cudaSuccess) {
      const cudaError_t err = deferred_;
      deferred_ = cudaSuccess;
      fail(err, "the end of the previous operation", device_);
    }
    scope_ = std::make_unique<DeviceScope>(device_);
    user_ = static_cast<cudaStream_t>(stream);
    current_ = nullptr;
  }

  int device_;
  StreamHandle copy_stream_;
  EventHandle start_, copied_in_, copied_out_, done_;
  HostRanges pinned_;
  std::unique_ptr<DeviceScope> scope_;  // between begin_op and end_op
  cudaStream_t user_ = nullptr;
  CudaTicket* current_ = nullptr;
  cudaError_t deferred_ = cudaSuccess;
};

}  // namespace

std::unique_ptr<CopyStage> make_copy_stage(bool device_buffers, int device) {
  if (!device_buffers) return std::make_unique<HostCopyStage>();
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count <= 0) {
    (void)cudaGetLastError();
    throw Error(Status::unsupported,
                "hfreduce: device buffers need a CUDA GPU, but none is usable here (" +
                    (err != cudaSuccess ? "cudaGetDeviceCount: " + cuda_text(err)
                                        : std::string("0 devices")) +
                    ")");
  }
  const int chosen = choose_device(device, count);
  DeviceScope scope(chosen);  // the stream and events belong to this device
  return std::make_unique<CudaCopyStage>(chosen);
}

}  // namespace hfreduce::copy
