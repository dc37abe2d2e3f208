#include "pipeline.h"

#include <algorithm>
#include <cstring>
#include <sched.h>
#include <string>
#include <utility>

#include "inter_node/ring_job.h"
#include "reduce_kernels.h"
#include "slices.h"

namespace hfreduce {

// ---- shared segment layout ----

std::size_t SegmentLayout::bytes_needed(int local_size, int depth, std::size_t slot_bytes) {
  const auto flags = static_cast<std::size_t>(3 * local_size * depth + depth) * sizeof(node::Flag);
  return flags + static_cast<std::size_t>(local_size + 1) * depth * slot_bytes;
}

SegmentLayout SegmentLayout::carve(void* base, int local_size, int depth, std::size_t slot_bytes) {
  SegmentLayout s;
  s.local_size = local_size;
  s.depth = depth;
  s.slot_bytes = slot_bytes;
  auto* flags = static_cast<node::Flag*>(base);
  const int per = local_size * depth;
  s.input_ready = flags;
  s.slice_done = flags + per;
  s.consumed = flags + 2 * per;
  s.global_ready = flags + 3 * per;
  auto* data = reinterpret_cast<char*>(flags + 3 * per + depth);
  s.inputs = data;
  s.reduced = data + static_cast<std::size_t>(local_size) * depth * slot_bytes;
  return s;
}

// ---- thread team for the slice reduce ----

ThreadTeam::ThreadTeam(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadTeam::~ThreadTeam() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadTeam::run(const std::function<void(int)>& fn) {
  if (workers_.empty()) {
    fn(0);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    pending_ = static_cast<int>(workers_.size());
    error_ = nullptr;
    ++generation_;
  }
  start_cv_.notify_all();
  // The caller's part may throw too: wait for the helpers anyway, since they still use fn.
  try {
    fn(0);
  } catch (...) {
    record_error(std::current_exception());
  }
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    error = std::exchange(error_, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

void ThreadTeam::record_error(std::exception_ptr e) {
  std::lock_guard lock(mutex_);
  if (!error_) error_ = std::move(e);
}

void ThreadTeam::worker(int id) {
  std::uint64_t seen = 0;
  while (true) {
    const std::function<void(int)>* job = nullptr;
    {
      std::unique_lock lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    // An exception must not leave the thread (std::terminate): the caller of run() rethrows it.
    try {
      (*job)(id);
    } catch (...) {
      record_error(std::current_exception());
    }
    {
      std::lock_guard lock(mutex_);
      --pending_;
    }
    done_cv_.notify_one();
  }
}

// ---- network engine ----

namespace {

constexpr int kUp = 0, kDown = 1;

int message_tag(std::uint32_t ticket, int tree, int phase) {
  return static_cast<int>(((ticket % 2048u) * 2u + static_cast<unsigned>(tree)) * 2u +
                          static_cast<unsigned>(phase));
}

void bitwise_or(void* acc, const void* in, std::size_t bytes) {
  auto* a = static_cast<unsigned char*>(acc);
  const auto* b = static_cast<const unsigned char*>(in);
  for (std::size_t i = 0; i < bytes; ++i) a[i] = static_cast<unsigned char>(a[i] | b[i]);
}

}  // namespace

NetworkEngine::NetworkEngine(std::unique_ptr<transport::Transport> transport,
                             const SegmentLayout& seg, const Options& options, int world_size)
    : transport_(std::move(transport)),
      seg_(seg),
      options_(options),
      world_size_(world_size),
      trees_(tree::build_double_binary_tree(transport_->nnodes())) {
  child_stride_ = seg_.slot_bytes / 2 + 64 * 8;
  child_buffers_.resize(static_cast<std::size_t>(seg_.depth) * 2 * 2 * child_stride_);
  ring_stride_ = inter_node::ring_scratch_bytes(seg_.slot_bytes, transport_->nnodes());
  ring_buffers_.resize(static_cast<std::size_t>(seg_.depth) * ring_stride_);
  thread_ = std::thread([this] { loop(); });
}

NetworkEngine::~NetworkEngine() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void NetworkEngine::submit(const Job& job) {
  {
    std::lock_guard lock(mutex_);
    job_ = job;
    busy_ = true;
  }
  cv_.notify_all();
}

double NetworkEngine::wait() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [this] { return !busy_; });
  if (error_) {
    auto e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
  return last_us_;
}

std::exception_ptr NetworkEngine::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

void NetworkEngine::loop() {
  while (true) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stop_ || job_.has_value(); });
      if (stop_) return;
      job = *job_;
      job_.reset();
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::exception_ptr err;
    try {
      run_job(job);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard lock(mutex_);
      last_us_ =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      error_ = err;
      busy_ = false;
    }
    cv_.notify_all();
  }
}

namespace {

// One half of a chunk on its way through one of the two trees.
struct TreeState {
  int stage = 0;  // 0 wait local+children, 1 up send, 2 down recv, 3 down sends, 4 done
  std::size_t begin = 0, n = 0;  // elements of the chunk this tree carries
  std::unique_ptr<transport::Operation> child_recv[2], up_send, down_recv, down_send[2];
};

struct InflightChunk {
  std::size_t index = 0;
  std::uint32_t ticket = 0;
  int slot = 0;
  bool local_done = false;
  TreeState trees[2];
  bool done() const { return local_done && trees[0].stage == 4 && trees[1].stage == 4; }
};

// One job of the network engine: admits chunks while slots are free, moves each chunk's two
// halves through their trees (reduce up, broadcast down) and retires finished chunks in order.
class TreeJob {
 public:
  TreeJob(transport::Transport& transport, const SegmentLayout& seg,
          const tree::DoubleBinaryTree& trees, char* child_buffers, std::size_t child_stride,
          const NetworkEngine::Job& job, int world_size)
      : transport_(transport),
        seg_(seg),
        trees_(trees),
        child_buffers_(child_buffers),
        child_stride_(child_stride),
        job_(job),
        world_size_(world_size),
        me_(transport.node()),
        es_(ffb::size_of(job.type)),
        combine_op_(job.op == ReduceOp::avg ? ReduceOp::sum : job.op) {}

  void run(double timeout_s);

 private:
  bool admit();
  bool advance(InflightChunk& c);
  bool advance_tree(InflightChunk& c, int t);
  void combine_children(InflightChunk& c, int t, char* half);
  bool retire();
  [[noreturn]] void timed_out(double timeout_s) const;
  char* child_buf(int slot, int t, int k) const {
    return child_buffers_ + ((static_cast<std::size_t>(slot) * 2 + t) * 2 + k) * child_stride_;
  }

  transport::Transport& transport_;
  const SegmentLayout& seg_;
  const tree::DoubleBinaryTree& trees_;
  char* child_buffers_;
  std::size_t child_stride_;
  const NetworkEngine::Job& job_;
  int world_size_;
  int me_;
  std::size_t es_;
  ReduceOp combine_op_;
  std::deque<InflightChunk> inflight_;
  std::size_t next_ = 0;
};

void TreeJob::run(double timeout_s) {
  auto last_progress = std::chrono::steady_clock::now();
  const auto timeout = std::chrono::duration<double>(timeout_s);
  int idle = 0;
  while (next_ < job_.nchunks || !inflight_.empty()) {
    bool progress = admit();
    for (auto& c : inflight_) progress = advance(c) || progress;
    progress = retire() || progress;
    const auto now = std::chrono::steady_clock::now();
    if (progress) {
      last_progress = now;
      idle = 0;
      continue;
    }
    if (now - last_progress > timeout) timed_out(timeout_s);
    // Nothing moved: poll gently so that oversubscribed ranks keep their cores.
    if (++idle > 64) sched_yield();
  }
}

// Admits chunks (in order) while slots are free and posts the receives from the children early.
bool TreeJob::admit() {
  bool progress = false;
  while (next_ < job_.nchunks && static_cast<int>(inflight_.size()) < seg_.depth) {
    InflightChunk c;
    c.index = next_;
    c.ticket = job_.first_ticket + static_cast<std::uint32_t>(next_) + 1u;
    c.slot = static_cast<int>(c.ticket % static_cast<std::uint32_t>(seg_.depth));
    const std::size_t n = std::min(job_.chunk_elems, job_.count - next_ * job_.chunk_elems);
    const std::size_t split = slice_range(n, 2, 0).second;  // each tree carries one half
    c.trees[0].begin = 0;
    c.trees[0].n = split;
    c.trees[1].begin = split;
    c.trees[1].n = n - split;
    for (int t = 0; t < 2; ++t) {
      auto& ts = c.trees[t];
      if (ts.n == 0) {
        ts.stage = 4;
        continue;
      }
      const auto& node = trees_.tree[t][me_];
      for (int k = 0; k < node.num_children(); ++k)
        ts.child_recv[k] = transport_.post_recv(child_buf(c.slot, t, k), ts.n * es_,
                                                node.children[k], message_tag(c.ticket, t, kUp));
    }
    inflight_.push_back(std::move(c));
    ++next_;
    progress = true;
  }
  return progress;
}

// Moves one chunk on where it can; true if anything moved. Nothing moves before the node's local
// reduce of the chunk is complete.
bool TreeJob::advance(InflightChunk& c) {
  bool progress = false;
  if (!c.local_done) {
    for (int l = 0; l < seg_.local_size; ++l)
      if (!node::reached(seg_.slice(l, c.slot).value.load(std::memory_order_acquire), c.ticket))
        return false;
    c.local_done = true;
    progress = true;
  }
  for (int t = 0; t < 2; ++t) progress = advance_tree(c, t) || progress;
  return progress;
}

// Fixed order (own partial, child 0, child 1): every run combines identically.
void TreeJob::combine_children(InflightChunk& c, int t, char* half) {
  const auto& ts = c.trees[t];
  const auto& node = trees_.tree[t][me_];
  for (int k = 0; k < node.num_children(); ++k) {
    if (job_.bitwise_or)
      bitwise_or(half, child_buf(c.slot, t, k), ts.n * es_);
    else
      kernels::combine(job_.type, combine_op_, half, child_buf(c.slot, t, k), half, ts.n);
  }
  if (node.parent < 0 && job_.op == ReduceOp::avg && !job_.bitwise_or) {
    const void* in[1] = {half};
    kernels::reduce(job_.type, ReduceOp::avg, in, 1, half, ts.n, world_size_);
  }
}

bool TreeJob::advance_tree(InflightChunk& c, int t) {
  auto& ts = c.trees[t];
  const auto& node = trees_.tree[t][me_];
  char* half = seg_.reduced_slot(c.slot) + ts.begin * es_;
  const std::size_t bytes = ts.n * es_;
  bool progress = false;
  if (ts.stage == 0) {
    for (int k = 0; k < node.num_children(); ++k)
      if (!ts.child_recv[k]->test()) return false;
    combine_children(c, t, half);
    if (node.parent < 0) {
      for (int k = 0; k < node.num_children(); ++k)
        ts.down_send[k] =
            transport_.post_send(half, bytes, node.children[k], message_tag(c.ticket, t, kDown));
      ts.stage = 3;
    } else {
      ts.up_send = transport_.post_send(half, bytes, node.parent, message_tag(c.ticket, t, kUp));
      ts.stage = 1;
    }
    progress = true;
  }
  if (ts.stage == 1 && ts.up_send->test()) {
    // Only now may the final result overwrite the partial we sent up.
    ts.down_recv = transport_.post_recv(half, bytes, node.parent, message_tag(c.ticket, t, kDown));
    ts.stage = 2;
    progress = true;
  }
  if (ts.stage == 2 && ts.down_recv->test()) {
    for (int k = 0; k < node.num_children(); ++k)
      ts.down_send[k] =
          transport_.post_send(half, bytes, node.children[k], message_tag(c.ticket, t, kDown));
    ts.stage = 3;
    progress = true;
  }
  if (ts.stage == 3) {
    bool sent = true;
    for (int k = 0; k < node.num_children(); ++k) sent = sent && ts.down_send[k]->test();
    if (sent) {
      ts.stage = 4;
      progress = true;
    }
  }
  return progress;
}

// Retires finished chunks in order: their slots' results are final everywhere below us.
bool TreeJob::retire() {
  bool progress = false;
  while (!inflight_.empty() && inflight_.front().done()) {
    node::publish(seg_.global(inflight_.front().slot), inflight_.front().ticket);
    inflight_.pop_front();
    progress = true;
  }
  return progress;
}

void TreeJob::timed_out(double timeout_s) const {
  const auto& c = inflight_.front();
  throw Error(Status::timeout, "hfreduce: node " + std::to_string(me_) +
                                   " made no inter-node progress for " + std::to_string(timeout_s) +
                                   " s on chunk " + std::to_string(c.index) + " (tree stages " +
                                   std::to_string(c.trees[0].stage) + "/" +
                                   std::to_string(c.trees[1].stage) +
                                   (c.local_done ? "" : ", local reduce not finished") + ")");
}

}  // namespace

void NetworkEngine::run_job(const Job& job) {
  if (job.algorithm == Algorithm::ring) {
    inter_node::run_ring_job(*transport_, seg_, ring_buffers_.data(), ring_stride_, job,
                             world_size_, options_.timeout_s);
    return;
  }
  TreeJob(*transport_, seg_, trees_, child_buffers_.data(), child_stride_, job, world_size_)
      .run(options_.timeout_s);
}

}  // namespace hfreduce
