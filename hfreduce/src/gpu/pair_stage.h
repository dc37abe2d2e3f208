// NVLink pairs (Options::nvlink_pairs; docs/gpu.md, "NVLink pairs"): local ranks 2k and 2k+1 of a
// node form a pair whose GPUs reach each other peer-to-peer. Per allreduce:
//   1. reduce-scatter inside the pair over the link: position 0 ends with op(a, b) of the first
//      half of the message, position 1 with the second half (each GPU reads its partner's half
//      from an IPC-shared staging buffer; pair_combine, position 0's value first);
//   2. the host stage: each GPU hands only its half to an inner HFReduce communicator over the
//      ranks of its position (device-to-host copies, CPU reduce, the tree or ring between nodes,
//      host-to-device copies: the plain device path on half the data);
//   3. allgather inside the pair over the link (each GPU copies its partner's reduced half).
// avg runs as sum and divides once at the end. Host memory traffic per node drops from about
// 24 S to about 16 S.
//
// This header is CUDA-free: the communicator (communicator.cpp) builds without the toolkit too.
// Internal to libhfreduce.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <string>

#include <mpi.h>

#include "hfreduce/hfreduce.h"
#include "pipeline.h"

namespace hfreduce::gpu {

// The inner host stage as the pair stage uses it: one synchronous operation (the inner
// communicator's Impl::execute, with the pair stage's stream in OpDesc::stream) and its stage
// times; `owner` keeps the inner communicator alive as long as the pair stage.
struct HostStage {
  std::function<void(const OpDesc&)> execute;
  std::function<const StageTimes&()> times;
  std::shared_ptr<void> owner;
};

class PairStage {
 public:
  virtual ~PairStage() = default;
  // Whether allreduces go through the pairs; when they do not, why (one line naming the ranks and
  // GPUs; the programs print it, the library does not).
  virtual bool active() const = 0;
  virtual const std::string& fallback_reason() const = 0;
  // Active only: the ranks of this rank's position (the inner communicator's), and the options of
  // the inner communicator over them (pairs off, ranks_per_node halved).
  virtual MPI_Comm position_comm() const = 0;
  virtual Options host_stage_options() const = 0;
  virtual void attach(HostStage host) = 0;
  // Synchronous allreduce on the caller's thread, after every earlier asynchronous one: waits for
  // work queued on the legacy default stream, returns with the result in recv.
  virtual void allreduce(const OpDesc& op) = 0;
  // Asynchronous allreduce on the stage's worker thread: on the caller's thread it captures
  // op.stream's position and holds the stream until the operation is over (as the plain path
  // does, Options::stream_completion); `done` is called on the worker with the outcome.
  virtual void submit(OpDesc op, std::function<void(std::exception_ptr)> done) = 0;
  // The last pair operation: the inner host stage's times plus the pair's own steps.
  virtual const StageTimes& last_stage_times() const = 0;
};

// nullptr when options.nvlink_pairs is off (or libhfreduce was built without CUDA: then device
// buffers are refused anyway). Otherwise a stage that is active or says why not; collective over
// `world` (every rank reaches the same verdict). `node_comm` and `layout` are the communicator's.
std::unique_ptr<PairStage> make_pair_stage(MPI_Comm world, MPI_Comm node_comm, const Layout& layout,
                                           const Options& options);

}  // namespace hfreduce::gpu
