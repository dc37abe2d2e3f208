// Communicator: node discovery, the shared segment, the per-rank step loop, fallback and async.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <new>
#include <optional>
#include <sched.h>
#include <string>
#include <system_error>

#include "copy/copy_stage.h"
#include "ffb/mpi_types.h"
#include "gpu/pair_stage.h"
#include "hfreduce/hfreduce.h"
#include "inter_node/cost_model.h"
#include "inter_node/link_probe.h"
#include "mpi_fast_path.h"
#include "node/mpi_comm.h"
#include "node/small_allreduce.h"
#include "pipeline.h"
#include "reduce_kernels.h"
#include "slices.h"
#include "transport/mpi_transport.h"

namespace hfreduce {

const char* name_of(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::invalid_argument:
      return "invalid_argument";
    case Status::unsupported:
      return "unsupported";
    case Status::timeout:
      return "timeout";
    case Status::transport_error:
      return "transport_error";
    case Status::system_error:
      return "system_error";
    case Status::internal_error:
      return "internal_error";
  }
  return "?";
}

const char* name_of(InterNode v) {
  switch (v) {
    case InterNode::tree:
      return "tree";
    case InterNode::ring:
      return "ring";
    case InterNode::automatic:
      return "auto";
  }
  return "?";
}

const char* name_of(StreamCompletion v) {
  return v == StreamCompletion::stream_wait ? "stream_wait" : "host_func";
}

const char* name_of(NvlinkPairs v) {
  switch (v) {
    case NvlinkPairs::off:
      return "off";
    case NvlinkPairs::automatic:
      return "auto";
    case NvlinkPairs::force:
      return "force";
  }
  return "?";
}

const char* name_of(SmallPath v) { return v == SmallPath::mpi ? "mpi" : "auto"; }

const char* name_of(Algorithm v) {
  switch (v) {
    case Algorithm::none:
      return "none";
    case Algorithm::mpi:
      return "mpi";
    case Algorithm::shm:
      return "shm";
    case Algorithm::intra_node:
      return "intra-node";
    case Algorithm::tree:
      return "tree";
    case Algorithm::ring:
      return "ring";
  }
  return "?";
}

std::optional<OptionProblem> find_option_problem(const Options& options) {
  const auto problem = [](OptionField field, std::string message) {
    return std::optional<OptionProblem>(OptionProblem{field, "hfreduce: " + std::move(message)});
  };
  if (options.chunk_bytes != 0 &&
      (options.chunk_bytes < kMinChunkBytes || options.chunk_bytes > kMaxChunkBytes))
    return problem(OptionField::chunk_bytes, "chunk_bytes " + std::to_string(options.chunk_bytes) +
                                                 " is outside [4 KiB, 1 GiB] (0: auto)");
  if (options.pipeline_depth != 0 &&
      (options.pipeline_depth < kMinPipelineDepth || options.pipeline_depth > kMaxPipelineDepth))
    return problem(OptionField::pipeline_depth, "pipeline_depth " +
                                                    std::to_string(options.pipeline_depth) +
                                                    " is outside [2, 64] (0: auto)");
  if (options.reduce_threads < 1 || options.reduce_threads > kMaxReduceThreads)
    return problem(
        OptionField::reduce_threads,
        "reduce_threads " + std::to_string(options.reduce_threads) + " is outside [1, 256]");
  if (!(options.timeout_s > 0))
    return problem(OptionField::timeout_s, "timeout_s must be positive");
  if (options.ranks_per_node < 0)
    return problem(OptionField::ranks_per_node, "ranks_per_node must be >= 0");
  if (!(options.link.latency_us >= 0 && options.link.latency_us < 1e7))
    return problem(OptionField::link, "link.latency_us must be >= 0 (0: measure)");
  if (!(options.link.gbps >= 0 && options.link.gbps < 1e6))
    return problem(OptionField::link, "link.gbps must be >= 0 (0: measure)");
  if (options.nvlink_pairs != NvlinkPairs::off && !options.device_buffers)
    return problem(OptionField::nvlink_pairs, "nvlink_pairs needs device_buffers");
  if (options.stream_completion != StreamCompletion::host_func && !options.device_buffers)
    return problem(OptionField::stream_completion, "stream_completion needs device_buffers");
  return std::nullopt;
}

void validate_options(const Options& options) {
  if (auto problem = find_option_problem(options))
    throw Error(Status::invalid_argument, problem->message);
}

struct Request::State {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
};

bool Request::test() {
  if (!state_) return true;
  std::lock_guard lock(state_->mutex);
  if (state_->done && state_->error) std::rethrow_exception(state_->error);
  return state_->done;
}

void Request::wait() {
  if (!state_) return;
  std::unique_lock lock(state_->mutex);
  state_->cv.wait(lock, [this] { return state_->done; });
  if (state_->error) std::rethrow_exception(state_->error);
}

namespace {

std::size_t round_up(std::size_t v, std::size_t m) { return (v + m - 1) / m * m; }

// Messages at least this large stream their copy-out (they do not fit the caches anyway).
constexpr std::size_t kStreamingBytes = 4u << 20;

// The library's boundary promise: whatever the standard library throws inside (threads that
// cannot start, memory that cannot be had) leaves as hfreduce::Error, with `where` in the message.
template <class F>
auto as_hfreduce_error(const std::string& where, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Error(Status::system_error, "hfreduce: " + where + ": out of memory");
  } catch (const std::system_error& e) {
    throw Error(Status::system_error, "hfreduce: " + where + ": " + e.what());
  } catch (const std::exception& e) {
    throw Error(Status::internal_error, "hfreduce: " + where + ": " + e.what());
  }
}

}  // namespace

struct Communicator::Impl {
  Options options;
  LinkModel link;
  Layout layout;
  node::MpiComm world;  // private duplicate: fallback traffic and set-up
  node::MpiComm node_comm;
  std::vector<int> node_of_rank, local_of_rank;
  int thread_level = MPI_THREAD_SINGLE;
  std::unique_ptr<node::SharedSegment> segment;
  SegmentLayout seg;
  std::unique_ptr<NetworkEngine> network;
  std::unique_ptr<ThreadTeam> team;
  std::unique_ptr<copy::CopyStage> copier;
  MpiFastPath fast_path;
  // The shared-memory small path (null across nodes, with small_path mpi or fallback_bytes 0).
  std::unique_ptr<node::SmallAllreduce> small;
  std::uint32_t ticket = 0;     // chunks started so far (same on every rank of the node)
  node::WaitStats wait_policy;  // spin/yield budget, chosen once from ranks per core
  StageTimes times;
  node::WaitStats waits;

  std::mutex exec_mutex;  // one operation at a time on this communicator
  // Async progress thread.
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<std::pair<OpDesc, std::shared_ptr<Request::State>>> queue;
  bool queue_busy = false, stop = false;
  // Queued plus running asynchronous operations: a blocking call with none outstanding (the
  // common case, and the latency path) skips the queue's lock.
  std::atomic<int> outstanding{0};
  std::thread progress;
  // NVLink pairs (Options::nvlink_pairs; gpu/pair_stage.h): null when off. When active, every
  // allreduce goes through it (its own inner communicator over the ranks of this rank's position);
  // reduce and broadcast stay on this communicator.
  std::unique_ptr<gpu::PairStage> pairs;

  Impl(MPI_Comm comm, const Options& opt);
  ~Impl();
  node::MpiComm discover_layout(MPI_Comm comm);
  void resolve_link(transport::Transport* transport);
  void execute(const OpDesc& op);
  void run_pipeline(const OpDesc& op);
  bool try_fallback(const OpDesc& op);
  bool try_small_shm(const OpDesc& op, std::size_t bytes);
  Algorithm inter_node_algorithm(std::size_t bytes) const;
  void progress_loop();
  void wait_for_queue();
  // "rank R (node N, local rank L)", made once: the latency path must not build strings.
  std::string where_;
  const std::string& where() const { return where_; }
};

Communicator::Impl::Impl(MPI_Comm comm, const Options& opt) : options(opt) {
  validate_options(options);
  MPI_Query_thread(&thread_level);
  node::MpiComm leaders = discover_layout(comm);
  // The network thread calls MPI beside the caller's thread.
  if (layout.nnodes > 1 && thread_level < MPI_THREAD_MULTIPLE)
    throw Error(Status::unsupported,
                "hfreduce: several nodes need MPI_THREAD_MULTIPLE (the leader's network thread "
                "calls MPI); initialise MPI with MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...)");
  std::unique_ptr<transport::Transport> transport;
  if (layout.leader() && layout.nnodes > 1)
    transport = std::make_unique<transport::MpiTransport>(leaders.release());
  resolve_link(transport.get());
  const auto plan =
      inter_node::plan_chunks(layout.nnodes, link, options.chunk_bytes, options.pipeline_depth);
  options.chunk_bytes = plan.chunk_bytes;
  options.pipeline_depth = plan.depth;

  const std::size_t slot_bytes = round_up(options.chunk_bytes, 512);
  const std::size_t pipeline_bytes = round_up(
      SegmentLayout::bytes_needed(layout.local_size, options.pipeline_depth, slot_bytes), 64);
  // The shared-memory small path, after the pipeline's part of the same segment.
  const bool small_shm = layout.nnodes == 1 && options.small_path == SmallPath::automatic &&
                         options.fallback_bytes > 0 && !options.device_buffers;
  const std::size_t small_max =
      std::max(std::min(options.fallback_bytes, kMaxSmallShmBytes), kFp8SmallShmBytes);
  const std::size_t small_bytes =
      small_shm ? node::SmallAllreduce::bytes_needed(layout.local_size, small_max) : 0;
  segment =
      std::make_unique<node::SharedSegment>(node_comm.get(), pipeline_bytes + small_bytes, where());
  seg =
      SegmentLayout::carve(segment->data(), layout.local_size, options.pipeline_depth, slot_bytes);
  if (small_shm)
    small =
        std::make_unique<node::SmallAllreduce>(static_cast<char*>(segment->data()) + pipeline_bytes,
                                               layout.local_rank, layout.local_size, small_max);
  if (transport)
    network = std::make_unique<NetworkEngine>(std::move(transport), seg, options, layout.size);
  team = std::make_unique<ThreadTeam>(options.reduce_threads);
  // More local ranks (and reduce threads) than the cores this process may use: spinning would
  // only delay the peer we wait for, so yield almost at once.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const int ncpu = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  if (layout.local_size * options.reduce_threads > ncpu) {
    wait_policy.spins = 64;
    wait_policy.yields = 64;
  }
  copier = copy::make_copy_stage(
      options.device_buffers, options.cuda_device >= 0 ? options.cuda_device : layout.local_rank);
  copier->register_host_memory(segment->data(), segment->size());
  progress = std::thread([this] { progress_loop(); });
}

// Nodes, local ranks and leaders; returns the leaders' communicator (null on other ranks).
node::MpiComm Communicator::Impl::discover_layout(MPI_Comm comm) {
  MPI_Comm_dup(comm, world.out());
  MPI_Comm_rank(world.get(), &layout.rank);
  MPI_Comm_size(world.get(), &layout.size);
  if (options.ranks_per_node > 0)
    MPI_Comm_split(world.get(), layout.rank / options.ranks_per_node, layout.rank, node_comm.out());
  else
    MPI_Comm_split_type(world.get(), MPI_COMM_TYPE_SHARED, layout.rank, MPI_INFO_NULL,
                        node_comm.out());
  MPI_Comm_rank(node_comm.get(), &layout.local_rank);
  MPI_Comm_size(node_comm.get(), &layout.local_size);

  node::MpiComm leaders;
  MPI_Comm_split(world.get(), layout.leader() ? 0 : MPI_UNDEFINED, layout.rank, leaders.out());
  if (layout.leader()) {
    MPI_Comm_rank(leaders.get(), &layout.node);
    MPI_Comm_size(leaders.get(), &layout.nnodes);
  }
  MPI_Bcast(&layout.node, 1, MPI_INT, 0, node_comm.get());
  MPI_Bcast(&layout.nnodes, 1, MPI_INT, 0, node_comm.get());
  node_of_rank.resize(layout.size);
  local_of_rank.resize(layout.size);
  MPI_Allgather(&layout.node, 1, MPI_INT, node_of_rank.data(), 1, MPI_INT, world.get());
  MPI_Allgather(&layout.local_rank, 1, MPI_INT, local_of_rank.data(), 1, MPI_INT, world.get());
  where_ = "rank " + std::to_string(layout.rank) + " (node " + std::to_string(layout.node) +
           ", local rank " + std::to_string(layout.local_rank) + ")";
  return leaders;
}

// The cost model's link figures: what the options give, the rest measured by leaders 0 and 1
// over the transport, then node 0's figures on every rank (world rank 0 is node 0's leader). A
// failed measurement fails every rank, not just the two that measured.
void Communicator::Impl::resolve_link(transport::Transport* transport) {
  if (layout.nnodes < 2) return;
  double figures[3] = {options.link.latency_us, options.link.gbps, 0};
  std::string error;
  if (transport) {
    try {
      const auto measured = inter_node::probe_link(*transport, options.link, options.timeout_s);
      figures[0] = measured.latency_us;
      figures[1] = measured.gbps;
    } catch (const Error& e) {
      error = e.what();
      figures[2] = 1;
    }
  }
  double failed = 0;
  MPI_Allreduce(&figures[2], &failed, 1, MPI_DOUBLE, MPI_MAX, world.get());
  if (failed > 0)
    throw Error(Status::transport_error,
                "hfreduce: " + where() + ": measuring the inter-node link failed" +
                    (error.empty() ? std::string(" on another node") : ": " + error));
  MPI_Bcast(figures, 2, MPI_DOUBLE, 0, world.get());
  link.latency_us = figures[0];
  link.gbps = figures[1];
}

Communicator::Impl::~Impl() {
  {
    std::lock_guard lock(queue_mutex);
    stop = true;
  }
  queue_cv.notify_all();
  progress.join();
  network.reset();
  team.reset();
  copier.reset();  // unpins the segment (cudaHostUnregister) while it is still mapped
  small.reset();
  segment.reset();
}

void Communicator::Impl::progress_loop() {
  while (true) {
    std::pair<OpDesc, std::shared_ptr<Request::State>> item;
    {
      std::unique_lock lock(queue_mutex);
      queue_cv.wait(lock, [this] { return stop || !queue.empty(); });
      if (queue.empty()) return;  // stop requested and nothing left
      item = queue.front();
      queue.pop_front();
      queue_busy = true;
    }
    std::exception_ptr err;
    try {
      execute(item.first);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard lock(item.second->mutex);
      item.second->done = true;
      item.second->error = err;
    }
    item.second->cv.notify_all();
    {
      std::lock_guard lock(queue_mutex);
      queue_busy = false;
      outstanding.fetch_sub(1, std::memory_order_release);  // after the operation's effects
    }
    queue_cv.notify_all();
  }
}

void Communicator::Impl::wait_for_queue() {
  if (outstanding.load(std::memory_order_acquire) == 0) return;
  std::unique_lock lock(queue_mutex);
  queue_cv.wait(lock, [&] { return queue.empty() && !queue_busy; });
}

// Below fallback_bytes: the shared-memory exchange on one node, else MPI_Allreduce. fp8 takes the
// exchange up to kFp8SmallShmBytes on one node.
bool Communicator::Impl::try_fallback(const OpDesc& op) {
  const std::size_t bytes = op.count * ffb::size_of(op.type);
  if (op.kind != OpKind::allreduce) return false;
  if (bytes >= options.fallback_bytes) {
    const bool fp8 = op.type == ffb::DataType::f8e4m3 || op.type == ffb::DataType::f8e5m2;
    return fp8 && bytes <= kFp8SmallShmBytes && try_small_shm(op, bytes);
  }
  if (try_small_shm(op, bytes)) return true;
  if (!fast_path.allreduce(op.send, op.recv, op.count, op.type, op.op, world.get(), layout.size,
                           where()))
    return false;
  times.used_fallback = true;
  times.algorithm = Algorithm::mpi;
  return true;
}

bool Communicator::Impl::try_small_shm(const OpDesc& op, std::size_t bytes) {
  if (!small || bytes > small->max_bytes()) return false;
  small->allreduce(op.send, op.recv, op.count, op.type, op.op, node::Seconds(options.timeout_s),
                   waits, where());
  times.used_fallback = true;
  times.algorithm = Algorithm::shm;
  times.wait_us = waits.waited_us;
  return true;
}

Algorithm Communicator::Impl::inter_node_algorithm(std::size_t bytes) const {
  if (layout.nnodes < 2) return Algorithm::intra_node;
  switch (options.inter_node) {
    case InterNode::tree:
      return Algorithm::tree;
    case InterNode::ring:
      return Algorithm::ring;
    case InterNode::automatic:
      break;
  }
  return inter_node::choose(layout.nnodes, bytes, link,
                            std::min(bytes, round_up(options.chunk_bytes, 512)));
}

void Communicator::Impl::execute(const OpDesc& op) {
  std::lock_guard lock(exec_mutex);
  times = StageTimes{};
  waits = wait_policy;
  if (!kernels::supported(op.type, op.op))
    throw Error(Status::invalid_argument, "hfreduce: unsupported type/op combination");
  if ((op.kind != OpKind::allreduce) && (op.root < 0 || op.root >= layout.size))
    throw Error(Status::invalid_argument,
                "hfreduce: root " + std::to_string(op.root) + " is not a rank of the communicator");
  if (op.count > 0 && ((op.send == nullptr && op.kind != OpKind::broadcast) || op.recv == nullptr))
    throw Error(Status::invalid_argument, "hfreduce: null buffer with a non-zero count");
  if (!options.device_buffers && try_fallback(op)) return;
  if (op.ticket)
    copier->begin_queued_op(op.stream, op.ticket.get());
  else
    copier->begin_op(op.stream);
  try {
    as_hfreduce_error(where(), [&] { run_pipeline(op); });
  } catch (...) {
    copier->end_op();
    throw;
  }
  copier->end_op();
  times.wait_us = waits.waited_us;
}

namespace {

using Clock = std::chrono::steady_clock;

double elapsed_us(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// One operation's three stages on this rank, per chunk: copy-in, the slice reduce and copy-out
// (Communicator::Impl::run_pipeline interleaves them). Holds what every chunk of the op shares.
class ChunkSteps {
 public:
  ChunkSteps(Communicator::Impl& impl, const OpDesc& op)
      : impl_(impl),
        op_(op),
        es_(ffb::size_of(op.type)),
        chunk_elems_(impl.seg.slot_bytes / es_),
        nchunks_((op.count + chunk_elems_ - 1) / chunk_elems_),
        local_size_(impl.layout.local_size),
        me_(impl.layout.local_rank),
        bcast_(op.kind == OpKind::broadcast),
        root_node_(op.kind == OpKind::allreduce ? -1 : impl.node_of_rank[op.root]),
        root_local_(op.kind == OpKind::allreduce ? -1 : impl.local_of_rank[op.root]),
        is_root_(op.kind != OpKind::allreduce && op.root == impl.layout.rank),
        direct_own_(impl.copier->user_buffer_host_readable() && !bcast_),
        multi_(impl.layout.nnodes > 1),
        intra_op_(op.op == ReduceOp::avg && multi_ ? ReduceOp::sum : op.op),
        streaming_(impl.options.streaming_stores && op.count * es_ >= kStreamingBytes),
        copies_out_(op.kind != OpKind::reduce || is_root_),
        first_(impl.ticket),
        timeout_(impl.options.timeout_s) {}

  std::size_t nchunks() const { return nchunks_; }
  std::size_t chunk_elems() const { return chunk_elems_; }
  std::uint32_t first_ticket() const { return first_; }
  void copy_in(std::size_t c);
  void reduce(std::size_t c);
  void copy_out(std::size_t c);

 private:
  struct ChunkInfo {
    std::size_t index;
    std::uint32_t ticket;
    int slot;
    std::size_t offset, n;
  };
  ChunkInfo info(std::size_t c) const {
    const std::uint32_t t = first_ + static_cast<std::uint32_t>(c) + 1u;
    return ChunkInfo{c, t, static_cast<int>(t % static_cast<std::uint32_t>(impl_.seg.depth)),
                     c * chunk_elems_, std::min(chunk_elems_, op_.count - c * chunk_elems_)};
  }
  // The timeout message of a wait, built only when the wait times out.
  auto describe(const std::string& what, std::size_t c) const {
    return [this, what, c] { return timeout_message(what, c); };
  }
  std::string timeout_message(const std::string& what, std::size_t c) const;
  void broadcast_slice(const ChunkInfo& ci, char* out, std::size_t b, std::size_t e);
  void reduce_slice(const ChunkInfo& ci, char* out, std::size_t b, std::size_t e);

  Communicator::Impl& impl_;
  const OpDesc& op_;
  const std::size_t es_, chunk_elems_, nchunks_;
  const int local_size_, me_;
  const bool bcast_;
  const int root_node_, root_local_;
  const bool is_root_, direct_own_, multi_;
  const ReduceOp intra_op_;
  const bool streaming_, copies_out_;
  const std::uint32_t first_;
  const node::Seconds timeout_;
};

std::string ChunkSteps::timeout_message(const std::string& what, std::size_t c) const {
  std::string msg = "hfreduce: " + impl_.where() + " timed out after " +
                    std::to_string(impl_.options.timeout_s) + " s waiting for " + what +
                    " of chunk " + std::to_string(c) + " of " + std::to_string(nchunks_);
  if (impl_.network && impl_.network->error()) {
    try {
      std::rethrow_exception(impl_.network->error());
    } catch (const std::exception& e) {
      msg += " (network: " + std::string(e.what()) + ")";
    }
  }
  return msg;
}

void ChunkSteps::copy_in(std::size_t c) {
  const auto ci = info(c);
  const auto& seg = impl_.seg;
  for (int r = 0; r < local_size_; ++r)  // the slot's previous chunk has been copied out everywhere
    node::wait_reached(seg.used(r, ci.slot), ci.ticket - static_cast<std::uint32_t>(seg.depth),
                       timeout_, impl_.waits,
                       describe("local rank " + std::to_string(r) + " to free a slot", c));
  const auto t0 = Clock::now();
  const bool contributes = !bcast_ || is_root_;
  if (contributes) {
    const auto* src = static_cast<const char*>(bcast_ ? op_.recv : op_.send) + ci.offset * es_;
    char* dst = seg.input_slot(me_, ci.slot);
    auto& copier = *impl_.copier;
    if (direct_own_) {  // everything but the slice this rank reduces itself
      const auto [b, e] = slice_range(ci.n, local_size_, me_);
      copier.start_copy_in(dst, src, b * es_);
      copier.start_copy_in(dst + e * es_, src + e * es_, (ci.n - e) * es_);
    } else {
      copier.start_copy_in(dst, src, ci.n * es_);
    }
    copier.finish_copy_in();
  }
  node::publish(seg.input(me_, ci.slot), ci.ticket);
  impl_.times.copy_in_us += elapsed_us(t0);
}

// Broadcast: the root node's leader data, zeros elsewhere (OR-combined in the tree).
void ChunkSteps::broadcast_slice(const ChunkInfo& ci, char* out, std::size_t b, std::size_t e) {
  const auto& seg = impl_.seg;
  if (root_node_ != impl_.layout.node) {
    std::memset(out, 0, (e - b) * es_);
    return;
  }
  node::wait_reached(seg.input(root_local_, ci.slot), ci.ticket, timeout_, impl_.waits,
                     describe("the root's input", ci.index));
  const auto t0 = Clock::now();
  std::memcpy(out, seg.input_slot(root_local_, ci.slot) + b * es_, (e - b) * es_);
  impl_.times.intra_reduce_us += elapsed_us(t0);
}

void ChunkSteps::reduce_slice(const ChunkInfo& ci, char* out, std::size_t b, std::size_t e) {
  const auto& seg = impl_.seg;
  std::vector<const void*> inputs(static_cast<std::size_t>(local_size_));
  for (int r = 0; r < local_size_; ++r) {
    if (r == me_ && direct_own_) {
      inputs[r] = static_cast<const char*>(op_.send) + (ci.offset + b) * es_;
      continue;
    }
    node::wait_reached(seg.input(r, ci.slot), ci.ticket, timeout_, impl_.waits,
                       describe("local rank " + std::to_string(r) + "'s input", ci.index));
    inputs[r] = seg.input_slot(r, ci.slot) + b * es_;
  }
  const auto t0 = Clock::now();
  const int parts = impl_.team->size();
  const std::size_t n = e - b;
  impl_.team->run([&](int part) {
    const auto [pb, pe] = slice_range(n, parts, part);
    if (pe == pb) return;
    std::vector<const void*> in(inputs.size());
    for (std::size_t i = 0; i < in.size(); ++i)
      in[i] = static_cast<const char*>(inputs[i]) + pb * es_;
    kernels::reduce(op_.type, intra_op_, in.data(), local_size_, out + pb * es_, pe - pb,
                    impl_.layout.size);
  });
  impl_.times.intra_reduce_us += elapsed_us(t0);
}

void ChunkSteps::reduce(std::size_t c) {
  const auto ci = info(c);
  const auto [b, e] = slice_range(ci.n, local_size_, me_);
  char* out = impl_.seg.reduced_slot(ci.slot) + b * es_;
  if (bcast_)
    broadcast_slice(ci, out, b, e);
  else
    reduce_slice(ci, out, b, e);
  node::publish(impl_.seg.slice(me_, ci.slot), ci.ticket);
}

void ChunkSteps::copy_out(std::size_t c) {
  const auto ci = info(c);
  const auto& seg = impl_.seg;
  if (multi_) {
    node::wait_reached(seg.global(ci.slot), ci.ticket, timeout_, impl_.waits,
                       describe("the inter-node result", c));
  } else {
    for (int r = 0; r < local_size_; ++r)
      node::wait_reached(seg.slice(r, ci.slot), ci.ticket, timeout_, impl_.waits,
                         describe("local rank " + std::to_string(r) + "'s reduced slice", c));
  }
  const auto t0 = Clock::now();
  if (copies_out_) {
    impl_.copier->copy_out(static_cast<char*>(op_.recv) + ci.offset * es_,
                           seg.reduced_slot(ci.slot), ci.n * es_, streaming_);
    impl_.copier->finish_copy_out();
  }
  node::publish(seg.used(me_, ci.slot), ci.ticket);
  impl_.times.copy_out_us += elapsed_us(t0);
}

}  // namespace

void Communicator::Impl::run_pipeline(const OpDesc& op) {
  ChunkSteps steps(*this, op);
  const std::size_t nchunks = steps.nchunks();
  ticket += static_cast<std::uint32_t>(nchunks);
  times.chunks = nchunks;
  times.algorithm = inter_node_algorithm(op.count * ffb::size_of(op.type));
  if (nchunks == 0) return;

  if (network) {
    NetworkEngine::Job job;
    job.first_ticket = steps.first_ticket();
    job.nchunks = nchunks;
    job.chunk_elems = steps.chunk_elems();
    job.count = op.count;
    job.type = op.type;
    job.op = op.op;
    job.bitwise_or = op.kind == OpKind::broadcast;
    job.algorithm = times.algorithm;
    network->submit(job);
  }
  // Copy-in of chunk k, reduce of chunk k-1 and copy-out of chunk k-lag in each step: every rank
  // keeps several chunks in flight, so the stages overlap across ranks and with the network. The
  // ring may have every slot on the network at once (lag = depth - 1: a copy-in only waits for the
  // copy-out of the slot's previous chunk, done one step earlier), which hides its 2 (n-1)
  // dependent steps per chunk; the tree ran slower with more than 3 chunks in flight on Open MPI's
  // TCP transport (4 emulated nodes, 16 MiB: 0.09 GB/s busbw with lag 3, 0.06 with lag 15); on one
  // node lag 2 keeps the chunks in the caches.
  const int max_lag = times.algorithm == Algorithm::ring ? seg.depth - 1
                      : layout.nnodes > 1                ? 3
                                                         : 2;
  const auto lag = static_cast<std::size_t>(std::min(seg.depth - 1, max_lag));
  try {
    for (std::size_t step = 0; step < nchunks + lag; ++step) {
      if (step < nchunks) steps.copy_in(step);
      if (step >= 1 && step - 1 < nchunks) steps.reduce(step - 1);
      if (step >= lag && step - lag < nchunks) steps.copy_out(step - lag);
    }
  } catch (...) {
    if (network) {
      try {
        network->wait();
      } catch (...) {
        // The pipeline's own error is the one to report; the engine's follows from it.
      }
    }
    throw;
  }
  if (network) times.inter_node_us = network->wait();
}

// ---- public API ----

Communicator::Communicator(MPI_Comm comm, const Options& options)
    : impl_(as_hfreduce_error("set-up", [&] { return std::make_unique<Impl>(comm, options); })) {
  as_hfreduce_error("set-up", [&] {
    impl_->copier->set_stream_completion(impl_->options.stream_completion);
    impl_->pairs = gpu::make_pair_stage(impl_->world.get(), impl_->node_comm.get(), impl_->layout,
                                        impl_->options);
    if (!impl_->pairs || !impl_->pairs->active()) return;
    // The host stage of the pairs: a communicator of its own over the ranks of this position.
    auto inner =
        std::make_shared<Impl>(impl_->pairs->position_comm(), impl_->pairs->host_stage_options());
    impl_->pairs->attach({[inner](const OpDesc& op) { inner->execute(op); },
                          [inner]() -> const StageTimes& { return inner->times; }, inner});
  });
}

Communicator::~Communicator() = default;

void Communicator::allreduce(const void* send, void* recv, std::size_t count, DataType type,
                             ReduceOp op) {
  if (nvlink_pairs_active()) {
    impl_->pairs->allreduce(OpDesc{OpKind::allreduce, send, recv, count, type, op, 0});
    return;
  }
  impl_->wait_for_queue();  // earlier asynchronous operations: operations complete in order
  impl_->execute(OpDesc{OpKind::allreduce, send, recv, count, type, op, 0});
}

Request Communicator::allreduce_async(const void* send, void* recv, std::size_t count,
                                      DataType type, ReduceOp op) {
  return allreduce_async(send, recv, count, type, op, nullptr);
}

Request Communicator::allreduce_async(const void* send, void* recv, std::size_t count,
                                      DataType type, ReduceOp op, void* stream) {
  if (impl_->thread_level < MPI_THREAD_MULTIPLE)
    throw Error(Status::unsupported,
                "hfreduce: allreduce_async runs MPI on a progress thread and needs "
                "MPI_THREAD_MULTIPLE");
  auto state = std::make_shared<Request::State>();
  OpDesc desc{OpKind::allreduce, send, recv, count, type, op, 0, stream, nullptr};
  if (nvlink_pairs_active()) {
    impl_->pairs->submit(std::move(desc), [state](std::exception_ptr err) {
      {
        std::lock_guard lock(state->mutex);
        state->done = true;
        state->error = err;
      }
      state->cv.notify_all();
    });
    return Request(state);
  }
  {
    // GPU path: capture the stream's position now, on the caller's thread (NCCL semantics). Under
    // the queue's lock, so stream order, ticket order and queue order agree even when several
    // threads start operations on one stream.
    std::lock_guard lock(impl_->queue_mutex);
    if (impl_->options.device_buffers) desc.ticket = impl_->copier->enqueue(stream);
    impl_->outstanding.fetch_add(1, std::memory_order_relaxed);
    impl_->queue.emplace_back(std::move(desc), state);
  }
  impl_->queue_cv.notify_all();
  return Request(state);
}

void Communicator::reduce(const void* send, void* recv, std::size_t count, DataType type,
                          ReduceOp op, int root) {
  impl_->wait_for_queue();
  impl_->execute(OpDesc{OpKind::reduce, send, recv, count, type, op, root});
}

void Communicator::broadcast(void* buffer, std::size_t bytes, int root) {
  impl_->wait_for_queue();
  impl_->execute(
      OpDesc{OpKind::broadcast, buffer, buffer, bytes, DataType::u8, ReduceOp::max, root});
}

const StageTimes& Communicator::last_stage_times() const {
  return nvlink_pairs_active() ? impl_->pairs->last_stage_times() : impl_->times;
}
const Layout& Communicator::layout() const { return impl_->layout; }
bool Communicator::nvlink_pairs_active() const { return impl_->pairs && impl_->pairs->active(); }
const std::string& Communicator::nvlink_pairs_fallback() const {
  static const std::string none;
  return impl_->pairs ? impl_->pairs->fallback_reason() : none;
}
const Options& Communicator::options() const { return impl_->options; }
const LinkModel& Communicator::link() const { return impl_->link; }
Algorithm Communicator::choose_inter_node(std::size_t bytes) const {
  return impl_->inter_node_algorithm(bytes);
}

double Communicator::memory_traffic_per_node() const {
  // In units of S, every access counted once (the paper's way): copy-in moves the L-1 foreign
  // slices of each rank (read + write), the reduce reads L inputs and writes 1, copy-out reads and
  // writes S per rank, and across nodes each leader receives, combines and forwards about 6 S.
  const double L = impl_->layout.local_size;
  const double inter = impl_->layout.nnodes > 1 ? 6.0 : 0.0;
  return 2.0 * (L - 1.0) + (L + 1.0) + 2.0 * L + inter;
}

}  // namespace hfreduce
