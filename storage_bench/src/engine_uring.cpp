// io_uring engine (liburing): one ring per rank, depth slots, reaped in batches.
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

#include "build_features.h"
#if FFB_HAVE_LIBURING

#include <fmt/format.h>
#include <liburing.h>

#include "engine.h"
#include "fsutil.h"
#include "sync.h"

namespace sb {

namespace {

// A token unique to each thread for the life of the process (std::thread::id and tids are reused
// after a thread ends; a single-issuer ring must be recreated for every new submitting thread).
std::uint64_t thread_token() {
  static std::atomic<std::uint64_t> next{1};
  thread_local const std::uint64_t token = next.fetch_add(1);
  return token;
}

class UringEngine final : public Engine {
 public:
  UringEngine(unsigned depth, unsigned submit_batch)
      : depth_(depth ? depth : 1), batch_(submit_batch ? submit_batch : 1), slots_(depth_) {
    init_ring();
    free_.reserve(depth_);
    for (unsigned i = 0; i < depth_; ++i) free_.push_back(depth_ - 1 - i);
  }

  // One thread submits and reaps (fio's setup): completions run as task work when we wait
  // (COOP_TASKRUN, DEFER_TASKRUN) instead of interrupting us with IPIs, and the CQ is as deep as
  // the SQ. Older kernels without these flags get a plain ring.
  void init_ring();
  ~UringEngine() override {
    if (have_ring_) io_uring_queue_exit(&ring_);
  }
  UringEngine(const UringEngine&) = delete;
  UringEngine& operator=(const UringEngine&) = delete;

  std::string_view name() const override { return "io_uring"; }
  unsigned depth() const override { return depth_; }

  void run(const OpSource& next, const OpSink& done) override;

 private:
  // The state of one run(): the caller's source and sink, and where the loop stands.
  struct RunState {
    RunState(const OpSource& source, const OpSink& sink) : next(source), done(sink) {}
    const OpSource& next;
    const OpSink& done;
    bool source_done = false, stopping = false, have_pending = false;
    std::exception_ptr error;
    IoOp pending;
    unsigned inflight = 0, queued = 0;
  };

  // Queues the (rest of the) operation in `slot`.
  void prep(RunState& st, unsigned slot);

  void complete(RunState& st, unsigned slot, int err);

  // Takes operations from the source until the ring is full, the source is empty or the next
  // operation is not due yet.
  void fill(RunState& st);

  // One system call submits what is queued and waits for a completion (fio's rhythm: the device
  // queue is refilled as soon as completions are seen); with a paced operation pending, waits at
  // most until it is due. False: nothing to reap yet (timeout, signal), go round again.
  bool wait_for_completion(RunState& st);

  // Every completion seen: short transfers and EAGAIN continue, the rest go to the sink.
  void reap(RunState& st);

  struct Slot {
    IoOp op;
    std::size_t done = 0;
    double submit = 0.0;
  };
  unsigned depth_;
  unsigned batch_;
  io_uring ring_{};
  bool have_ring_ = false;
  std::uint64_t owner_ = 0;
  std::vector<Slot> slots_;
  std::vector<unsigned> free_;
};

void UringEngine::init_ring() {
  io_uring_params p{};
#if defined(IORING_SETUP_COOP_TASKRUN) && defined(IORING_SETUP_SINGLE_ISSUER) && \
    defined(IORING_SETUP_DEFER_TASKRUN)
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN;
  p.cq_entries = depth_;
  int ret = io_uring_queue_init_params(depth_, &ring_, &p);
  if (ret == -EINVAL) {
    p = io_uring_params{};
    ret = io_uring_queue_init_params(depth_, &ring_, &p);
  }
#else
  int ret = io_uring_queue_init_params(depth_, &ring_, &p);
#endif
  owner_ = thread_token();
  if (ret < 0) {
    const int e = -ret;
    std::string hint;
    if (e == EPERM || e == ENOSYS)
      hint =
          " (io_uring is disabled or unavailable here: see /proc/sys/kernel/io_uring_disabled; "
          "use --engine posix)";
    else if (e == ENOMEM)
      hint = " (locked-memory limit too small for this depth: raise ulimit -l or lower --qd)";
    throw IoError(
        fmt::format("io_uring_queue_init (depth {}): {}{}", depth_, std::strerror(e), hint), e);
  }
  have_ring_ = true;
}

void UringEngine::run(const OpSource& next, const OpSink& done) {
  if (thread_token() != owner_) {  // a single-issuer ring belongs to one thread
    io_uring_queue_exit(&ring_);
    have_ring_ = false;
    init_ring();
  }
  RunState st(next, done);
  for (;;) {
    fill(st);
    if (stop_requested()) st.stopping = true;
    if (st.inflight == 0) {
      if (st.stopping || st.source_done) break;
      if (st.have_pending) sleep_until_s(st.pending.not_before);
      continue;
    }
    if (wait_for_completion(st)) reap(st);
  }
  if (st.error) std::rethrow_exception(st.error);
}

void UringEngine::prep(RunState& st, unsigned slot) {
  Slot& s = slots_[slot];
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) throw std::logic_error("io_uring: no free submission entry");
  char* p = static_cast<char*>(s.op.buf) + s.done;
  const auto n = static_cast<unsigned>(s.op.len - s.done);
  if (s.op.kind == OpKind::read)
    io_uring_prep_read(sqe, s.op.fd, p, n, s.op.offset + s.done);
  else
    io_uring_prep_write(sqe, s.op.fd, p, n, s.op.offset + s.done);
  io_uring_sqe_set_data64(sqe, slot);
  ++st.queued;
}

void UringEngine::complete(RunState& st, unsigned slot, int err) {
  Slot& s = slots_[slot];
  IoDone d;
  d.bytes = s.done;
  d.err = err;
  d.submit = s.submit;
  d.complete = now_s();
  --st.inflight;
  free_.push_back(slot);
  try {
    if (!st.done(s.op, d)) st.stopping = true;
  } catch (...) {
    // Never unwind with operations in flight (the kernel still writes into their buffers):
    // remember the error, drain, then rethrow.
    if (!st.error) st.error = std::current_exception();
    st.stopping = true;
  }
}

void UringEngine::fill(RunState& st) {
  while (!st.stopping && !st.source_done && st.inflight < depth_) {
    if (!st.have_pending) {
      bool got = false;
      try {
        got = st.next(st.pending);
      } catch (...) {
        st.error = std::current_exception();
        st.stopping = true;
        return;
      }
      if (!got) {
        st.source_done = true;
        return;
      }
      st.have_pending = true;
    }
    if (st.pending.not_before > 0 && st.pending.not_before > now_s()) return;
    const unsigned slot = free_.back();
    free_.pop_back();
    slots_[slot] = Slot{st.pending, 0, now_s()};
    prep(st, slot);
    ++st.inflight;
    st.have_pending = false;
    // fio's iodepth_batch_submit: by default every operation goes to the kernel at once (on
    // virtual disks, batching kicks measurably lowers random-read IOPS).
    if (st.queued >= batch_) {
      const int r = io_uring_submit(&ring_);
      if (r < 0 && r != -EINTR && r != -EAGAIN)
        throw IoError(fmt::format("io_uring_submit: {}", std::strerror(-r)), -r);
      if (r > 0) st.queued = 0;
    }
  }
}

bool UringEngine::wait_for_completion(RunState& st) {
  io_uring_cqe* cqe = nullptr;
  int ret = 0;
  if (st.have_pending && !st.stopping && st.inflight < depth_) {
    const double wait = std::max(1e-6, st.pending.not_before - now_s());
    __kernel_timespec ts{};
    ts.tv_sec = static_cast<long long>(wait);
    ts.tv_nsec = static_cast<long long>((wait - std::floor(wait)) * 1e9);
    ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    st.queued = 0;
  } else {
    ret = io_uring_submit_and_wait(&ring_, 1);
    st.queued = 0;
    if (ret >= 0) ret = io_uring_peek_cqe(&ring_, &cqe);
  }
  if (ret == -EINTR || ret == -EAGAIN || ret == -ETIME) return false;
  if (ret < 0)
    throw IoError(fmt::format("io_uring_submit_and_wait: {}", std::strerror(-ret)), -ret);
  return true;
}

void UringEngine::reap(RunState& st) {
  io_uring_cqe* cqe = nullptr;
  unsigned head = 0, seen = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    const auto slot = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
    Slot& s = slots_[slot];
    const int res = cqe->res;
    if (res < 0) {
      if ((res == -EAGAIN || res == -EINTR) && !stop_requested()) {
        prep(st, slot);  // retry the remainder
        continue;
      }
      complete(st, slot, -res);
    } else if (res == 0) {
      complete(st, slot, 0);  // end of file: short transfer
    } else {
      s.done += static_cast<std::size_t>(res);
      if (s.done < s.op.len && !st.stopping)
        prep(st, slot);  // short transfer: continue with the rest
      else
        complete(st, slot, 0);
    }
  }
  io_uring_cq_advance(&ring_, seen);
}

}  // namespace

std::unique_ptr<Engine> make_uring_engine(unsigned depth, unsigned submit_batch) {
  return std::make_unique<UringEngine>(depth, submit_batch);
}

}  // namespace sb

#endif  // FFB_HAVE_LIBURING
