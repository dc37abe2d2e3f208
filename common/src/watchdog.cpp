#include "ffb/watchdog.h"

#include <cstdio>
#include <string>
#include <unistd.h>

#include "ffb/error.h"

namespace ffb {

Watchdog::Watchdog(MPI_Comm comm, double timeout_s, std::function<std::string()> describe)
    : comm_(comm), timeout_s_(timeout_s), describe_(std::move(describe)) {
  if (timeout_s_ > 0) thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::loop() {
  using clock = std::chrono::steady_clock;
  const auto limit =
      std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_s_));
  // Poll often enough that the overshoot is small next to the timeout.
  const auto period = std::min<clock::duration>(limit / 10 + std::chrono::milliseconds(1),
                                                std::chrono::milliseconds(250));
  std::unique_lock lock(mutex_);
  std::uint64_t seen = 0;  // the armed operation we are timing, and since when we have seen it
  auto seen_since = clock::now();
  while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
    const auto armed = armed_.load(std::memory_order_relaxed);
    if (armed == 0 || armed != seen) {
      seen = armed;
      seen_since = clock::now();
      continue;
    }
    const auto waited = clock::now() - seen_since;
    if (waited < limit) continue;
    int rank = 0;
    MPI_Comm_rank(comm_, &rank);
    const std::string what = describe_ ? describe_() : std::string("a collective");
    std::fprintf(stderr,
                 "ffbench watchdog: rank %d waited %.1f s (-T %.0f) for %s; aborting the job\n",
                 rank, std::chrono::duration<double>(waited).count(), timeout_s_, what.c_str());
    std::fflush(stderr);
    MPI_Abort(comm_, kExitTimeout);
    _exit(kExitTimeout);  // MPI_Abort should not return; make sure nothing hangs if it does
  }
}

}  // namespace ffb
