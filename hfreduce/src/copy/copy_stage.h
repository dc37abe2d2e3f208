// Copy-in and copy-out stages. The host path copies with memcpy; the GPU path (cuda_copy_stage.cu)
// replaces them with chunked cudaMemcpyAsync on a copy engine, completion marked by CUDA events.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>

#include "copy/stream_copy.h"
#include "hfreduce/hfreduce.h"

namespace hfreduce::copy {

// Stream bookkeeping of one queued asynchronous operation (GPU stage: the position of the caller's
// stream when the operation was queued, and what holds the stream until the operation is complete:
// a gate a host function waits on, or a ticket value the stream waits for; see
// Options::stream_completion). Destroying a ticket whose operation never ran releases the stream.
class OpTicket {
 public:
  virtual ~OpTicket() = default;
  // Makes `stream` (a cudaStream_t of the stage's device) wait for the caller's stream position at
  // queue time: work queued there before the operation finishes first.
  virtual void order_after_start(void* /*stream*/) {}
  // The operation is over (complete, failed or dropped): work queued on the caller's stream after
  // it may run. Idempotent, never throws.
  virtual void release() noexcept {}
};

class CopyStage {
 public:
  virtual ~CopyStage() = default;
  // Brackets one operation. `stream` is the caller's cudaStream_t (nullptr: default / host): the
  // GPU stage makes its copies wait for work already queued there and makes the stream wait for
  // the copy-out, as NCCL users expect.
  virtual void begin_op(void* /*stream*/) {}
  virtual void end_op() {}
  // Asynchronous operations (allreduce_async with a stream): called on the caller's thread before
  // the operation is queued. The GPU stage records the stream's current position (the copies wait
  // for it) and enqueues a wait on the stream that end_op() releases, so work queued on the stream
  // later sees the result. nullptr: nothing to track (host stage). The ticket travels with the
  // operation and is handed to begin_queued_op() on the progress thread instead of begin_op().
  virtual std::shared_ptr<OpTicket> enqueue(void* /*stream*/) { return nullptr; }
  virtual void begin_queued_op(void* stream, OpTicket* /*ticket*/) { begin_op(stream); }
  // How enqueue() holds the caller's stream (GPU stage; set once, before the first operation).
  // Throws Error(unsupported) with one line when the device cannot do it.
  virtual void set_stream_completion(StreamCompletion /*mode*/) {}
  // Called once with the node's shared segment (the GPU stage pins it with cudaHostRegister).
  virtual void register_host_memory(void* /*base*/, std::size_t /*bytes*/) {}
  // Starts copying `bytes` of the user buffer at `src` (+offset) into host memory `dst`.
  virtual void start_copy_in(void* host_dst, const void* src, std::size_t bytes) = 0;
  // Blocks until every started copy-in has landed in host memory.
  virtual void finish_copy_in() = 0;
  // Copies host memory into the user buffer; complete on return (host) or ordered before
  // finish_copy_out() (device). `streaming`: the data will not be read back soon (large message).
  virtual void copy_out(void* dst, const void* host_src, std::size_t bytes, bool streaming) = 0;
  virtual void finish_copy_out() = 0;
  // Whether the reduce kernel may read the user's send buffer directly (host memory): then a
  // rank's own slice skips the round trip through shared memory.
  virtual bool user_buffer_host_readable() const = 0;
};

class HostCopyStage final : public CopyStage {
 public:
  void start_copy_in(void* host_dst, const void* src, std::size_t bytes) override {
    if (bytes > 0) std::memcpy(host_dst, src, bytes);
  }
  void finish_copy_in() override {}
  void copy_out(void* dst, const void* host_src, std::size_t bytes, bool streaming) override {
    if (streaming)
      stream_copy(dst, host_src, bytes);
    else if (bytes > 0)
      std::memcpy(dst, host_src, bytes);
  }
  void finish_copy_out() override {}
  bool user_buffer_host_readable() const override { return true; }
};

// The copy stage for Options::memory (host memcpy, or CUDA copies when built with CUDA).
// Defined in copy_factory.cpp (host-only builds) or cuda_copy_stage.cu.
std::unique_ptr<CopyStage> make_copy_stage(bool device_buffers, int device);

}  // namespace hfreduce::copy
