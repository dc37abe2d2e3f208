// The host-side bookkeeping of the CUDA copy stage (cuda_copy_stage.cu, cuda_completion.cu), in
// plain C++ so CI can unit-test it without a GPU: which device a rank binds to, which host ranges
// are pinned, the gate a host function waits on (StreamCompletion::host_func) and the ticket values
// a stream waits for (StreamCompletion::stream_wait).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace hfreduce::copy {

// The device for Options::cuda_device (or the local rank when it is -1): modulo the visible
// devices, as the option documents. Throws std::invalid_argument when there are none.
inline int choose_device(int requested, int device_count) {
  if (device_count <= 0) throw std::invalid_argument("no CUDA device is visible");
  if (requested < 0) requested = 0;
  return requested % device_count;
}

// Host ranges this process registered with cudaHostRegister (pinned for the copy engines). A
// range is registered once; copies into any part of it use it.
class HostRanges {
 public:
  struct Range {
    std::uintptr_t begin = 0, end = 0;
    bool owned = true;  // false: someone else had registered it; do not unregister
  };
  // Records [base, base + bytes). Returns false (and records nothing) when it is already covered
  // or empty.
  bool add(const void* base, std::size_t bytes, bool owned = true) {
    if (bytes == 0 || covers(base, bytes)) return false;
    const auto b = reinterpret_cast<std::uintptr_t>(base);
    ranges_.push_back({b, b + bytes, owned});
    return true;
  }
  bool covers(const void* p, std::size_t bytes) const {
    const auto b = reinterpret_cast<std::uintptr_t>(p);
    return std::any_of(ranges_.begin(), ranges_.end(),
                       [&](const Range& r) { return b >= r.begin && b + bytes <= r.end; });
  }
  const std::vector<Range>& ranges() const { return ranges_; }
  void clear() { ranges_.clear(); }

 private:
  std::vector<Range> ranges_;
};

// A one-shot gate: wait() blocks until release(). The CUDA stage enqueues a host function on the
// caller's stream that waits on it, so the stream stalls until the operation has completed.
class Gate {
 public:
  void release() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return open_; });
  }
  bool released() const {
    std::lock_guard lock(mutex_);
    return open_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// The ticket values of StreamCompletion::stream_wait. Every queued operation gets the next 32-bit
// ticket; the caller's stream waits (cuStreamWaitValue32, CU_STREAM_WAIT_VALUE_GEQ) until the flag
// reaches it. finish() is called once per ticket when its operation is complete, has failed or will
// never run; the flag then advances to the highest ticket below which every ticket is finished, so
// a stream is released neither early (a later operation finishing first never releases an earlier
// one's waiters) nor never (a failed or dropped operation still finishes its ticket).
//
// Wrap-around: the device compares cyclically, (int32_t)(flag - ticket) >= 0 (reached() below), so
// the 32-bit values may wrap as long as fewer than 2^31 tickets are outstanding; issue() refuses
// past max_outstanding (2^30). The flag is written under the book's lock, so it never moves
// backwards.
class TicketBook {
 public:
  static constexpr std::size_t kMaxOutstanding = std::size_t{1} << 30;

  // `flag`: the host-mapped word the device reads (4-byte aligned); set to `start` here.
  explicit TicketBook(std::uint32_t* flag, std::uint32_t start = 0,
                      std::size_t max_outstanding = kMaxOutstanding)
      : flag_(flag), max_outstanding_(std::min(max_outstanding, kMaxOutstanding)), done_(start) {
    publish(start);
  }

  // The ticket of the next operation (start + 1, start + 2, ..., wrapping past 2^32 - 1).
  std::uint32_t issue() {
    std::lock_guard lock(mutex_);
    if (window_.size() >= max_outstanding_)
      throw std::length_error("hfreduce: " + std::to_string(window_.size()) +
                              " stream-ordered operations outstanding; at most " +
                              std::to_string(max_outstanding_) + " may be");
    window_.push_back(false);
    return done_ + static_cast<std::uint32_t>(window_.size());
  }

  // Marks `ticket` finished (its operation is complete, failed or will never run) and advances the
  // flag past every leading finished ticket. Throws std::invalid_argument for a ticket that is not
  // outstanding (never issued, or finished already).
  void finish(std::uint32_t ticket) {
    std::lock_guard lock(mutex_);
    const std::uint32_t offset = ticket - done_ - 1u;  // position in the window, wrap-safe
    if (offset >= window_.size() || window_[offset])
      throw std::invalid_argument("hfreduce: stream ticket " + std::to_string(ticket) +
                                  " is not outstanding (flag at " + std::to_string(done_) + ")");
    window_[offset] = true;
    std::uint32_t advanced = 0;
    while (!window_.empty() && window_.front()) {
      window_.pop_front();
      ++advanced;
    }
    if (advanced > 0) {
      done_ += advanced;
      publish(done_);
    }
  }

  // Finishes every outstanding ticket (tear-down: no stream may wait on the flag afterwards).
  void finish_all() {
    std::lock_guard lock(mutex_);
    done_ += static_cast<std::uint32_t>(window_.size());
    window_.clear();
    publish(done_);
  }

  std::uint32_t published() const {
    std::lock_guard lock(mutex_);
    return done_;
  }
  std::size_t outstanding() const {
    std::lock_guard lock(mutex_);
    return window_.size();
  }

  // The device's test for a stream waiting on `ticket` (CU_STREAM_WAIT_VALUE_GEQ, cyclic).
  static bool reached(std::uint32_t flag, std::uint32_t ticket) {
    return static_cast<std::int32_t>(flag - ticket) >= 0;
  }

 private:
  void publish(std::uint32_t value) {
    std::atomic_ref<std::uint32_t>(*flag_).store(value, std::memory_order_release);
  }

  std::uint32_t* flag_;
  const std::size_t max_outstanding_;
  mutable std::mutex mutex_;
  std::uint32_t done_;       // every ticket up to this one is finished; the flag's value
  std::deque<bool> window_;  // tickets done_ + 1, done_ + 2, ...: finished yet?
};

}  // namespace hfreduce::copy
