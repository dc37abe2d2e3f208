// HFReduce: hierarchical allreduce (Fire-Flyer AI-HPC, SC'24).
//
// Per chunk of the message: copy-in (device -> host on GPUs; a memcpy on the host path) into a
// per-node shared-memory segment, an intra-node reduce in which every local rank reduces one slice
// of the chunk with a multi-input SIMD kernel, an inter-node double binary tree over the node
// leaders (reduce up, broadcast down, each tree carrying half of the chunk), and copy-out to every
// rank. Chunks are pipelined: chunk i crosses the network while chunk i+1 is reduced inside the
// node and chunk i-1 is copied out. Design notes: docs/hfreduce.md.
//
// The library never prints and never exits: failures throw hfreduce::Error with a status code and
// a message that names the rank, the chunk and what it was waiting for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <mpi.h>

#include "ffb/numeric.h"
#include "hfreduce/error.h"

namespace hfreduce {

using ffb::DataType;
using ffb::ReduceOp;

// The algorithm between node leaders. `automatic` picks tree or ring per call from the cost model
// in docs/hfreduce.md ("Choosing the inter-node algorithm"), with the link figures of LinkModel.
enum class InterNode { tree, ring, automatic };

// How the caller's CUDA stream waits for an asynchronous device-buffer operation (GPU path):
//   host_func:   a host function on the stream blocks until the operation is done (verified);
//   stream_wait: the stream waits on a host-mapped flag the progress thread writes
//                (cuStreamWaitValue32); no host function ever blocks the stream.
enum class StreamCompletion { host_func, stream_wait };

// NVLink pairs (GPU path): local ranks 2k and 2k+1 reduce-scatter over peer-to-peer, each GPU
// hands half of the message to the host stage, and the pair allgathers afterwards.
//   off; automatic: pairs where peer access exists, else the plain path with one line;
//   force: also pairs ranks that share one GPU (testing on single-GPU machines).
enum class NvlinkPairs { off, automatic, force };

// Messages below Options::fallback_bytes skip the pipeline:
//   automatic: on a communicator that is one node, a shared-memory exchange (every rank publishes
//              its input, then reduces all of them: one hand-off per peer; fp8 from 512 B reduces
//              one slice per rank and exchanges the slices, and takes this exchange up to
//              kFp8SmallShmBytes whatever fallback_bytes, as its decoding outweighs the
//              pipeline's overlap); across nodes, MPI_Allreduce;
//   mpi:       always MPI_Allreduce.
enum class SmallPath { automatic, mpi };

const char* name_of(InterNode v);         // "tree", "ring", "auto"
const char* name_of(StreamCompletion v);  // "host_func", "stream_wait"
const char* name_of(NvlinkPairs v);       // "off", "auto", "force"
const char* name_of(SmallPath v);         // "auto", "mpi"

// The inter-node link as the cost model sees it. Zero fields are measured once when the
// Communicator is created (a few ping-pongs between the node leaders).
struct LinkModel {
  double latency_us = 0;  // one-way time of a small message between leaders
  double gbps = 0;        // one-way rate of a large message, GB/s (1e9 B/s)
};

inline constexpr std::size_t kDefaultFallbackBytes = 16 << 10;
// The shared-memory small path's largest message (2 slots of it per local rank); a larger
// fallback_bytes sends the messages above it to MPI_Allreduce.
inline constexpr std::size_t kMaxSmallShmBytes = 256 << 10;
// fp8 messages up to this size take the shared-memory exchange on one node (SmallPath::automatic,
// fallback_bytes > 0) even above fallback_bytes: 2 ranks, 16-64 KiB, 1.4-1.6x the pipeline here.
inline constexpr std::size_t kFp8SmallShmBytes = 64 << 10;

struct Options {
  // Pipeline unit; rounded to a multiple of 64 B per slice. 0: chosen per communicator from the
  // link (docs/hfreduce.md, "Chunk size and depth"), 1 MiB on a single node.
  std::size_t chunk_bytes = 0;
  int pipeline_depth = 0;  // chunk slots per rank in shared memory (>= 2); 0: chosen with the chunk
  InterNode inter_node = InterNode::automatic;
  LinkModel link;            // the cost model's inputs; zero fields are measured at creation
  int reduce_threads = 1;    // threads per rank for its slice of the intra-node reduce
  double timeout_s = 300.0;  // longest wait for a peer before Error(timeout)
  int ranks_per_node = 0;    // 0: ranks sharing memory form a node; N: N consecutive ranks
  // Messages below this take the small-message path (small_path): on one node a shared-memory
  // exchange of at most kMaxSmallShmBytes, else MPI_Allreduce (every type: fp16, bf16 and fp8 with
  // user-defined MPI ops that run HFReduce's own kernels); 0: every message takes the pipeline.
  std::size_t fallback_bytes = kDefaultFallbackBytes;
  SmallPath small_path = SmallPath::automatic;
  bool streaming_stores = true;  // non-temporal stores for the copy-out of large messages
  // GPU path: send/recv are CUDA device pointers, copied to and from host memory on a copy engine.
  bool device_buffers = false;
  int cuda_device = -1;  // -1: local rank modulo the visible devices
  StreamCompletion stream_completion = StreamCompletion::host_func;
  NvlinkPairs nvlink_pairs = NvlinkPairs::off;
};

// The valid ranges of Options: one check, used by the Communicator and by the programs' flag
// layers (which word the refusal with their own flag names).
inline constexpr std::size_t kMinChunkBytes = 4096;
inline constexpr std::size_t kMaxChunkBytes = std::size_t{1} << 30;
inline constexpr int kMinPipelineDepth = 2;
inline constexpr int kMaxPipelineDepth = 64;
inline constexpr int kMaxReduceThreads = 256;

enum class OptionField {
  chunk_bytes,
  pipeline_depth,
  reduce_threads,
  timeout_s,
  ranks_per_node,
  link,
  nvlink_pairs,
  stream_completion
};

struct OptionProblem {
  OptionField field;
  std::string message;  // "hfreduce: chunk_bytes 100 is outside [4 KiB, 1 GiB]"
};

// The first option outside its range, or nullopt when all are valid.
std::optional<OptionProblem> find_option_problem(const Options& options);
// Throws Error(invalid_argument) with find_option_problem's message.
void validate_options(const Options& options);

// What carried the last operation: the MPI fast path, the shared-memory small path, the node's
// pipeline alone, or one of the inter-node algorithms between leaders.
enum class Algorithm { none, mpi, intra_node, tree, ring, shm };
const char* name_of(Algorithm v);  // "none", "mpi", "intra-node", "tree", "ring", "shm"

// Measurements of the last completed operation on this rank, microseconds.
struct StageTimes {
  Algorithm algorithm = Algorithm::none;
  double copy_in_us = 0;       // this rank's copy-in work (waits excluded)
  double intra_reduce_us = 0;  // this rank's slice reductions (waits excluded)
  double inter_node_us =
      0;                   // leader only: first chunk offered to the network until the last is done
  double copy_out_us = 0;  // this rank's copy-out work (waits excluded)
  double wait_us = 0;      // time spent waiting for peers
  bool used_fallback = false;  // the call took a small-message path (algorithm mpi or shm)
  std::size_t chunks = 0;
  // NVLink pairs (nvlink_pairs_active()): the pair's reduce-scatter and allgather on this rank;
  // the fields above are then the host stage's, on this rank's half of the message.
  double pair_scatter_us = 0;
  double pair_gather_us = 0;
};

// Where the ranks are, as HFReduce sees them.
struct Layout {
  int rank = 0, size = 1;
  int node = 0, nnodes = 1;
  int local_rank = 0, local_size = 1;
  bool leader() const { return local_rank == 0; }
};

class Communicator;

// Completion of an asynchronous operation.
class Request {
 public:
  Request() = default;
  bool test();  // true when complete; rethrows the operation's Error
  void wait();  // blocks until complete; rethrows the operation's Error
  bool valid() const { return state_ != nullptr; }

 private:
  friend class Communicator;
  struct State;
  explicit Request(std::shared_ptr<State> s) : state_(std::move(s)) {}
  std::shared_ptr<State> state_;
};

class Communicator {
 public:
  // Collective over `comm`; duplicates it (the caller's communicator is never used for traffic).
  Communicator(MPI_Comm comm, const Options& options = {});
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // recv may equal send (in place). count may be 0 and may exceed 2^31.
  void allreduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op);
  // Runs on the communicator's progress thread; the buffers must stay untouched until complete.
  // Operations on one communicator complete in the order they were started.
  Request allreduce_async(const void* send, void* recv, std::size_t count, DataType type,
                          ReduceOp op);
  // GPU path (Options::device_buffers): `stream` is a cudaStream_t. The copies wait for work
  // already queued on it, and on return the stream waits for the result (enqueue semantics as
  // with NCCL); the host side runs on the progress thread.
  Request allreduce_async(const void* send, void* recv, std::size_t count, DataType type,
                          ReduceOp op, void* stream);
  // The result lands in recv on `root` only (recv is not touched elsewhere).
  void reduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
              int root);
  // buffer on `root` is copied to buffer on every rank.
  void broadcast(void* buffer, std::size_t bytes, int root);

  const StageTimes& last_stage_times() const;
  // NVLink pairs (Options::nvlink_pairs): whether allreduces use them, and why not when they were
  // asked for but are not used (one line naming the rank, the ranks and the GPUs; "" otherwise).
  // The library does not print it: the programs do.
  bool nvlink_pairs_active() const;
  const std::string& nvlink_pairs_fallback() const;
  const Layout& layout() const;
  // The options in force: chunk_bytes and pipeline_depth resolved when they were 0 (auto).
  const Options& options() const;
  // The link figures the cost model uses: given in Options::link, or measured at creation
  // (zero on a single node).
  const LinkModel& link() const;
  // The algorithm `automatic` picks for a message of `bytes` on this communicator.
  Algorithm choose_inter_node(std::size_t bytes) const;
  // Host memory traffic per node for one allreduce of S bytes, in units of S (the paper's 24 S
  // count, for this design and layout): see docs/hfreduce.md.
  double memory_traffic_per_node() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace hfreduce
