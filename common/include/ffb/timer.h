// The harness's iteration clock. On x86 with an invariant TSC it reads the time-stamp counter
// (about 9 ns a read on the first build machine and 11 ns on the 2-core EPYC VM, against 22 and
// 28 ns for steady_clock), calibrated once against steady_clock, so that timing 8-byte
// collectives adds little; elsewhere it is steady_clock.
#pragma once

#include <cstdint>
#include <string>

namespace ffb {

class TickClock {
 public:
  TickClock();  // calibrates (about 20 ms) when the TSC is used
  // Inline: the harness reads it once per timed iteration.
  std::uint64_t now() const {
#if defined(__x86_64__)
    if (tsc_) return __builtin_ia32_rdtsc();
#endif
    return steady_ns();
  }
  double to_us(std::uint64_t ticks) const { return static_cast<double>(ticks) * us_per_tick_; }
  const std::string& description() const { return description_; }  // stored with the results

 private:
  static std::uint64_t steady_ns();

  bool tsc_ = false;
  double us_per_tick_ = 1e-3;  // steady_clock ticks are nanoseconds
  std::string description_;
};

}  // namespace ffb
