// Run with 1-4 ranks: the MPI-merged histogram equals the histogram of every rank's samples, so
// cluster-wide percentiles are exact (at bucket resolution), not averages of per-rank percentiles.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <mpi.h>

#include "ffb/histogram.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  auto samples_of = [](int r) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(r) + 100);
    std::lognormal_distribution<double> d(10.0 + r, 0.5 + 0.1 * r);  // every rank differs
    std::vector<std::uint64_t> v(20000 + 1000 * static_cast<std::size_t>(r));
    for (auto& x : v) x = static_cast<std::uint64_t>(d(rng));
    return v;
  };
  ffb::LogLinearHistogram mine, all_local;
  for (auto x : samples_of(rank)) mine.record(x);
  for (int r = 0; r < size; ++r)
    for (auto x : samples_of(r)) all_local.record(x);
  ffb::LogLinearHistogram reduced = mine, allreduced = mine;
  reduced.reduce(MPI_COMM_WORLD, 0);
  allreduced.allreduce(MPI_COMM_WORLD);
  int bad = 0;
  if (allreduced.counts() != all_local.counts() || allreduced.count() != all_local.count() ||
      allreduced.min() != all_local.min() || allreduced.max() != all_local.max())
    ++bad;
  if (rank == 0 && (reduced.counts() != all_local.counts() ||
                    std::fabs(reduced.sum() - all_local.sum()) > 1e-6 * all_local.sum()))
    ++bad;
  for (double q : {50.0, 99.0, 99.9})
    if (allreduced.percentile(q) != all_local.percentile(q)) ++bad;
  int total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    std::printf("histogram MPI merge over %d rank(s): %s (p99 %.0f ns)\n", size,
                total ? "FAILED" : "ok", allreduced.percentile(99));
  MPI_Finalize();
  return total ? 1 : 0;
}
