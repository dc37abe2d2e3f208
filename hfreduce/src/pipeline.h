// The chunk pipeline: per-node shared state, the per-rank step loop and the leader's network
// thread. Internal to libhfreduce.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <mpi.h>

#include "copy/copy_stage.h"
#include "double_binary_tree.h"
#include "hfreduce/hfreduce.h"
#include "node/flag.h"
#include "node/shared_segment.h"
#include "transport/transport.h"

namespace hfreduce {

enum class OpKind { allreduce, reduce, broadcast };

// One collective operation as the pipeline sees it.
struct OpDesc {
  OpKind kind = OpKind::allreduce;
  const void* send = nullptr;
  void* recv = nullptr;
  std::size_t count = 0;
  DataType type = DataType::f32;
  ReduceOp op = ReduceOp::sum;
  int root = 0;            // reduce / broadcast: world rank
  void* stream = nullptr;  // GPU path: the caller's cudaStream_t
  // GPU path, asynchronous: the copy stage's record of the stream at queue time
  // (CopyStage::enqueue)
  std::shared_ptr<copy::OpTicket> ticket = nullptr;
};

// Pointers into the node's shared segment.
struct SegmentLayout {
  node::Flag* input_ready = nullptr;   // [local][slot]: ticket of the chunk in the input slot
  node::Flag* slice_done = nullptr;    // [local][slot]: ticket whose slice this rank has reduced
  node::Flag* global_ready = nullptr;  // [slot]: ticket whose reduced chunk is final (multi-node)
  node::Flag* consumed = nullptr;      // [local][slot]: ticket this rank has copied out
  char* inputs = nullptr;              // [local][slot][slot_bytes]
  char* reduced = nullptr;             // [slot][slot_bytes]
  std::size_t slot_bytes = 0;
  int local_size = 1, depth = 2;

  node::Flag& input(int l, int s) const { return input_ready[l * depth + s]; }
  node::Flag& slice(int l, int s) const { return slice_done[l * depth + s]; }
  node::Flag& global(int s) const { return global_ready[s]; }
  node::Flag& used(int l, int s) const { return consumed[l * depth + s]; }
  char* input_slot(int l, int s) const {
    return inputs + (static_cast<std::size_t>(l) * depth + s) * slot_bytes;
  }
  char* reduced_slot(int s) const { return reduced + static_cast<std::size_t>(s) * slot_bytes; }
  static std::size_t bytes_needed(int local_size, int depth, std::size_t slot_bytes);
  static SegmentLayout carve(void* base, int local_size, int depth, std::size_t slot_bytes);
};

// Runs a function over [0, parts) on the caller plus reduce_threads-1 helper threads.
class ThreadTeam {
 public:
  explicit ThreadTeam(int threads);
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(0..size()-1); returns when every part is done. An exception thrown by any part (the
  // caller's or a helper's) is rethrown here once all parts have finished; the first one wins.
  void run(const std::function<void(int part)>& fn);

 private:
  void worker(int id);
  void record_error(std::exception_ptr e);
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  std::uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;  // the first part's exception of the current run
};

// The leader's inter-node engine: a thread that runs the double binary tree or the ring
// (inter_node/ring_job.h) for each chunk the node has reduced, with several chunks in flight.
class NetworkEngine {
 public:
  NetworkEngine(std::unique_ptr<transport::Transport> transport, const SegmentLayout& seg,
                const Options& options, int world_size);
  ~NetworkEngine();
  NetworkEngine(const NetworkEngine&) = delete;
  NetworkEngine& operator=(const NetworkEngine&) = delete;

  struct Job {
    std::uint32_t first_ticket = 0;  // ticket of chunk 0
    std::size_t nchunks = 0;
    std::size_t chunk_elems = 0;
    std::size_t count = 0;
    DataType type = DataType::f32;
    ReduceOp op = ReduceOp::sum;
    bool bitwise_or = false;                // broadcast
    Algorithm algorithm = Algorithm::tree;  // tree or ring
  };
  void submit(const Job& job);
  // Waits until the submitted job is finished; rethrows the engine's error. Returns its time (us).
  double wait();
  // The engine's error if it failed (for better messages from ranks that timed out waiting).
  std::exception_ptr error() const;

 private:
  void loop();
  void run_job(const Job& job);

  std::unique_ptr<transport::Transport> transport_;
  SegmentLayout seg_;
  Options options_;
  int world_size_;
  tree::DoubleBinaryTree trees_;
  std::vector<char> child_buffers_;  // [slot][tree][child][slot_bytes / 2 + 64]
  std::size_t child_stride_ = 0;
  std::vector<char> ring_buffers_;  // [slot][ring_scratch_bytes]: the incoming piece
  std::size_t ring_stride_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<Job> job_;
  bool busy_ = false, stop_ = false;
  double last_us_ = 0;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace hfreduce
