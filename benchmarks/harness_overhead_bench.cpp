// Shows the harness adds no visible overhead: 8-byte allreduce latency as the harness measures it
// (per-iteration timing, watchdog armed, slowest rank per iteration) against a bare timed
// MPI_Allreduce loop, in the same run, interleaved so both see the same machine state.
#include <chrono>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <mpi.h>

#include "ffb/error.h"
#include "ffb/mpi_env.h"
#include "ffb/program.h"
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

struct Args {
  int iters = 2000;
  int rounds = 7;
  double timeout_s = 60.0;
};

constexpr const char* kProgram = "harness_overhead_bench";
constexpr int kMaxIters = 1000000;
constexpr int kMaxRounds = 1000;
constexpr double kMaxTimeoutS = 7 * 24 * 3600.0;

void add_options(CLI::App& app, Args& a) {
  app.add_option("-n,--iters", a.iters, "allreduces per loop and round (1 to 1000000)")
      ->capture_default_str();
  app.add_option("-r,--rounds", a.rounds, "interleaved rounds of both loops (1 to 1000)")
      ->capture_default_str();
  app.add_option("-T,--timeout", a.timeout_s, "watchdog: seconds before a stuck allreduce aborts")
      ->capture_default_str();
}

void check(const Args& a) {
  if (a.iters < 1 || a.iters > kMaxIters)
    throw ffb::UsageError(fmt::format("-n/--iters {}: give 1 to {}", a.iters, kMaxIters));
  if (a.rounds < 1 || a.rounds > kMaxRounds)
    throw ffb::UsageError(fmt::format("-r/--rounds {}: give 1 to {}", a.rounds, kMaxRounds));
  if (!(a.timeout_s > 0 && a.timeout_s <= kMaxTimeoutS))
    throw ffb::UsageError(fmt::format("-T/--timeout {}: give seconds > 0 and at most {:g}",
                                      a.timeout_s, kMaxTimeoutS));
}

void measure(const Args& a) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  ffb::Watchdog watchdog(MPI_COMM_WORLD, a.timeout_s, [] { return std::string("overhead loop"); });
  const ffb::TickClock clock;                      // the harness's clock
  bare_loop_us(MPI_COMM_WORLD, a.iters / 10 + 1);  // warm-up
  std::vector<double> bare, harness, harness_means;
  for (int r = 0; r < a.rounds; ++r) {
    bare.push_back(bare_loop_us(MPI_COMM_WORLD, a.iters));
    double m = 0;
    harness.push_back(harness_loop_us(MPI_COMM_WORLD, a.iters, watchdog, clock, &m));
    harness_means.push_back(m);
  }
  if (rank != 0) return;
  const auto b = ffb::summarize(bare).p50;
  const auto h = ffb::summarize(harness).p50;
  fmt::print(
      "# harness overhead, 8 B MPI_Allreduce (double sum), {} ranks, {} iterations x {} "
      "rounds (median of rounds)\n",
      size, a.iters, a.rounds);
  fmt::print("{:>24} {:>12}\n", "loop", "latency (us)");
  fmt::print("{:>24} {:12.3f}\n", "bare MPI_Allreduce", b);
  fmt::print("{:>24} {:12.3f}\n", "harness-timed", h);
  fmt::print("{:>24} {:12.3f}\n", "  same, max of means", ffb::summarize(harness_means).p50);
  fmt::print("{:>24} {:12.3f}\n", "ratio harness/bare", h / b);
}

class HarnessOverheadBench final : public ffb::Program {
 public:
  void add_options(CLI::App& app) override { ::add_options(app, a_); }
  void validate() override { check(a_); }
  int run(ffb::ProgramContext&) override {
    measure(a_);
    return ffb::kExitOk;
  }

 private:
  Args a_;
};

}  // namespace

int main(int argc, char** argv) {
  HarnessOverheadBench program;
  return ffb::run_program(argc, argv,
                          {.name = kProgram,
                           .description = "8-byte allreduce latency as the harness times it "
                                          "against a bare MPI_Allreduce loop",
                           .thread_level = MPI_THREAD_MULTIPLE,
                           .parse = {}},
                          program);
}
