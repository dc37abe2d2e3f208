// The one clock every timing in storage_bench uses.
#pragma once

namespace sb {

// Monotonic clock in seconds (steady_clock).
double now_s();
// Sleeps until now_s() >= t; returns early once a stop signal arrived (in slices of at most 20 ms).
void sleep_until_s(double t);

}  // namespace sb
