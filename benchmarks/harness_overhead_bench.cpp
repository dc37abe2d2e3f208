// Shows the harness adds no visible overhead: 8-byte allreduce latency as the harness measures it
// (per-iteration timing, watchdog armed, slowest rank per iteration) against a bare timed
// MPI_Allreduce loop, in the same run, interleaved so both see the same machine state.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <fmt/format.h>
#include <mpi.h>

#include "ffb/collective.h"
#include "ffb/error.h"
#include "ffb/mpi_env.h"
#include "ffb/stats.h"
#include "ffb/timer.h"
#include "ffb/watchdog.h"

namespace {

// The bare loop: what a user would write by hand.
double bare_loop_us(MPI_Comm comm, int iters) {
  double in = 1.0, out = 0.0;
  MPI_Barrier(comm);
  const double t0 = MPI_Wtime();
  for (int i = 0; i < iters; ++i) MPI_Allreduce(&in, &out, 1, MPI_DOUBLE, MPI_SUM, comm);
  const double local = (MPI_Wtime() - t0) / iters * 1e6;
  double slowest = 0;
  MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
  return slowest;
}

// The harness's way: per-iteration reads of the harness's clock around a watchdog-armed call,
// then the slowest rank per iteration, then the mean over iterations.
double harness_loop_us(MPI_Comm comm, int iters, ffb::Watchdog& watchdog,
                       const ffb::TickClock& clock, double* slowest_of_means = nullptr) {
  double in = 1.0, out = 0.0;
  std::vector<double> local(static_cast<std::size_t>(iters)), slowest(local.size());
  MPI_Barrier(comm);
  for (int i = 0; i < iters; ++i) {
    const auto t0 = clock.now();
    watchdog.arm();
    MPI_Allreduce(&in, &out, 1, MPI_DOUBLE, MPI_SUM, comm);
    watchdog.disarm();
    local[static_cast<std::size_t>(i)] = clock.to_us(clock.now() - t0);
  }
  MPI_Allreduce(local.data(), slowest.data(), iters, MPI_DOUBLE, MPI_MAX, comm);
  double mean_local = ffb::summarize(local).mean, worst_mean = 0;
  MPI_Allreduce(&mean_local, &worst_mean, 1, MPI_DOUBLE, MPI_MAX, comm);
  if (slowest_of_means != nullptr) *slowest_of_means = worst_mean;
  return ffb::summarize(slowest).mean;
}

}  // namespace

int main(int argc, char** argv) {
  ffb::MpiSession mpi(argc, argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int iters = argc > 1 ? std::max(1, std::atoi(argv[1])) : 2000;
  const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 7;
  ffb::Watchdog watchdog(MPI_COMM_WORLD, 60.0, [] { return std::string("overhead loop"); });
  const ffb::TickClock clock;                    // the harness's clock
  bare_loop_us(MPI_COMM_WORLD, iters / 10 + 1);  // warm-up
  std::vector<double> bare, harness, harness_means;
  for (int r = 0; r < rounds; ++r) {
    bare.push_back(bare_loop_us(MPI_COMM_WORLD, iters));
    double m = 0;
    harness.push_back(harness_loop_us(MPI_COMM_WORLD, iters, watchdog, clock, &m));
    harness_means.push_back(m);
  }
  if (rank == 0) {
    const auto b = ffb::summarize(bare).p50;
    const auto h = ffb::summarize(harness).p50;
    fmt::print(
        "# harness overhead, 8 B MPI_Allreduce (double sum), {} ranks, {} iterations x {} "
        "rounds (median of rounds)\n",
        size, iters, rounds);
    fmt::print("{:>24} {:>12}\n", "loop", "latency (us)");
    fmt::print("{:>24} {:12.3f}\n", "bare MPI_Allreduce", b);
    fmt::print("{:>24} {:12.3f}\n", "harness-timed", h);
    fmt::print("{:>24} {:12.3f}\n", "  same, max of means", ffb::summarize(harness_means).p50);
    fmt::print("{:>24} {:12.3f}\n", "ratio harness/bare", h / b);
  }
  return 0;
}
