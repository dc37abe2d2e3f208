// How an asynchronous device-buffer operation holds the caller's CUDA stream until it is complete
// (Options::stream_completion; docs/gpu.md, "Stream-ordered completion"):
//   host_func:   a host function on the caller's stream waits on a Gate that the operation's end
//                opens (the verified path; CUDA forbids a host function from waiting on work
//                queued later, and the driver may serialise host functions);
//   stream_wait: the caller's stream waits (cuStreamWaitValue32, GEQ) until a host-mapped, pinned
//                32-bit flag reaches the operation's ticket; the progress thread writes the flag
//                after the operation's copy-out has completed (TicketBook). No host function runs.
// Used by the copy stage (cuda_copy_stage.cu) and the NVLink-pair stage (gpu/pair_stage.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <cuda_runtime.h>

#include "copy/copy_stage.h"
#include "copy/cuda_stage_logic.h"
#include "copy/cuda_util.h"
#include "hfreduce/hfreduce.h"

namespace hfreduce::copy {

struct StreamFlag;  // the host-mapped word and its TicketBook (cuda_completion.cu)

// One queued operation's hold on the caller's stream.
class CudaTicket final : public OpTicket {
 public:
  explicit CudaTicket(int device) : device_(device), start_(device) {}
  ~CudaTicket() override { release(); }  // an operation that never ran must not hold the stream
  CudaTicket(const CudaTicket&) = delete;
  CudaTicket& operator=(const CudaTicket&) = delete;

  void order_after_start(void* stream) override;
  void release() noexcept override;
  cudaEvent_t start() const { return start_.get(); }

 private:
  friend class StreamHold;
  int device_;
  cuda::EventHandle start_;           // the caller's stream position at queue time
  std::shared_ptr<Gate> gate_;        // host_func: opened by release()
  std::shared_ptr<StreamFlag> flag_;  // stream_wait: release() finishes ticket_
  std::uint32_t ticket_ = 0;
  std::atomic<bool> released_{false};  // end_op and the destructor may both release
};

class StreamHold {
 public:
  // stream_wait: checks that `device` can map host memory and run cuStreamWaitValue32 (a probe on
  // a private stream) and throws Error(unsupported) with one line naming what is missing.
  StreamHold(int device, StreamCompletion mode);
  // Finishes every ticket and waits until every caller's stream has passed its waits on the flag,
  // so the flag's memory outlives every read the device makes of it.
  ~StreamHold();
  StreamHold(const StreamHold&) = delete;
  StreamHold& operator=(const StreamHold&) = delete;

  // On the caller's thread, current device = the hold's: records the stream's position and
  // enqueues the hold (a host function or a wait on the flag).
  std::shared_ptr<CudaTicket> enqueue(cudaStream_t caller);
  StreamCompletion mode() const { return mode_; }

 private:
  void enqueue_gate(CudaTicket& t, cudaStream_t caller);
  void enqueue_wait(CudaTicket& t, cudaStream_t caller);
  void note_wait(cudaStream_t caller);  // remembers where the caller's stream passes the wait
  int device_;
  StreamCompletion mode_;
  std::shared_ptr<StreamFlag> flag_;  // stream_wait only
  std::mutex mutex_;
  std::vector<cudaEvent_t> pending_;  // recorded after waits the device may not have passed yet
  std::vector<cudaEvent_t> spare_;    // passed; reused
};

}  // namespace hfreduce::copy
