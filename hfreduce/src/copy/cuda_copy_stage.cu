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
// queue time (enqueue) and the caller's stream is held until the operation is complete, so work
// queued on the stream after allreduce_async returns sees the result: by a host function
// (StreamCompletion::host_func) or by a wait on a host-mapped flag (stream_wait); both in
// cuda_completion.{h,cpp}.
//
// Host-side bookkeeping (device choice, pinned ranges, the gate, the tickets) is in
// cuda_stage_logic.h.
#include <memory>
#include <string>
#include <utility>

#include <cuda_runtime.h>

#include "copy/copy_stage.h"
#include "copy/cuda_completion.h"
#include "copy/cuda_stage_logic.h"
#include "copy/cuda_util.h"
#include "hfreduce/hfreduce.h"

namespace hfreduce::copy {

namespace {

using cuda::check;
using cuda::DeviceScope;
using cuda::EventHandle;
using cuda::fail;
using cuda::StreamHandle;

class CudaCopyStage final : public CopyStage {
 public:
  explicit CudaCopyStage(int device);
  ~CudaCopyStage() override;

  void set_stream_completion(StreamCompletion mode) override;
  void register_host_memory(void* base, std::size_t bytes) override;
  std::shared_ptr<OpTicket> enqueue(void* stream) override;
  void begin_op(void* stream) override;
  void begin_queued_op(void* stream, OpTicket* ticket) override;
  void end_op() override;
  void start_copy_in(void* host_dst, const void* src, std::size_t bytes) override;
  void finish_copy_in() override;
  void copy_out(void* dst, const void* host_src, std::size_t bytes, bool streaming) override;
  void finish_copy_out() override;
  bool user_buffer_host_readable() const override { return false; }

 private:
  void enter(void* stream);

  int device_;
  StreamHandle copy_stream_;
  EventHandle start_, copied_in_, copied_out_, done_;
  HostRanges pinned_;
  std::unique_ptr<StreamHold> hold_;
  std::unique_ptr<DeviceScope> scope_;  // between begin_op and end_op
  cudaStream_t user_ = nullptr;
  OpTicket* current_ = nullptr;
  cudaError_t deferred_ = cudaSuccess;
};

CudaCopyStage::CudaCopyStage(int device)
    : device_(device),
      copy_stream_(device),
      start_(device),
      copied_in_(device),
      copied_out_(device),
      done_(device),
      hold_(std::make_unique<StreamHold>(device, StreamCompletion::host_func)) {}

CudaCopyStage::~CudaCopyStage() {
  DeviceScope scope(device_);
  (void)cudaStreamSynchronize(copy_stream_.get());
  hold_.reset();  // waits until the callers' streams have passed their waits on the flag
  for (const auto& r : pinned_.ranges())
    if (r.owned) (void)cudaHostUnregister(reinterpret_cast<void*>(r.begin));
  (void)cudaGetLastError();
}

void CudaCopyStage::set_stream_completion(StreamCompletion mode) {
  if (mode == hold_->mode()) return;
  hold_ = std::make_unique<StreamHold>(device_, mode);
}

void CudaCopyStage::register_host_memory(void* base, std::size_t bytes) {
  if (base == nullptr || bytes == 0 || pinned_.covers(base, bytes)) return;
  DeviceScope scope(device_);
  const cudaError_t err = cudaHostRegister(base, bytes, cudaHostRegisterPortable);
  if (err == cudaErrorHostMemoryAlreadyRegistered) {
    (void)cudaGetLastError();
    pinned_.add(base, bytes, /*owned=*/false);
    return;
  }
  if (err != cudaSuccess)
    fail(err, "cudaHostRegister of the shared segment (" + std::to_string(bytes) + " B)", device_);
  pinned_.add(base, bytes, /*owned=*/true);
}

std::shared_ptr<OpTicket> CudaCopyStage::enqueue(void* stream) {
  DeviceScope scope(device_);
  return hold_->enqueue(static_cast<cudaStream_t>(stream));
}

void CudaCopyStage::begin_op(void* stream) {
  enter(stream);
  check(cudaEventRecord(start_.get(), user_), "cudaEventRecord (caller's stream)", device_);
  check(cudaStreamWaitEvent(copy_stream_.get(), start_.get(), 0), "cudaStreamWaitEvent", device_);
}

void CudaCopyStage::begin_queued_op(void* stream, OpTicket* ticket) {
  if (ticket == nullptr) {
    begin_op(stream);
    return;
  }
  enter(stream);
  current_ = ticket;
  ticket->order_after_start(copy_stream_.get());
}

// Never throws: it also runs while an exception from the pipeline is propagating. A failure here
// is reported by the next operation.
void CudaCopyStage::end_op() {
  cudaError_t err = cudaSuccess;
  if (current_ != nullptr) {
    // Queued operation: every copy-out has completed on success (finish_copy_out), but after a
    // failure copies may still be in flight. The caller's stream is released only when none is.
    err = cudaStreamSynchronize(copy_stream_.get());
    current_->release();
    current_ = nullptr;
  } else {
    err = cudaEventRecord(done_.get(), copy_stream_.get());
    if (err == cudaSuccess) err = cudaStreamWaitEvent(user_, done_.get(), 0);
  }
  if (err != cudaSuccess && deferred_ == cudaSuccess) deferred_ = err;
  (void)cudaGetLastError();
  scope_.reset();
}

void CudaCopyStage::start_copy_in(void* host_dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  // cudaMemcpyDefault: device, managed or host source alike (unified addressing).
  const cudaError_t err =
      cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDefault, copy_stream_.get());
  if (err != cudaSuccess)
    fail(err, "cudaMemcpyAsync device->host (" + std::to_string(bytes) + " B)", device_);
}

void CudaCopyStage::finish_copy_in() {
  check(cudaEventRecord(copied_in_.get(), copy_stream_.get()), "cudaEventRecord", device_);
  check(cudaEventSynchronize(copied_in_.get()), "copy-in (cudaEventSynchronize)", device_);
}

void CudaCopyStage::copy_out(void* dst, const void* host_src, std::size_t bytes,
                             bool /*streaming*/) {
  if (bytes == 0) return;
  const cudaError_t err =
      cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyDefault, copy_stream_.get());
  if (err != cudaSuccess)
    fail(err, "cudaMemcpyAsync host->device (" + std::to_string(bytes) + " B)", device_);
}

void CudaCopyStage::finish_copy_out() {
  check(cudaEventRecord(copied_out_.get(), copy_stream_.get()), "cudaEventRecord", device_);
  check(cudaEventSynchronize(copied_out_.get()), "copy-out (cudaEventSynchronize)", device_);
}

void CudaCopyStage::enter(void* stream) {
  if (deferred_ != cudaSuccess) {
    const cudaError_t err = deferred_;
    deferred_ = cudaSuccess;
    fail(err, "the end of the previous operation", device_);
  }
  scope_ = std::make_unique<DeviceScope>(device_);
  user_ = static_cast<cudaStream_t>(stream);
  current_ = nullptr;
}

}  // namespace

std::unique_ptr<CopyStage> make_copy_stage(bool device_buffers, int device) {
  if (!device_buffers) return std::make_unique<HostCopyStage>();
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count <= 0) {
    (void)cudaGetLastError();
    throw Error(Status::unsupported,
                "hfreduce: device buffers need a CUDA GPU, but none is usable here (" +
                    (err != cudaSuccess ? "cudaGetDeviceCount: " + cuda::error_text(err)
                                        : std::string("0 devices")) +
                    ")");
  }
  const int chosen = choose_device(device, count);
  DeviceScope scope(chosen);  // the stream and events belong to this device
  return std::make_unique<CudaCopyStage>(chosen);
}

}  // namespace hfreduce::copy
