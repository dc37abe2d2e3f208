// Log-linear histogram of non-negative integers (latencies in nanoseconds), mergeable across ranks.
//
// Buckets: values below 2^kSubBits are counted exactly; every power-of-two range above is split
// into 2^kSubBits equal buckets (HdrHistogram-style). A bucket [low, low + width) has width <= low
// / 128, so reporting its midpoint is off by at most 1/256 = 0.39% of the value (fio's histograms:
// < 1%).
//
// Merging two histograms adds their counts: the merged histogram is identical to the one built from
// all samples together, so percentiles computed from an MPI-merged histogram are exactly the
// cluster-wide percentiles at bucket resolution (not an average of per-rank percentiles).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mpi.h>

namespace ffb {

class LogLinearHistogram {
 public:
  static constexpr int kSubBits = 7;   // 128 buckets per power of two
  static constexpr int kMaxBits = 48;  // values >= 2^48 (78 hours in ns) land in the last bucket
  static constexpr std::size_t kBuckets =
      (std::size_t{1} << kSubBits) +
      static_cast<std::size_t>(kMaxBits - kSubBits) * (1u << kSubBits);

  LogLinearHistogram();

  void record(std::uint64_t value, std::uint64_t times = 1);
  void merge(const LogLinearHistogram& other);
  void clear();

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }
  double sum() const { return sum_; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }

  // Nearest-rank percentile, q in [0, 100]: the smallest recorded value v with at least q% of the
  // values <= v, reported as its bucket's midpoint clamped to [min, max]. q = 0 gives min, 100 max.
  // Empty histogram: 0.
  double percentile(double q) const;

  // Largest relative error percentile() can make for values >= 2^kSubBits (exact below).
  static constexpr double max_relative_error() { return 1.0 / (2.0 * (1u << kSubBits)); }

  static std::size_t bucket_of(std::uint64_t value);
  static std::uint64_t bucket_low(std::size_t index);   // inclusive
  static std::uint64_t bucket_high(std::size_t index);  // exclusive
  const std::vector<std::uint64_t>& counts() const { return counts_; }

  // Collective over comm: sum counts and sums, min of mins, max of maxes.
  // reduce(): the result is valid on root only; allreduce(): on every rank. In place.
  void reduce(MPI_Comm comm, int root);
  void allreduce(MPI_Comm comm);

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  double sum_ = 0.0;
};

}  // namespace ffb
