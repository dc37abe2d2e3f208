// Collective error agreement and the stop flag.
//
// Errors found on one rank (ENOSPC, a refused open, a signal) must end the run on every rank, with
// every rank still able to clean up its own files. Each phase therefore runs inside agree(): the
// body's exception is caught, all ranks learn (one MPI_Allreduce) whether anyone failed, and then
// every rank throws the same RunFailure carrying the lowest failing rank's message. No MPI_Abort,
// no rank left waiting in a collective.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

#include <mpi.h>

namespace sb {

enum class FailKind : int { none = 0, failure = 1, out_of_space = 2, interrupted = 3, usage = 4 };

class RunFailure : public std::runtime_error {
 public:
  RunFailure(FailKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  FailKind kind() const { return kind_; }

 private:
  FailKind kind_;
};

// Thrown by I/O loops when SIGINT/SIGTERM arrived.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs fn on every rank of comm; if it threw anywhere, throws RunFailure on every rank.
void agree(MPI_Comm comm, const std::function<void()>& fn);

// ---- the stop flag
// ------------------------------------------------------------------------------- The program's
// only global: the number of the signal that asked us to stop (0: none), a lock-free
// std::atomic<int> written by the async-signal-safe SIGINT/SIGTERM handler and read by I/O loops.
void install_stop_handlers();
int stop_signal();
inline bool stop_requested() { return stop_signal() != 0; }
void throw_if_stopped();  // throws Interrupted naming the signal
void request_stop_for_test(int sig);

}  // namespace sb
