// The NCCL backend of ddp_bench (GPU builds): ncclAllReduce of each bucket on the engine's
// communication stream, which first waits for the gradients on the compute stream (as PyTorch
// DDP does). Without GPU compute it skips (exit 77) with one line.
#include <stdexcept>
#include <vector>

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nccl.h>

#include "allreduce.h"
#include "compute.h"
#include "ffb/error.h"

namespace ffb::ddp {

namespace {

void ckn(ncclResult_t r, const char* what) {
  if (r != ncclSuccess)
    throw std::runtime_error(fmt::format("{}: {}", what, ncclGetErrorString(r)));
}

class NcclAllreduce final : public GradientAllreduce {
 public:
  std::string name() const override { return "nccl"; }

  void setup(MPI_Comm comm, const Topology& topo, ComputeEngine& compute) override {
    if (!compute.device_memory())
      throw SkipError(
          "--backend nccl: needs GPU compute (--compute cublas on a GPU); no GPU compute here");
    compute_ = &compute;
    stream_ = static_cast<cudaStream_t>(compute.comm_stream());
    nodes_ = topo.nnodes();
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    ncclUniqueId id{};
    if (rank == 0) ckn(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, comm);
    ckn(ncclCommInitRank(&nccl_, size, id, rank), "ncclCommInitRank");
  }

  void teardown() override {
    if (nccl_ != nullptr) ncclCommDestroy(nccl_);
    nccl_ = nullptr;
    for (auto e : events_) cudaEventDestroy(e);
    events_.clear();
  }

  int nodes() const override { return nodes_; }

  void start(int, const void* send, void* recv, std::size_t count, DataType t) override {
    ncclDataType_t nt = ncclFloat32;
    if (t == DataType::bf16)
      nt = ncclBfloat16;
    else if (t == DataType::f16)
      nt = ncclFloat16;
    else if (t != DataType::f32)
      throw UsageError("--dtype: the NCCL backend takes float, bfloat16 or half");
    compute_->stream_wait(stream_, compute_->stream());
    ckn(ncclAllReduce(send, recv, count, nt, ncclSum, nccl_, stream_), "ncclAllReduce");
    if (started_ >= events_.size()) {
      cudaEvent_t e = nullptr;
      if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess)
        throw std::runtime_error("cudaEventCreate failed");
      events_.push_back(e);
    }
    cudaEventRecord(events_[started_++], stream_);
  }

  int completed() override {
    while (done_ < started_ && cudaEventQuery(events_[done_]) == cudaSuccess) ++done_;
    return static_cast<int>(done_);
  }

  void wait_all() override {
    compute_->stream_sync(stream_);
    started_ = done_ = 0;
  }

  void describe(RunRecord& run) const override {
    int v = 0;
    ncclGetVersion(&v);
    run.attrs["nccl_version"] = static_cast<std::int64_t>(v);
  }

 private:
  ComputeEngine* compute_ = nullptr;
  cudaStream_t stream_ = nullptr;
  ncclComm_t nccl_ = nullptr;
  std::vector<cudaEvent_t> events_;  // one per started bucket, recorded after its allreduce
  std::size_t started_ = 0, done_ = 0;
  int nodes_ = 1;
};

}  // namespace

bool built_with_nccl() { return true; }
std::unique_ptr<GradientAllreduce> make_nccl() { return std::make_unique<NcclAllreduce>(); }

}  // namespace ffb::ddp
