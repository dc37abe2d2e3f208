#include "inter_node/ring_job.h"

#include <chrono>
#include <deque>
#include <memory>
#include <sched.h>
#include <string>

#include "reduce_kernels.h"
#include "slices.h"

namespace hfreduce::inter_node {
namespace {

// Ring tags sit above the tree's (< 8192); steps of one chunk share a tag: they are ordered
// between one pair of leaders (MPI's non-overtaking rule; any transport must keep it).
constexpr int kRingTagBase = 8192;
int ring_tag(std::uint32_t ticket) { return kRingTagBase + static_cast<int>(ticket % 8192u); }

struct RingChunk {
  std::size_t index = 0;
  std::uint32_t ticket = 0;
  int slot = 0;
  std::size_t n = 0;  // elements of this chunk
  bool local_done = false;
  int step = 0;  // 0 .. 2(nnodes-1); steps < nnodes-1 reduce-scatter, the rest allgather
  std::unique_ptr<transport::Operation> send, recv;
};

class RingJob {
 public:
  RingJob(transport::Transport& transport, const SegmentLayout& seg, char* scratch,
          std::size_t scratch_stride, const NetworkEngine::Job& job, int world_size)
      : transport_(transport),
        seg_(seg),
        scratch_(scratch),
        scratch_stride_(scratch_stride),
        job_(job),
        world_size_(world_size),
        me_(transport.node()),
        nn_(transport.nnodes()),
        es_(ffb::size_of(job.type)),
        combine_op_(job.op == ReduceOp::avg ? ReduceOp::sum : job.op) {}

  void run(double timeout_s);

 private:
  bool admit();
  bool advance(RingChunk& c);
  void post_step(RingChunk& c);
  void finish_step(RingChunk& c);
  bool retire();
  [[noreturn]] void timed_out(double timeout_s) const;
  int segment(int k) const { return ((k % nn_) + nn_) % nn_; }
  std::pair<std::size_t, std::size_t> piece(const RingChunk& c, int seg) const {
    return slice_range(c.n, nn_, seg);
  }
  char* element(const RingChunk& c, std::size_t i) const {
    return seg_.reduced_slot(c.slot) + i * es_;
  }

  transport::Transport& transport_;
  const SegmentLayout& seg_;
  char* scratch_;
  std::size_t scratch_stride_;
  const NetworkEngine::Job& job_;
  int world_size_;
  int me_, nn_;
  std::size_t es_;
  ReduceOp combine_op_;
  std::deque<RingChunk> inflight_;
  std::size_t next_ = 0;
};

void RingJob::run(double timeout_s) {
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
    if (++idle > 64) sched_yield();  // oversubscribed ranks keep their cores
  }
}

bool RingJob::admit() {
  bool progress = false;
  while (next_ < job_.nchunks && static_cast<int>(inflight_.size()) < seg_.depth) {
    RingChunk c;
    c.index = next_;
    c.ticket = job_.first_ticket + static_cast<std::uint32_t>(next_) + 1u;
    c.slot = static_cast<int>(c.ticket % static_cast<std::uint32_t>(seg_.depth));
    c.n = std::min(job_.chunk_elems, job_.count - next_ * job_.chunk_elems);
    inflight_.push_back(std::move(c));
    ++next_;
    progress = true;
  }
  return progress;
}

// Step s < nn-1 (reduce-scatter): send piece me-s, receive piece me-s-1 into scratch and combine
// it into ours. Step nn-1+k (allgather): send piece me+1-k, receive piece me-k in place. A step's
// buffers are free once the previous step completed (each step waits for its send and receive).
void RingJob::post_step(RingChunk& c) {
  const int right = segment(me_ + 1), left = segment(me_ - 1);
  const bool scatter = c.step < nn_ - 1;
  const int k = scatter ? c.step : c.step - (nn_ - 1);
  const int send_piece = scatter ? segment(me_ - k) : segment(me_ + 1 - k);
  const int recv_piece = scatter ? segment(me_ - k - 1) : segment(me_ - k);
  const auto [sb, se] = piece(c, send_piece);
  const auto [rb, re] = piece(c, recv_piece);
  const int tag = ring_tag(c.ticket);
  char* into =
      scatter ? scratch_ + static_cast<std::size_t>(c.slot) * scratch_stride_ : element(c, rb);
  c.recv = transport_.post_recv(into, (re - rb) * es_, left, tag);
  c.send = transport_.post_send(element(c, sb), (se - sb) * es_, right, tag);
}

// Fixed order (our partial, then the left neighbour's): every run combines identically, and the
// allgather hands every leader the same bits.
void RingJob::finish_step(RingChunk& c) {
  if (c.step < nn_ - 1) {
    const auto [rb, re] = piece(c, segment(me_ - c.step - 1));
    char* own = element(c, rb);
    const char* in = scratch_ + static_cast<std::size_t>(c.slot) * scratch_stride_;
    if (job_.bitwise_or) {
      for (std::size_t i = 0; i < (re - rb) * es_; ++i)
        own[i] = static_cast<char>(static_cast<unsigned char>(own[i]) |
                                   static_cast<unsigned char>(in[i]));
    } else if (re > rb) {
      kernels::combine(job_.type, combine_op_, own, in, own, re - rb);
    }
    // After the last reduce-scatter step our piece me+1 holds every node's contribution.
    if (c.step == nn_ - 2 && job_.op == ReduceOp::avg && !job_.bitwise_or && re > rb) {
      const void* all[1] = {own};
      kernels::reduce(job_.type, ReduceOp::avg, all, 1, own, re - rb, world_size_);
    }
  }
  c.send.reset();
  c.recv.reset();
  ++c.step;
}

bool RingJob::advance(RingChunk& c) {
  bool progress = false;
  if (!c.local_done) {
    for (int l = 0; l < seg_.local_size; ++l)
      if (!node::reached(seg_.slice(l, c.slot).value.load(std::memory_order_acquire), c.ticket))
        return false;
    c.local_done = true;
    progress = true;
  }
  while (c.step < 2 * (nn_ - 1)) {
    if (!c.send) {
      post_step(c);
      progress = true;
    }
    if (!c.recv->test() || !c.send->test()) break;
    finish_step(c);
    progress = true;
  }
  return progress;
}

bool RingJob::retire() {
  bool progress = false;
  while (!inflight_.empty() && inflight_.front().local_done &&
         inflight_.front().step == 2 * (nn_ - 1)) {
    node::publish(seg_.global(inflight_.front().slot), inflight_.front().ticket);
    inflight_.pop_front();
    progress = true;
  }
  return progress;
}

void RingJob::timed_out(double timeout_s) const {
  const auto& c = inflight_.front();
  throw Error(Status::timeout, "hfreduce: node " + std::to_string(me_) +
                                   " made no inter-node progress for " + std::to_string(timeout_s) +
                                   " s on chunk " + std::to_string(c.index) + " (ring step " +
                                   std::to_string(c.step) + " of " + std::to_string(2 * (nn_ - 1)) +
                                   (c.local_done ? "" : ", local reduce not finished") + ")");
}

}  // namespace

std::size_t ring_scratch_bytes(std::size_t slot_bytes, int nnodes) {
  // slice_range pieces are whole 64-element units: at most two units (of up to 8 B elements) over.
  return slot_bytes / static_cast<std::size_t>(nnodes) + 2 * kSliceUnit * 8 + 64;
}

void run_ring_job(transport::Transport& transport, const SegmentLayout& seg, char* scratch,
                  std::size_t scratch_stride, const NetworkEngine::Job& job, int world_size,
                  double timeout_s) {
  RingJob(transport, seg, scratch, scratch_stride, job, world_size).run(timeout_s);
}

}  // namespace hfreduce::inter_node
