// The NVLink-pair stage (pair_stage.h) on the CUDA runtime: planning (peer access, the pairs and
// the communicators of each position), the IPC-shared staging buffers, the pair's reduce-scatter
// and allgather on a private stream, and the worker thread of the asynchronous API.
#include "gpu/pair_stage.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "copy/cuda_completion.h"
#include "copy/cuda_stage_logic.h"
#include "copy/cuda_util.h"
#include "gpu/pair_kernels.h"
#include "gpu/pair_logic.h"
#include "reduce_kernels.h"

namespace hfreduce::gpu {

namespace {

using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

std::string bus_id_of(int device) {
  char buf[32] = {};
  cuda::check(cudaDeviceGetPCIBusId(buf, sizeof(buf), device), "cudaDeviceGetPCIBusId", device);
  return buf;
}

// Every rank's string in rank order (fixed-size records: bus ids and rank numbers are short).
std::vector<std::string> allgather_strings(MPI_Comm comm, const std::string& mine) {
  constexpr int kLen = 64;
  int n = 1;
  MPI_Comm_size(comm, &n);
  std::vector<char> send(kLen, 0), all(static_cast<std::size_t>(n) * kLen, 0);
  std::copy_n(mine.begin(), std::min<std::size_t>(mine.size(), kLen - 1), send.begin());
  MPI_Allgather(send.data(), kLen, MPI_CHAR, all.data(), kLen, MPI_CHAR, comm);
  std::vector<std::string> out;
  for (int r = 0; r < n; ++r) out.emplace_back(all.data() + static_cast<std::size_t>(r) * kLen);
  return out;
}

bool peer_access(const std::string& a, const std::string& b) {
  int da = -1, db = -1, ok = 0;
  if (cudaDeviceGetByPCIBusId(&da, a.c_str()) != cudaSuccess ||
      cudaDeviceGetByPCIBusId(&db, b.c_str()) != cudaSuccess ||
      cudaDeviceCanAccessPeer(&ok, da, db) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;  // the partner's GPU is not visible to this process
  }
  return ok != 0;
}

// Every rank of `world` gets the first failing rank's reason ("" when every rank can pair).
std::string agree_on_reason(MPI_Comm world, int rank, const PairPlan& plan) {
  struct {
    int bad;
    int rank;
  } mine{plan.ok ? 0 : 1, rank}, first{0, 0};
  MPI_Allreduce(&mine, &first, 1, MPI_2INT, MPI_MAXLOC, world);
  if (first.bad == 0) return "";
  std::vector<char> text(512, 0);
  if (rank == first.rank)
    std::copy_n(plan.reason.begin(), std::min<std::size_t>(plan.reason.size(), 511), text.begin());
  MPI_Bcast(text.data(), 512, MPI_CHAR, first.rank, world);
  return "rank " + std::to_string(first.rank) + ": " + text.data();
}

// The library's boundary promise: what the standard library throws leaves as hfreduce::Error.
template <class F>
void as_error(const std::string& where, F&& f) {
  try {
    f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(Status::internal_error, "hfreduce: " + where + ": " + e.what());
  }
}

struct PairJob {
  OpDesc op;
  std::function<void(std::exception_ptr)> done;
};

class NvlinkPairStage final : public PairStage {
 public:
  NvlinkPairStage(MPI_Comm world, MPI_Comm node_comm, const Layout& layout, const Options& options);
  ~NvlinkPairStage() override;
  NvlinkPairStage(const NvlinkPairStage&) = delete;
  NvlinkPairStage& operator=(const NvlinkPairStage&) = delete;

  bool active() const override { return active_; }
  const std::string& fallback_reason() const override { return reason_; }
  MPI_Comm position_comm() const override { return position_comm_; }
  Options host_stage_options() const override;
  void attach(HostStage host) override { host_ = std::move(host); }
  void allreduce(const OpDesc& op) override;
  void submit(OpDesc op, std::function<void(std::exception_ptr)> done) override;
  const StageTimes& last_stage_times() const override { return times_; }

 private:
  void plan(MPI_Comm world, MPI_Comm node_comm, const Layout& layout);
  void validate(const OpDesc& op) const;
  void run(const OpDesc& op);
  void scatter(const OpDesc& op);
  void gather(const OpDesc& op);
  void reserve_staging(const OpDesc& op);
  void grow_staging(std::size_t bytes);
  void pair_barrier(const char* step);
  void sync(const char* what);
  void worker_loop();
  std::string where() const;

  Options options_;
  int device_ = 0, rank_ = 0, world_size_ = 1;
  bool active_ = false;
  std::string reason_;
  int position_ = 0, partner_rank_ = -1;
  MPI_Comm pair_comm_ = MPI_COMM_NULL, position_comm_ = MPI_COMM_NULL;
  std::unique_ptr<cuda::StreamHandle> stream_;  // the pair's steps
  std::unique_ptr<cuda::EventHandle> start_;    // synchronous calls: the legacy stream's position
  std::unique_ptr<copy::StreamHold> hold_;      // asynchronous calls: the caller's stream
  cuda::DeviceBuffer staging_;                  // ours, IPC-shared with the partner
  void* peer_staging_ = nullptr;                // the partner's, mapped here
  std::atomic<std::size_t> staging_capacity_{0};
  HostStage host_;
  StageTimes times_;

  std::mutex run_mutex_;  // one pair operation at a time (caller's thread or worker)
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<PairJob> queue_;
  bool busy_ = false, stop_ = false;
  std::thread worker_;  // started by the first submit()
};

NvlinkPairStage::NvlinkPairStage(MPI_Comm world, MPI_Comm node_comm, const Layout& layout,
                                 const Options& options)
    : options_(options), rank_(layout.rank), world_size_(layout.size) {
  int count = 0;
  cuda::check(cudaGetDeviceCount(&count), "cudaGetDeviceCount", -1);
  device_ = copy::choose_device(
      options_.cuda_device >= 0 ? options_.cuda_device : layout.local_rank, count);
  cuda::DeviceScope scope(device_);
  plan(world, node_comm, layout);
  if (!active_) return;
  stream_ = std::make_unique<cuda::StreamHandle>(device_);
  start_ = std::make_unique<cuda::EventHandle>(device_);
  hold_ = std::make_unique<copy::StreamHold>(device_, options_.stream_completion);
}

void NvlinkPairStage::plan(MPI_Comm world, MPI_Comm node_comm, const Layout& layout) {
  const auto buses = allgather_strings(node_comm, bus_id_of(device_));
  const auto world_of_local = allgather_strings(node_comm, std::to_string(layout.rank));
  const PairPlan mine =
      plan_pair(layout.local_rank, buses, peer_access, options_.nvlink_pairs == NvlinkPairs::force);
  reason_ = agree_on_reason(world, layout.rank, mine);
  if (!reason_.empty()) return;
  position_ = mine.position;
  partner_rank_ = std::stoi(world_of_local[static_cast<std::size_t>(mine.partner_local)]);
  MPI_Comm_split(world, std::min(layout.rank, partner_rank_), layout.rank, &pair_comm_);
  MPI_Comm_split(world, position_, layout.rank, &position_comm_);
  active_ = true;
}

NvlinkPairStage::~NvlinkPairStage() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();  // runs what is queued first
  host_ = HostStage{};                     // the inner communicator
  if (active_) {
    try {
      cuda::DeviceScope scope(device_);
      (void)cudaStreamSynchronize(stream_->get());
      if (peer_staging_ != nullptr) (void)cudaIpcCloseMemHandle(peer_staging_);
      MPI_Barrier(pair_comm_);  // the partner has closed its mapping of our staging
      staging_ = cuda::DeviceBuffer();
      hold_.reset();
      start_.reset();
      stream_.reset();
    } catch (...) {
      // Tear-down never throws; the device is gone or broken, nothing is left to release.
    }
    (void)cudaGetLastError();
  }
  if (pair_comm_ != MPI_COMM_NULL) MPI_Comm_free(&pair_comm_);
  if (position_comm_ != MPI_COMM_NULL) MPI_Comm_free(&position_comm_);
}

Options NvlinkPairStage::host_stage_options() const {
  Options o = options_;
  o.nvlink_pairs = NvlinkPairs::off;
  o.stream_completion = StreamCompletion::host_func;  // its operations are synchronous
  o.cuda_device = device_;
  if (o.ranks_per_node > 0) o.ranks_per_node /= 2;  // nodes keep their pair positions
  return o;
}

std::string NvlinkPairStage::where() const {
  return "rank " + std::to_string(rank_) + " (NVLink pair with rank " +
         std::to_string(partner_rank_) + ", position " + std::to_string(position_) + ")";
}

void NvlinkPairStage::validate(const OpDesc& op) const {
  if (!kernels::supported(op.type, op.op))
    throw Error(Status::invalid_argument, "hfreduce: unsupported type/op combination");
  if (op.count > 0 && (op.send == nullptr || op.recv == nullptr))
    throw Error(Status::invalid_argument, "hfreduce: null buffer with a non-zero count");
}

void NvlinkPairStage::allreduce(const OpDesc& op) {
  validate(op);
  {  // operations complete in the order they were started
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
  }
  as_error(where(), [&] {
    reserve_staging(op);
    run(op);
  });
}

void NvlinkPairStage::submit(OpDesc op, std::function<void(std::exception_ptr)> done) {
  validate(op);
  as_error(where(), [&] { reserve_staging(op); });
  std::lock_guard lock(mutex_);  // queue order = ticket order = stream order
  {
    cuda::DeviceScope scope(device_);
    op.ticket = hold_->enqueue(static_cast<cudaStream_t>(op.stream));
  }
  queue_.push_back(PairJob{std::move(op), std::move(done)});
  if (!worker_.joinable()) worker_ = std::thread([this] { worker_loop(); });
  cv_.notify_all();
}

void NvlinkPairStage::worker_loop() {
  while (true) {
    PairJob job;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop requested and nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    std::exception_ptr err;
    try {
      as_error(where(), [&] { run(job.op); });
    } catch (...) {
      err = std::current_exception();
    }
    job.op.ticket.reset();  // releases the caller's stream (run() did, unless it failed early)
    job.done(err);
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
    }
    cv_.notify_all();
  }
}

// One pair operation. The private stream first waits for the caller's stream (its position at
// queue time for asynchronous calls, the legacy stream's now for synchronous ones); on return the
// result is in recv and, for asynchronous calls, the caller's stream is released.
void NvlinkPairStage::run(const OpDesc& op) {
  std::lock_guard lock(run_mutex_);
  cuda::DeviceScope scope(device_);
  const cudaStream_t s = stream_->get();
  if (op.ticket) {
    op.ticket->order_after_start(s);
  } else {
    cuda::check(cudaEventRecord(start_->get(), static_cast<cudaStream_t>(op.stream)),
                "cudaEventRecord (caller's stream)", device_);
    cuda::check(cudaStreamWaitEvent(s, start_->get(), 0), "cudaStreamWaitEvent", device_);
  }
  StageTimes t;
  try {
    if (op.count > 0) {
      auto t0 = Clock::now();
      scatter(op);
      const double scatter_us = us_since(t0);
      const std::size_t es = ffb::size_of(op.type);
      const Range mine = pair_half(op.count, position_);
      char* half = static_cast<char*>(op.recv) + mine.begin * es;
      const ReduceOp host_op = op.op == ReduceOp::avg ? ReduceOp::sum : op.op;
      host_.execute(OpDesc{OpKind::allreduce, half, half, mine.size(), op.type, host_op, 0, s});
      t = host_.times();
      t0 = Clock::now();
      gather(op);
      t.pair_scatter_us = scatter_us;
      t.pair_gather_us = us_since(t0);
    }
    sync("the end of the pair operation (cudaStreamSynchronize)");
  } catch (...) {
    (void)cudaStreamSynchronize(s);  // nothing of this operation may still run when it is released
    (void)cudaGetLastError();
    throw;
  }
  times_ = t;
  if (op.ticket) op.ticket->release();
}

// Reduce-scatter over the link: stage the partner's half of our data, then combine our half with
// what the partner staged for us (position 0's value first, as the host path orders its inputs).
void NvlinkPairStage::scatter(const OpDesc& op) {
  const std::size_t es = ffb::size_of(op.type);
  const Range mine = pair_half(op.count, position_);
  const Range other = pair_half(op.count, 1 - position_);
  const cudaStream_t s = stream_->get();
  const auto* send = static_cast<const char*>(op.send);
  cuda::check(cudaMemcpyAsync(staging_.get(), send + other.begin * es, other.size() * es,
                              cudaMemcpyDeviceToDevice, s),
              "cudaMemcpyAsync (pair staging)", device_);
  sync("the pair staging (cudaStreamSynchronize)");
  pair_barrier("the pair reduce-scatter");
  const void* own = send + mine.begin * es;
  const ReduceOp pair_op = op.op == ReduceOp::avg ? ReduceOp::sum : op.op;
  pair_combine(op.type, pair_op, position_ == 0 ? own : peer_staging_,
               position_ == 0 ? peer_staging_ : own, static_cast<char*>(op.recv) + mine.begin * es,
               mine.size(), s, device_);
  sync("the pair reduce-scatter (cudaStreamSynchronize)");
  pair_barrier("the end of the pair reduce-scatter");  // the partner has read our staging
}

// Allgather over the link: stage our reduced half, copy the partner's into the other half.
void NvlinkPairStage::gather(const OpDesc& op) {
  const std::size_t es = ffb::size_of(op.type);
  const Range mine = pair_half(op.count, position_);
  const Range other = pair_half(op.count, 1 - position_);
  const cudaStream_t s = stream_->get();
  auto* recv = static_cast<char*>(op.recv);
  cuda::check(cudaMemcpyAsync(staging_.get(), recv + mine.begin * es, mine.size() * es,
                              cudaMemcpyDeviceToDevice, s),
              "cudaMemcpyAsync (pair staging)", device_);
  sync("the pair staging (cudaStreamSynchronize)");
  pair_barrier("the pair allgather");
  cuda::check(cudaMemcpyAsync(recv + other.begin * es, peer_staging_, other.size() * es,
                              cudaMemcpyDeviceToDevice, s),
              "cudaMemcpyAsync (pair allgather)", device_);
  if (op.op == ReduceOp::avg) divide_by(op.type, recv, op.count, world_size_, s, device_);
  sync("the pair allgather (cudaStreamSynchronize)");
  pair_barrier("the end of the pair allgather");  // before the next operation reuses the staging
}

// The staging buffers grow on the caller's thread, before the operation holds the caller's stream
// and while no earlier one is in flight: cudaFree (and IPC mapping) may wait for the whole device,
// which would never finish while a stream waits for this stage. Collective in the pair: both
// partners start the same operations, so they grow together (to the first half's size).
void NvlinkPairStage::reserve_staging(const OpDesc& op) {
  const std::size_t bytes = pair_half(op.count, 0).size() * ffb::size_of(op.type);
  if (bytes <= staging_capacity_.load()) return;
  {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
  }
  std::lock_guard run(run_mutex_);
  if (bytes <= staging_capacity_.load()) return;  // another thread grew it meanwhile
  cuda::DeviceScope scope(device_);
  grow_staging(bytes);
  staging_capacity_ = staging_.size();
}

void NvlinkPairStage::grow_staging(std::size_t bytes) {
  std::size_t want = std::size_t{1} << 20;
  while (want < bytes) want *= 2;
  if (peer_staging_ != nullptr) {
    cuda::check(cudaIpcCloseMemHandle(peer_staging_), "cudaIpcCloseMemHandle", device_);
    peer_staging_ = nullptr;
  }
  pair_barrier("the pair staging exchange");  // the partner no longer maps our old buffer
  staging_ = cuda::DeviceBuffer();
  staging_ = cuda::DeviceBuffer(want, device_);
  cudaIpcMemHandle_t mine{}, theirs{};
  cuda::check(cudaIpcGetMemHandle(&mine, staging_.get()), "cudaIpcGetMemHandle", device_);
  int me = 0;
  MPI_Comm_rank(pair_comm_, &me);
  MPI_Sendrecv(&mine, sizeof(mine), MPI_BYTE, 1 - me, 8, &theirs, sizeof(theirs), MPI_BYTE, 1 - me,
               8, pair_comm_, MPI_STATUS_IGNORE);
  cuda::check(cudaIpcOpenMemHandle(&peer_staging_, theirs, cudaIpcMemLazyEnablePeerAccess),
              "cudaIpcOpenMemHandle (the partner's staging buffer)", device_);
}

// A barrier of the two partners that gives up after Options::timeout_s, naming the step.
void NvlinkPairStage::pair_barrier(const char* step) {
  MPI_Request req = MPI_REQUEST_NULL;
  MPI_Ibarrier(pair_comm_, &req);
  const auto deadline = Clock::now() + std::chrono::duration<double>(options_.timeout_s);
  for (int flag = 0;;) {
    MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
    if (flag) return;
    if (Clock::now() > deadline)
      throw Error(Status::timeout, "hfreduce: " + where() + " timed out after " +
                                       std::to_string(options_.timeout_s) +
                                       " s waiting for its partner at " + step);
    std::this_thread::yield();
  }
}

void NvlinkPairStage::sync(const char* what) {
  cuda::check(cudaStreamSynchronize(stream_->get()), what, device_);
}

}  // namespace

std::unique_ptr<PairStage> make_pair_stage(MPI_Comm world, MPI_Comm node_comm, const Layout& layout,
                                           const Options& options) {
  if (options.nvlink_pairs == NvlinkPairs::off || !options.device_buffers) return nullptr;
  return std::make_unique<NvlinkPairStage>(world, node_comm, layout, options);
}

}  // namespace hfreduce::gpu
