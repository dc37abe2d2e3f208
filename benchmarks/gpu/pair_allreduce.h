// HFReduce's NVLink-pair variant (fire-flyer.md section 3) on top of the HFReduce library.
//
// Local ranks (2k, 2k+1) of a node form a pair whose GPUs reach each other peer-to-peer. Per call:
//   1. reduce-scatter inside the pair over the link: position 0 ends with op(a, b) of the first
//      half of the message, position 1 with the second half (each GPU reads its partner's half
//      through CUDA IPC; the pair combine is a small elementwise kernel);
//   2. the host stage: each GPU hands only its half to HFReduce, over a communicator of the ranks
//      with the same position (the CPU stage itself is unchanged: device-to-host copy engine
//      copies, CPU reduce, double binary tree between nodes, host-to-device copies);
//   3. allgather inside the pair over the link (each GPU copies its partner's reduced half).
// Host memory traffic per node drops from about 24 S to about 16 S (docs/gpu.md).
//
// When the pairs cannot be formed (odd rank count per node, ranks sharing a GPU, no peer access),
// every rank falls back to the plain device path and `fallback_reason()` says why. PairMode::force
// also pairs two ranks on one GPU (the "link" is then the GPU's own memory), which lets single-GPU
// machines test the whole path.
//
// Blocking: the call synchronises `stream` first and returns when the result is in recv.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include <cuda_runtime.h>
#include <mpi.h>

#include "gpu_logic.h"
#include "hfreduce/hfreduce.h"

namespace ffb::gpu {

class PairAllreduce {
 public:
  // Collective over comm. `options.device_buffers` is forced on; `device` is this rank's GPU.
  PairAllreduce(MPI_Comm comm, hfreduce::Options options, PairMode mode, int device);
  ~PairAllreduce();
  PairAllreduce(const PairAllreduce&) = delete;
  PairAllreduce& operator=(const PairAllreduce&) = delete;

  void allreduce(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op,
                 cudaStream_t stream = nullptr);

  bool paired() const { return paired_; }
  const std::string& fallback_reason() const { return reason_; }
  int partner_rank() const { return partner_rank_; }  // world rank of the partner, -1 if unpaired
  hfreduce::Communicator& host_stage() { return *hf_; }
  // Stage times of the last call (us, this rank): pair reduce-scatter, host stage, pair allgather.
  double last_scatter_us() const { return scatter_us_; }
  double last_host_us() const { return host_us_; }
  double last_gather_us() const { return gather_us_; }

 private:
  void ensure_staging(std::size_t bytes);
  void pair_barrier();

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm pair_comm_ = MPI_COMM_NULL;  // the two ranks of a pair
  MPI_Comm half_comm_ = MPI_COMM_NULL;  // ranks of one position (paired) or all ranks (fallback)
  int device_ = 0;
  int size_ = 1;
  bool paired_ = false;
  int position_ = 0;
  int partner_rank_ = -1;
  std::string reason_;
  std::unique_ptr<hfreduce::Communicator> hf_;
  cudaStream_t stream_ = nullptr;  // private stream for the pair steps

  // IPC-shared staging buffer: each rank's own, and its partner's mapped here.
  void* staging_ = nullptr;
  std::size_t staging_bytes_ = 0;
  void* peer_staging_ = nullptr;
  double scatter_us_ = 0, host_us_ = 0, gather_us_ = 0;
};

}  // namespace ffb::gpu
