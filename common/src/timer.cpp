#include "ffb/timer.h"

#include <chrono>

#include <fmt/format.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

namespace ffb {

namespace {

bool invariant_tsc() {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0x80000007, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (edx & (1u << 8)) != 0;  // constant rate in every P- and C-state
#else
  return false;
#endif
}

}  // namespace

std::uint64_t TickClock::steady_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

TickClock::TickClock() : tsc_(invariant_tsc()) {
#if defined(__x86_64__)
  if (tsc_) {
    // Calibrate over ~20 ms of steady_clock: the error is far below the run-to-run noise.
    const std::uint64_t n0 = steady_ns();
    const std::uint64_t t0 = __rdtsc();
    std::uint64_t n1 = n0;
    while (n1 - n0 < 20'000'000) n1 = steady_ns();
    const std::uint64_t t1 = __rdtsc();
    if (t1 > t0) {
      us_per_tick_ = static_cast<double>(n1 - n0) / 1e3 / static_cast<double>(t1 - t0);
      description_ =
          fmt::format("tsc ({:.4f} GHz, calibrated against steady_clock)", 1e-3 / us_per_tick_);
      return;
    }
    tsc_ = false;
  }
#endif
  description_ = "steady_clock";
}

}  // namespace ffb
