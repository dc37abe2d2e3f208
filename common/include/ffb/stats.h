// Summary statistics over samples (iterations, operations).
#pragma once

#include <span>
#include <vector>

namespace ffb {

struct Summary {
  double mean = 0, min = 0, p50 = 0, p99 = 0, max = 0;
  std::size_t n = 0;
};

// Percentile by linear interpolation between closest ranks (numpy's default), q in [0, 100].
double percentile(std::span<const double> sorted, double q);

// Mean, min, p50, p99, max of the samples (copied and sorted). Empty input gives zeros.
Summary summarize(std::span<const double> samples);

}  // namespace ffb
