// A 32-bit sequence flag in shared memory that one process publishes and others wait on:
// spin briefly, then yield, then sleep on a futex, so more ranks than cores do not collapse.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace hfreduce::node {

// Wrap-safe "a has reached b" for sequence numbers that only grow.
inline bool reached(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>(a - b) >= 0;
}

struct alignas(64) Flag {
  std::atomic<std::uint32_t> value{0};
  std::atomic<std::uint32_t> waiters{0};
  // The rest of the line, free for a few bytes that travel with the flag: a waiter that sees the
  // value has them in the same cache-line transfer (the small path's inline messages).
  static constexpr std::size_t kPayloadBytes = 56;
  unsigned char payload[kPayloadBytes];
};
static_assert(sizeof(Flag) == 64, "one flag per cache line");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "flags must be lock-free in shm");

// Stores v (release + full fence) and wakes sleepers if there are any.
void publish(Flag& flag, std::uint32_t v);

// How a rank waits, and how long it has waited. With more local ranks than cores, spinning only
// steals the core from the rank being waited for: spin little and yield instead.
struct WaitStats {
  double waited_us = 0;
  int spins = 4000;  // pause-loop iterations before yielding (a few microseconds)
  int yields = 16;   // sched_yield calls before sleeping on the futex
};

using Seconds = std::chrono::duration<double>;

// Waits until flag.value has reached target. Throws hfreduce::Error(timeout) with describe() in
// the message when it has waited `timeout` without progress.
template <class Describe>
void wait_reached(Flag& flag, std::uint32_t target, Seconds timeout, WaitStats& stats,
                  Describe&& describe);

// Non-template core of wait_reached (returns false on timeout).
bool wait_reached_for(Flag& flag, std::uint32_t target, Seconds timeout, WaitStats& stats);

[[noreturn]] void throw_timeout(const std::string& what);

template <class Describe>
void wait_reached(Flag& flag, std::uint32_t target, Seconds timeout, WaitStats& stats,
                  Describe&& describe) {
  if (reached(flag.value.load(std::memory_order_acquire), target)) return;
  if (!wait_reached_for(flag, target, timeout, stats)) throw_timeout(describe());
}

}  // namespace hfreduce::node
