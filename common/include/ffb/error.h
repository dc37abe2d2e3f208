// Errors the harness reports to the user: one clear line, and the exit status to use.
#pragma once

#include <stdexcept>
#include <string>

namespace ffb {

// Exit statuses every ffbench program uses.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // a measurement ran but failed (validation, I/O error)
inline constexpr int kExitUsage = 2;     // bad flags, bad config, impossible request
inline constexpr int kExitTimeout = 3;   // watchdog fired
inline constexpr int kExitSkipped = 77;  // missing hardware (GPU, RDMA): ctest maps it to skipped

// Bad input: the message names the flag, the value and the fix.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The program cannot run here (no GPU, no RDMA device): exit 77.
class SkipError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A deadline passed (the watchdog names what was running): exit 3.
class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ffb
