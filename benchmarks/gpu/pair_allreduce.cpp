#include "pair_allreduce.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include <fmt/format.h>

#include "ffb/mpi_env.h"
#include "gpu_kernels.h"
#include "gpu_util.h"

namespace ffb::gpu {

namespace {

using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

bool peer_access(const std::string& a, const std::string& b) {
  int da = -1, db = -1;
  if (cudaDeviceGetByPCIBusId(&da, a.c_str()) != cudaSuccess ||
      cudaDeviceGetByPCIBusId(&db, b.c_str()) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;  // the partner's GPU is not visible to this process
  }
  int ok = 0;
  if (cudaDeviceCanAccessPeer(&ok, da, db) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return ok != 0;
}

}  // namespace

PairAllreduce::PairAllreduce(MPI_Comm comm, hfreduce::Options options, PairMode mode, int device)
    : device_(device) {
  options.device_buffers = true;
  options.cuda_device = device;
  MPI_Comm_dup(comm, &comm_);
  int rank = 0;
  MPI_Comm_rank(comm_, &rank);
  MPI_Comm_size(comm_, &size_);
  check(cudaSetDevice(device_), "cudaSetDevice");

  // The node as HFReduce will see it (--ranks-per-node emulates nodes).
  MPI_Comm node = MPI_COMM_NULL;
  if (options.ranks_per_node > 0)
    MPI_Comm_split(comm_, rank / options.ranks_per_node, rank, &node);
  else
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  int local = 0;
  MPI_Comm_rank(node, &local);
  const auto buses = allgather_strings(node, pci_bus_id(device_));
  const auto world_of_local = allgather_strings(node, std::to_string(rank));
  MPI_Comm_free(&node);

  PairPlan plan;
  if (mode == PairMode::off)
    plan.reason = "--nvlink-pairs off";
  else
    plan = plan_pair(local, buses, peer_access, mode == PairMode::force);

  // All ranks agree: the first failing rank's reason is everybody's.
  struct {
    int bad;
    int rank;
  } mine{plan.ok ? 0 : 1, rank}, first{0, 0};
  MPI_Allreduce(&mine, &first, 1, MPI_2INT, MPI_MAXLOC, comm_);
  paired_ = first.bad == 0;
  if (!paired_) {
    std::vector<char> text(512, 0);
    if (rank == first.rank)
      std::copy_n(plan.reason.begin(), std::min<std::size_t>(plan.reason.size(), 511),
                  text.begin());
    MPI_Bcast(text.data(), 512, MPI_CHAR, first.rank, comm_);
    reason_ = text.data();
    MPI_Comm_dup(comm_, &half_comm_);
  } else {
    position_ = plan.position;
    partner_rank_ = std::stoi(world_of_local[static_cast<std::size_t>(plan.partner_local)]);
    MPI_Comm_split(comm_, std::min(rank, partner_rank_), rank, &pair_comm_);
    MPI_Comm_split(comm_, position_, rank, &half_comm_);
    if (options.ranks_per_node > 0) options.ranks_per_node /= 2;
  }
  hf_ = std::make_unique<hfreduce::Communicator>(half_comm_, options);
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
}

PairAllreduce::~PairAllreduce() {
  (void)cudaSetDevice(device_);
  if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
  if (peer_staging_ != nullptr) (void)cudaIpcCloseMemHandle(peer_staging_);
  if (pair_comm_ != MPI_COMM_NULL) MPI_Barrier(pair_comm_);  // partner closed its mapping of ours
  if (staging_ != nullptr) (void)cudaFree(staging_);
  if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  hf_.reset();
  if (pair_comm_ != MPI_COMM_NULL) MPI_Comm_free(&pair_comm_);
  if (half_comm_ != MPI_COMM_NULL) MPI_Comm_free(&half_comm_);
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void PairAllreduce::pair_barrier() { MPI_Barrier(pair_comm_); }

void PairAllreduce::ensure_staging(std::size_t bytes) {
  // Both partners ask for the same size (the first half's), so both grow together.
  if (bytes <= staging_bytes_ && staging_ != nullptr) return;
  std::size_t want = 1 << 20;
  while (want < bytes) want *= 2;
  if (peer_staging_ != nullptr) {
    check(cudaIpcCloseMemHandle(peer_staging_), "cudaIpcCloseMemHandle");
    peer_staging_ = nullptr;
  }
  pair_barrier();  // the partner no longer maps our old buffer
  if (staging_ != nullptr) check(cudaFree(staging_), "cudaFree");
  staging_ = nullptr;
  check(cudaMalloc(&staging_, want), fmt::format("cudaMalloc({} B) for the pair staging", want));
  staging_bytes_ = want;
  cudaIpcMemHandle_t mine{}, theirs{};
  check(cudaIpcGetMemHandle(&mine, staging_), "cudaIpcGetMemHandle");
  int me = 0;
  MPI_Comm_rank(pair_comm_, &me);
  const int peer = 1 - me;
  MPI_Sendrecv(&mine, sizeof(mine), MPI_BYTE, peer, 8, &theirs, sizeof(theirs), MPI_BYTE, peer, 8,
               pair_comm_, MPI_STATUS_IGNORE);
  check(cudaIpcOpenMemHandle(&peer_staging_, theirs, cudaIpcMemLazyEnablePeerAccess),
        "cudaIpcOpenMemHandle (the partner's staging buffer)");
}

void PairAllreduce::allreduce(const void* send, void* recv, std::size_t count, DataType t,
                              ReduceOp op, cudaStream_t stream) {
  check(cudaSetDevice(device_), "cudaSetDevice");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (caller's stream)");
  if (!paired_) {
    const auto t0 = Clock::now();
    hf_->allreduce(send, recv, count, t, op);
    host_us_ = us_since(t0);
    scatter_us_ = gather_us_ = 0;
    return;
  }
  const std::size_t es = size_of(t);
  const Range mine = pair_half(count, position_);
  const Range other = pair_half(count, 1 - position_);
  const auto* s = static_cast<const char*>(send);
  auto* r = static_cast<char*>(recv);
  const ReduceOp pair_op = op == ReduceOp::avg ? ReduceOp::sum : op;

  // 1. Reduce-scatter over the link: stage the partner's half of our data, then combine ours
  //    with what the partner staged for us.
  auto t0 = Clock::now();
  ensure_staging(pair_half(count, 0).size() * es);
  check(cudaMemcpyAsync(staging_, s + other.begin * es, other.size() * es, cudaMemcpyDeviceToDevice,
                        stream_),
        "cudaMemcpyAsync (pair staging)");
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  pair_barrier();
  // Inputs in rank order (position 0 first), as the host path combines them: max/min keep the
  // earlier of two equal values (+0 and -0), so the order decides the bits.
  const void* own = s + mine.begin * es;
  pair_combine(t, pair_op, position_ == 0 ? own : peer_staging_,
               position_ == 0 ? peer_staging_ : own, r + mine.begin * es, mine.size(), stream_);
  check(cudaStreamSynchronize(stream_), "pair reduce-scatter (cudaStreamSynchronize)");
  pair_barrier();  // the partner has read our staging
  scatter_us_ = us_since(t0);

  // 2. The host stage on our half only.
  t0 = Clock::now();
  hf_->allreduce(r + mine.begin * es, r + mine.begin * es, mine.size(), t, pair_op);
  host_us_ = us_since(t0);

  // 3. Allgather over the link.
  t0 = Clock::now();
  check(cudaMemcpyAsync(staging_, r + mine.begin * es, mine.size() * es, cudaMemcpyDeviceToDevice,
                        stream_),
        "cudaMemcpyAsync (pair staging)");
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  pair_barrier();
  check(cudaMemcpyAsync(r + other.begin * es, peer_staging_, other.size() * es,
                        cudaMemcpyDeviceToDevice, stream_),
        "cudaMemcpyAsync (pair allgather)");
  if (op == ReduceOp::avg) divide_by(t, recv, count, size_, stream_);
  check(cudaStreamSynchronize(stream_), "pair allgather (cudaStreamSynchronize)");
  pair_barrier();  // the partner has read our staging before the next call overwrites it
  gather_us_ = us_since(t0);
}

}  // namespace ffb::gpu
