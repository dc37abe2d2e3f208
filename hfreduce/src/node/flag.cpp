#include "node/flag.h"

#include <cerrno>
#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hfreduce/hfreduce.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HFREDUCE_PAUSE() _mm_pause()
#else
#define HFREDUCE_PAUSE() ((void)0)
#endif

namespace hfreduce::node {

namespace {

// Shared (not FUTEX_PRIVATE): the flag lives in memory mapped by several processes.
long futex_wait(std::atomic<std::uint32_t>* addr, std::uint32_t expected, const timespec* timeout) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), FUTEX_WAIT, expected, timeout,
                 nullptr, 0);
}
long futex_wake(std::atomic<std::uint32_t>* addr) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), FUTEX_WAKE, INT_MAX, nullptr,
                 nullptr, 0);
}

constexpr long kSleepNs = 2'000'000;  // then sleep on the futex, re-checking the deadline

}  // namespace

void publish(Flag& flag, std::uint32_t v) {
  flag.value.store(v, std::memory_order_seq_cst);
  // Pairs with the waiter's increment-then-read: either it sees v, or we see it waiting.
  if (flag.waiters.load(std::memory_order_seq_cst) != 0) futex_wake(&flag.value);
}

bool wait_reached_for(Flag& flag, std::uint32_t target, Seconds timeout, WaitStats& stats) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = start + std::chrono::duration_cast<clock::duration>(timeout);
  auto done = [&] {
    stats.waited_us += std::chrono::duration<double, std::micro>(clock::now() - start).count();
    return true;
  };
  for (int i = 0; i < stats.spins; ++i) {
    if (reached(flag.value.load(std::memory_order_acquire), target)) return done();
    HFREDUCE_PAUSE();
  }
  for (int i = 0; i < stats.yields; ++i) {
    if (reached(flag.value.load(std::memory_order_acquire), target)) return done();
    sched_yield();
  }
  while (true) {
    flag.waiters.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t seen = flag.value.load(std::memory_order_seq_cst);
    if (reached(seen, target)) {
      flag.waiters.fetch_sub(1, std::memory_order_relaxed);
      return done();
    }
    const timespec ts{0, kSleepNs};
    futex_wait(&flag.value, seen, &ts);
    flag.waiters.fetch_sub(1, std::memory_order_relaxed);
    if (reached(flag.value.load(std::memory_order_acquire), target)) return done();
    if (clock::now() > deadline) {
      stats.waited_us += std::chrono::duration<double, std::micro>(clock::now() - start).count();
      return false;
    }
  }
}

void throw_timeout(const std::string& what) { throw Error(Status::timeout, what); }

}  // namespace hfreduce::node
