// Stream completion of asynchronous device-buffer operations: a blocking host function
// (host_func) or a stream-ordered wait on a host-mapped flag (stream_wait). See cuda_completion.h.
//
// The driver API (cuStreamWaitValue32) is reached through the runtime's entry-point query, not by
// linking libcuda: machines that build without a driver (CI with the toolkit only) link as before,
// and the function comes from whatever driver the runtime loaded.
#include "copy/cuda_completion.h"

#include <stdexcept>
#include <string>

#include <cuda.h>

namespace hfreduce::copy {

namespace {

using WaitValue32 = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);

// The driver function `name` (the ABI of CUDA 12.0 and later), or nullptr where the driver has
// none.
void* driver_function(const char* name) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult status = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
  const cudaError_t err =
      cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &status);
#else
  const cudaError_t err = cudaGetDriverEntryPoint(name, &fn, cudaEnableDefault, &status);
#endif
  if (err != cudaSuccess || status != cudaDriverEntryPointSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return fn;
}

[[noreturn]] void refuse(int device, const std::string& what) {
  throw Error(Status::unsupported, "hfreduce: stream_completion stream_wait on GPU " +
                                       std::to_string(device) + ": " + what +
                                       "; use stream_completion host_func");
}

// The host function that holds the caller's stream: it owns one reference to the gate.
void CUDART_CB wait_for_gate(void* user_data) {
  auto* gate = static_cast<std::shared_ptr<Gate>*>(user_data);
  (*gate)->wait();
  delete gate;
}

}  // namespace

// The word the caller's streams wait on: pinned, mapped into the device's address space, written
// only by its TicketBook (under the book's lock).
struct StreamFlag {
  StreamFlag(int device, WaitValue32 wait_fn) : wait(wait_fn) {
    void* p = nullptr;
    cuda::check(cudaHostAlloc(&p, 64, cudaHostAllocMapped | cudaHostAllocPortable),
                "cudaHostAlloc (the stream_wait flag)", device);
    host = static_cast<std::uint32_t*>(p);
    book = std::make_unique<TicketBook>(host);
    void* d = nullptr;
    const cudaError_t err = cudaHostGetDevicePointer(&d, p, 0);
    if (err != cudaSuccess) {
      (void)cudaFreeHost(p);
      cuda::fail(err, "cudaHostGetDevicePointer (the stream_wait flag)", device);
    }
    dev = reinterpret_cast<CUdeviceptr>(d);
  }
  ~StreamFlag() { (void)cudaFreeHost(host); }
  StreamFlag(const StreamFlag&) = delete;
  StreamFlag& operator=(const StreamFlag&) = delete;

  WaitValue32 wait;
  std::uint32_t* host = nullptr;
  CUdeviceptr dev = 0;
  std::unique_ptr<TicketBook> book;
};

void CudaTicket::order_after_start(void* stream) {
  cuda::check(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), start_.get(), 0),
              "cudaStreamWaitEvent (after the caller's stream)", device_);
}

void CudaTicket::release() noexcept {
  if (released_.exchange(true)) return;
  if (gate_) gate_->release();
  if (flag_) {
    try {
      flag_->book->finish(ticket_);
    } catch (...) {
      // Finished already by the hold's tear-down (finish_all): nothing waits on it any more.
    }
  }
}

StreamHold::StreamHold(int device, StreamCompletion mode) : device_(device), mode_(mode) {
  if (mode_ != StreamCompletion::stream_wait) return;
  cuda::DeviceScope scope(device_);
  int can_map = 0;
  if (cudaDeviceGetAttribute(&can_map, cudaDevAttrCanMapHostMemory, device_) != cudaSuccess ||
      can_map == 0) {
    (void)cudaGetLastError();
    refuse(device_, "the device cannot map host memory (cudaDevAttrCanMapHostMemory is 0)");
  }
  auto* wait_fn = reinterpret_cast<WaitValue32>(driver_function("cuStreamWaitValue32"));
  if (wait_fn == nullptr) refuse(device_, "the driver has no cuStreamWaitValue32 (CUDA 12.0 ABI)");
  flag_ = std::make_shared<StreamFlag>(device_, wait_fn);
  // Probe: a wait the flag (0) satisfies at once, on a private stream. Drivers without stream
  // memory operations answer CUDA_ERROR_NOT_SUPPORTED here, not in the first allreduce.
  cuda::StreamHandle probe(device_);
  const CUresult r = wait_fn(probe.get(), flag_->dev, 0, CU_STREAM_WAIT_VALUE_GEQ);
  if (r != CUDA_SUCCESS)
    refuse(device_, "cuStreamWaitValue32 on host-mapped memory failed (CUresult " +
                        std::to_string(static_cast<int>(r)) + ")");
  const cudaError_t err = cudaStreamSynchronize(probe.get());
  if (err != cudaSuccess)
    refuse(device_,
           "a satisfied cuStreamWaitValue32 did not complete (" + cuda::error_text(err) + ")");
}

StreamHold::~StreamHold() {
  if (flag_) flag_->book->finish_all();
  // Every wait is satisfied now; the device must have read the flag before it is freed.
  for (cudaEvent_t e : pending_) {
    (void)cudaEventSynchronize(e);
    (void)cudaEventDestroy(e);
  }
  for (cudaEvent_t e : spare_) (void)cudaEventDestroy(e);
}

std::shared_ptr<CudaTicket> StreamHold::enqueue(cudaStream_t caller) {
  auto ticket = std::make_shared<CudaTicket>(device_);
  cuda::check(cudaEventRecord(ticket->start_.get(), caller), "cudaEventRecord (caller's stream)",
              device_);
  if (mode_ == StreamCompletion::stream_wait)
    enqueue_wait(*ticket, caller);
  else
    enqueue_gate(*ticket, caller);
  return ticket;
}

void StreamHold::enqueue_gate(CudaTicket& t, cudaStream_t caller) {
  t.gate_ = std::make_shared<Gate>();
  auto* hold = new std::shared_ptr<Gate>(t.gate_);
  const cudaError_t err = cudaLaunchHostFunc(caller, &wait_for_gate, hold);
  if (err != cudaSuccess) {
    delete hold;
    cuda::fail(err, "cudaLaunchHostFunc (caller's stream)", device_);
  }
}

void StreamHold::enqueue_wait(CudaTicket& t, cudaStream_t caller) {
  try {
    t.ticket_ = flag_->book->issue();
  } catch (const std::length_error& e) {
    throw Error(Status::system_error, e.what());
  }
  t.flag_ = flag_;  // from here on the ticket finishes on release, whatever happens
  const CUresult r = flag_->wait(caller, flag_->dev, t.ticket_, CU_STREAM_WAIT_VALUE_GEQ);
  if (r != CUDA_SUCCESS)
    throw Error(Status::system_error, "hfreduce: cuStreamWaitValue32 (caller's stream) on GPU " +
                                          std::to_string(device_) + ": CUresult " +
                                          std::to_string(static_cast<int>(r)));
  note_wait(caller);
}

void StreamHold::note_wait(cudaStream_t caller) {
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < pending_.size();) {  // forget the waits the device has passed
    if (cudaEventQuery(pending_[i]) == cudaErrorNotReady) {
      ++i;
      continue;
    }
    spare_.push_back(pending_[i]);
    pending_[i] = pending_.back();
    pending_.pop_back();
  }
  cudaEvent_t e = nullptr;
  if (!spare_.empty()) {
    e = spare_.back();
    spare_.pop_back();
  } else {
    cuda::check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreateWithFlags",
                device_);
  }
  const cudaError_t err = cudaEventRecord(e, caller);
  if (err != cudaSuccess) {
    (void)cudaEventDestroy(e);
    cuda::fail(err, "cudaEventRecord (after the stream wait)", device_);
  }
  pending_.push_back(e);
}

}  // namespace hfreduce::copy
