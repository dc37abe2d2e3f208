// Test helpers shared by the MPI test programs (tests/mpi, tests/gpu): a check counter that agrees
// across ranks, and a content hash to compare results across ranks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <fmt/format.h>
#include <mpi.h>

namespace ffb::test {

// A check passes only when it passed on every rank; the failing ranks (and rank 0) say what failed.
struct Checks {
  int passed = 0, failed = 0, rank = 0;
  void expect(bool ok, const std::string& what) {
    int local = ok ? 1 : 0, all = 0;
    MPI_Allreduce(&local, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all) {
      ++passed;
    } else {
      ++failed;
      if (!ok || rank == 0) fmt::print(stderr, "rank {}: FAILED: {}\n", rank, what);
    }
  }
};

inline std::uint64_t fnv1a(const void* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

inline bool same_on_all_ranks(std::uint64_t h) {
  std::uint64_t lo = h, hi = h;
  MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  return lo == hi;
}

}  // namespace ffb::test
