// The host-side bookkeeping of the CUDA copy stage (cuda_copy_stage.cu), in plain C++ so CI can
// unit-test it without a GPU: which device a rank binds to, which host ranges are pinned, and the
// gate a stream waits on until an asynchronous operation is complete.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stdexcept>
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

}  // namespace hfreduce::copy
