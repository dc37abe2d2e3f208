// Collective error agreement and the stop flag.
//
// Errors found on one rank (ENOSPC, a refused open, a signal) must end the run on every rank, with
// every rank still able to clean up its own files. Each phase therefore runs inside agree(): the
// frame's ffb::agree catches the body's exception, all ranks learn whether anyone failed, and then
// every rank throws the same ffb::AgreedFailure carrying the lowest failing rank's message and its
// FailKind (errors.h). No MPI_Abort, no rank left waiting in a collective.
#pragma once

#include <functional>

#include <mpi.h>

#include "errors.h"

namespace sb {

// Runs fn on every rank of comm, then checks the stop flag; if either threw anywhere, throws
// ffb::AgreedFailure (kind: FailKind) on every rank.
void agree(MPI_Comm comm, const std::function<void()>& fn);

// ---- the stop flag --------------------------------------------------------------------------
// The program's only global: the number of the signal that asked us to stop (0: none), a
// lock-free std::atomic<int> written by the async-signal-safe SIGINT/SIGTERM handler and read by
// I/O loops.
void install_stop_handlers();
int stop_signal();
inline bool stop_requested() { return stop_signal() != 0; }
void throw_if_stopped();  // throws Interrupted naming the signal
void request_stop_for_test(int sig);

}  // namespace sb
