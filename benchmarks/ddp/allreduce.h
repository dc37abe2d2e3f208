// Gradient allreduce backends for ddp_bench: each bucket's allreduce is started as soon as the
// bucket is full and the step waits for all of them at its end.
//   hfreduce  HFReduce's asynchronous API (progress thread; host or device buffers)
//   mpi       MPI_Iallreduce; Open MPI progresses a non-blocking collective only inside MPI calls,
//             so the host calls MPI_Testall every --progress-us while compute runs
//   none      compute only (nothing is reduced)
//   nccl      ncclAllReduce on the compute stream's side stream (GPU builds only)
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

#include "ffb/mpi_env.h"
#include "ffb/numeric.h"
#include "ffb/results.h"
#include "hfreduce/hfreduce.h"

namespace ffb::ddp {

class ComputeEngine;

class GradientAllreduce {
 public:
  virtual ~GradientAllreduce() = default;
  virtual std::string name() const = 0;
  virtual bool reduces() const { return true; }  // false for "none"
  // Collective. `compute` tells where gradients live (host or device) and gives the stream.
  virtual void setup(MPI_Comm comm, const Topology& topo, ComputeEngine& compute) = 0;
  virtual void teardown() {}
  virtual int nodes() const = 0;  // nodes as this backend sees them
  // true when the host must call progress() while compute runs (MPI)
  virtual bool needs_progress() const { return false; }
  // Starts bucket `bucket`'s allreduce (sum) of `count` elements: send -> recv.
  virtual void start(int bucket, const void* send, void* recv, std::size_t count, DataType t) = 0;
  virtual void progress() {}
  // Buckets complete so far, counted in start order (non-blocking; for the completion trace).
  virtual int completed() = 0;
  // Returns when every started allreduce is complete (GPU: its result is on the compute stream's
  // way; the step's end synchronises).
  virtual void wait_all() = 0;
  virtual void describe(RunRecord& /*run*/) const {}
};

struct HfreduceSettings {
  hfreduce::Options options;
};

std::unique_ptr<GradientAllreduce> make_none();
std::unique_ptr<GradientAllreduce> make_mpi();
std::unique_ptr<GradientAllreduce> make_hfreduce(const HfreduceSettings& s);
// NCCL (GPU builds): throws SkipError without a GPU or UsageError when built without NCCL.
std::unique_ptr<GradientAllreduce> make_nccl();
bool built_with_nccl();

}  // namespace ffb::ddp
