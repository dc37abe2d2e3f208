#include "timing.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "sync.h"

namespace sb {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void sleep_until_s(double t) {
  // In slices of at most 20 ms, so a stop signal ends the wait at once: Open MPI's mpirun follows
  // its SIGTERM with SIGKILL after a second, and the clean-up must run before that.
  for (;;) {
    if (stop_requested()) return;
    const double left = t - now_s();
    if (left <= 0) return;
    if (left > 200e-6)
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(left - 100e-6, 0.02)));
    else
      std::this_thread::yield();
  }
}

}  // namespace sb
