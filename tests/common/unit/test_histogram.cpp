// ffb::LogLinearHistogram: bucket geometry, percentiles against exact ones, merging.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ffb/histogram.h"

namespace {

using ffb::LogLinearHistogram;

// Exact nearest-rank percentile (the definition the histogram approximates).
double exact_percentile(std::vector<std::uint64_t> v, double q) {
  std::sort(v.begin(), v.end());
  if (q <= 0) return static_cast<double>(v.front());
  if (q >= 100) return static_cast<double>(v.back());
  auto k = static_cast<std::size_t>(std::ceil(q / 100.0 * static_cast<double>(v.size())));
  k = std::clamp<std::size_t>(k, 1, v.size());
  return static_cast<double>(v[k - 1]);
}

const double kQs[] = {0, 1, 5, 10, 20, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100};

void expect_close_percentiles(const std::vector<std::uint64_t>& values) {
  LogLinearHistogram h;
  for (auto v : values) h.record(v);
  for (double q : kQs) {
    const double e = exact_percentile(values, q);
    const double got = h.percentile(q);
    const double tol = std::max(1e-9, e * LogLinearHistogram::max_relative_error()) + 1e-9;
    EXPECT_LE(std::fabs(got - e), tol) << "q=" << q << " exact=" << e << " hist=" << got;
    EXPECT_LT(std::fabs(got - e), 0.01 * e + 1e-9) << "over 1% at q=" << q;
  }
}

TEST(Histogram, BucketsTileTheRange) {
  for (std::size_t i = 0; i + 1 < LogLinearHistogram::kBuckets; ++i) {
    ASSERT_EQ(LogLinearHistogram::bucket_high(i), LogLinearHistogram::bucket_low(i + 1)) << i;
    ASSERT_EQ(LogLinearHistogram::bucket_of(LogLinearHistogram::bucket_low(i)), i);
    ASSERT_EQ(LogLinearHistogram::bucket_of(LogLinearHistogram::bucket_high(i) - 1), i);
  }
}

TEST(Histogram, BucketWidthBoundsRelativeError) {
  for (std::size_t i = 128; i < LogLinearHistogram::kBuckets; ++i) {
    const double lo = static_cast<double>(LogLinearHistogram::bucket_low(i));
    const double w = static_cast<double>(LogLinearHistogram::bucket_high(i)) - lo;
    ASSERT_LE(w / lo, 2 * LogLinearHistogram::max_relative_error() + 1e-12);
  }
  EXPECT_LT(LogLinearHistogram::max_relative_error(), 0.01);
}

TEST(Histogram, SmallValuesAreExact) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = 0; i < 128; ++i) v.push_back(i);
  LogLinearHistogram h;
  for (auto x : v) h.record(x);
  for (double q : kQs) EXPECT_DOUBLE_EQ(h.percentile(q), exact_percentile(v, q));
}

TEST(Histogram, PercentilesMatchExactLogUniform) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0.0, std::log(1e11));
  std::vector<std::uint64_t> v(200000);
  for (auto& x : v) x = static_cast<std::uint64_t>(std::exp(u(rng)));
  expect_close_percentiles(v);
}

TEST(Histogram, PercentilesMatchExactLatencyShapes) {
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> ln(std::log(80e3), 0.7);  // ~80 us storage latencies
  std::exponential_distribution<double> ex(1.0 / 5e6);
  std::vector<std::uint64_t> v;
  for (int i = 0; i < 100000; ++i) v.push_back(static_cast<std::uint64_t>(ln(rng)));
  for (int i = 0; i < 1000; ++i)
    v.push_back(static_cast<std::uint64_t>(ex(rng)) + 20000000);  // slow tail
  expect_close_percentiles(v);
}

TEST(Histogram, TinySamples) {
  expect_close_percentiles({42});
  expect_close_percentiles({1000, 5000000, 7});
  expect_close_percentiles({123456789, 123456789, 123456790});
}

TEST(Histogram, MinMaxMeanCount) {
  LogLinearHistogram h;
  EXPECT_EQ(h.percentile(50), 0.0);
  h.record(1000);
  h.record(3000, 3);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_EQ(h.max(), 3000u);
  EXPECT_DOUBLE_EQ(h.mean(), 2500.0);
  EXPECT_DOUBLE_EQ(h.percentile(0), 1000.0);
  EXPECT_DOUBLE_EQ(h.percentile(100), 3000.0);
}

TEST(Histogram, HugeValuesClampToTheLastBucket) {
  LogLinearHistogram h;
  h.record(UINT64_MAX / 2);
  EXPECT_EQ(LogLinearHistogram::bucket_of(UINT64_MAX), LogLinearHistogram::kBuckets - 1);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_DOUBLE_EQ(h.percentile(50), static_cast<double>(UINT64_MAX / 2));  // clamped to max
}

TEST(Histogram, MergeEqualsHistogramOfUnion) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> a(10, 1), b(14, 0.5);
  LogLinearHistogram ha, hb, hall;
  for (int i = 0; i < 50000; ++i) {
    const auto x = static_cast<std::uint64_t>(a(rng)), y = static_cast<std::uint64_t>(b(rng));
    ha.record(x);
    hb.record(y);
    hall.record(x);
    hall.record(y);
  }
  ha.merge(hb);
  EXPECT_EQ(ha.counts(), hall.counts());
  EXPECT_EQ(ha.count(), hall.count());
  EXPECT_EQ(ha.min(), hall.min());
  EXPECT_EQ(ha.max(), hall.max());
  for (double q : kQs) EXPECT_DOUBLE_EQ(ha.percentile(q), hall.percentile(q));
}

}  // namespace
