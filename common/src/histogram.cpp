#include "ffb/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ffb {

namespace {

constexpr std::uint64_t kSub = std::uint64_t{1} << LogLinearHistogram::kSubBits;

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("histogram: ") + what + " failed");
}

}  // namespace

LogLinearHistogram::LogLinearHistogram() : counts_(kBuckets, 0) {}

std::size_t LogLinearHistogram::bucket_of(std::uint64_t value) {
  if (value < kSub) return static_cast<std::size_t>(value);
  const int e = static_cast<int>(std::bit_width(value)) - 1;  // value in [2^e, 2^(e+1))
  if (e >= kMaxBits) return kBuckets - 1;
  const int shift = e - kSubBits;
  const std::uint64_t sub = (value >> shift) - kSub;  // [0, kSub)
  return static_cast<std::size_t>(kSub + static_cast<std::uint64_t>(shift) * kSub + sub);
}

std::uint64_t LogLinearHistogram::bucket_low(std::size_t index) {
  if (index < kSub) return index;
  const std::uint64_t rel = index - kSub;
  const std::uint64_t shift = rel / kSub;
  const std::uint64_t sub = rel % kSub;
  return (kSub + sub) << shift;
}

std::uint64_t LogLinearHistogram::bucket_high(std::size_t index) {
  if (index < kSub) return index + 1;
  const std::uint64_t shift = (index - kSub) / kSub;
  return bucket_low(index) + (std::uint64_t{1} << shift);
}

void LogLinearHistogram::record(std::uint64_t value, std::uint64_t times) {
  if (times == 0) return;
  counts_[bucket_of(value)] += times;
  count_ += times;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<double>(value) * static_cast<double>(times);
}

void LogLinearHistogram::merge(const LogLinearHistogram& other) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void LogLinearHistogram::clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  sum_ = 0.0;
}

double LogLinearHistogram::percentile(double q) const {
  if (count_ == 0) return 0.0;
  if (q <= 0.0) return static_cast<double>(min_);
  if (q >= 100.0) return static_cast<double>(max_);
  auto target = static_cast<std::uint64_t>(std::ceil(q / 100.0 * static_cast<double>(count_)));
  target = std::clamp<std::uint64_t>(target, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= target) {
      const double lo = static_cast<double>(bucket_low(i));
      const double hi = static_cast<double>(bucket_high(i));
      const double mid = i < kSub ? lo : (lo + hi - 1.0) / 2.0;
      return std::clamp(mid, static_cast<double>(min_), static_cast<double>(max_));
    }
  }
  return static_cast<double>(max_);
}

void LogLinearHistogram::reduce(MPI_Comm comm, int root) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::vector<std::uint64_t> out(rank == root ? kBuckets : 0);
  check_mpi(MPI_Reduce(counts_.data(), rank == root ? out.data() : nullptr,
                       static_cast<int>(kBuckets), MPI_UINT64_T, MPI_SUM, root, comm),
            "MPI_Reduce(counts)");
  std::uint64_t c = 0, mn = 0, mx = 0;
  double s = 0.0;
  check_mpi(MPI_Reduce(&count_, &c, 1, MPI_UINT64_T, MPI_SUM, root, comm), "MPI_Reduce(count)");
  check_mpi(MPI_Reduce(&min_, &mn, 1, MPI_UINT64_T, MPI_MIN, root, comm), "MPI_Reduce(min)");
  check_mpi(MPI_Reduce(&max_, &mx, 1, MPI_UINT64_T, MPI_MAX, root, comm), "MPI_Reduce(max)");
  check_mpi(MPI_Reduce(&sum_, &s, 1, MPI_DOUBLE, MPI_SUM, root, comm), "MPI_Reduce(sum)");
  if (rank == root) {
    counts_ = std::move(out);
    count_ = c;
    min_ = mn;
    max_ = mx;
    sum_ = s;
  }
}

void LogLinearHistogram::allreduce(MPI_Comm comm) {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, counts_.data(), static_cast<int>(kBuckets), MPI_UINT64_T,
                          MPI_SUM, comm),
            "MPI_Allreduce(counts)");
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &count_, 1, MPI_UINT64_T, MPI_SUM, comm),
            "MPI_Allreduce(count)");
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &min_, 1, MPI_UINT64_T, MPI_MIN, comm),
            "MPI_Allreduce(min)");
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &max_, 1, MPI_UINT64_T, MPI_MAX, comm),
            "MPI_Allreduce(max)");
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &sum_, 1, MPI_DOUBLE, MPI_SUM, comm), "MPI_Allreduce(sum)");
}

}  // namespace ffb
