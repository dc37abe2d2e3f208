// One data-parallel training step, repeated: forward, backward layer by layer in reverse with each
// full bucket's allreduce started at once, wait for every allreduce, optional optimizer update.
// Then a communication-only phase (the same allreduces with no compute) that measures how long the
// communication takes when nothing hides it.
#pragma once

#include <cstdint>
#include <vector>

#include <mpi.h>

#include "allreduce.h"
#include "compute.h"
#include "ffb/numeric.h"
#include "model.h"

namespace ffb::ddp {

struct StepConfig {
  int steps = 10;
  int warmup = 2;
  // Repetitions of the two reference phases: communication only (every bucket's allreduce back to
  // back, no compute) and compute only (the step without any allreduce). 0: skip both; the overlap
  // is then unknown.
  int comm_steps = 3;
  DataType type = DataType::f32;
  bool check = true;  // validate the last timed step's result
  bool check_every_step = false;
  // Record when each bucket's allreduce completes (polls the backend every progress interval
  // while compute runs and while the step waits; costs a wake-up per interval).
  bool trace = false;
  // Call the backend's progress() while compute runs (MPI). false: Open MPI's non-blocking
  // collectives then advance only inside the final wait (and the trace's MPI_Test calls).
  bool progress = true;
  double trace_interval_s = 100e-6;
  // Test-only: add 1 to one element of this rank's gradients so the check must fail.
  int inject_corrupt_rank = -1;
};

// Per step, the slowest rank's value of each quantity (seconds). Every rank holds the same.
struct StepSeries {
  std::vector<double> step, forward, backward, compute, exposed, optimizer;  // compute = fwd + bwd
};

struct DdpResult {
  StepSeries timed;                   // the timed steps
  std::vector<double> comm_alone;     // per comm-only repetition, slowest rank (s)
  std::vector<double> compute_alone;  // per compute-only repetition, slowest rank (s)
  std::vector<double> bucket_start;   // per bucket: mean over timed steps of the time from step
                                      // start to the allreduce's start, slowest rank (s)
  std::vector<double> bucket_done;    // the same for its completion (--trace; NaN otherwise)
  std::int64_t wrong = -1;            // elements that failed validation, summed over ranks and
                                      // checked steps (-1: not checked)
  std::int64_t checked_steps = 0;
  int nodes = 1;
};

// Collective over `comm`. The backend must be set up (setup()) on the same communicator.
DdpResult run_ddp(const Model& model, const std::vector<Bucket>& buckets, ComputeEngine& compute,
                  GradientAllreduce& backend, MPI_Comm comm, const StepConfig& cfg);

// Summary quantities derived from a result (seconds and fractions).
struct DdpSummary {
  double step_mean = 0, step_p50 = 0, step_p99 = 0, step_min = 0, step_max = 0;
  double forward = 0, backward = 0, compute = 0, exposed = 0, optimizer = 0;
  double comm_alone = 0;     // mean over comm-only repetitions (NaN when none ran)
  double compute_alone = 0;  // mean over compute-only repetitions (NaN when none ran)
  // What communication adds to the step: step_mean - compute_alone. It counts the wait after the
  // backward pass (exposed) and any slowdown of the step by the communication (host work in MPI
  // progress calls, memory traffic); NaN when unknown.
  double overhead = 0;
  double hidden = 0;   // comm_alone - overhead, at least 0 (NaN when unknown)
  double overlap = 0;  // hidden / comm_alone in [0, 1] (NaN when unknown or no communication)
};
DdpSummary summarize(const DdpResult& r);

}  // namespace ffb::ddp
