#include <vector>

#include <gtest/gtest.h>

#include "ffb/stats.h"

namespace {

TEST(Stats, SummaryOfKnownSamples) {
  std::vector<double> v{5, 1, 4, 2, 3};
  const auto s = ffb::summarize(v);
  EXPECT_EQ(s.n, 5u);
  EXPECT_DOUBLE_EQ(s.mean, 3.0);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 5.0);
  EXPECT_DOUBLE_EQ(s.p50, 3.0);
  EXPECT_DOUBLE_EQ(s.p99, 4.96);  // numpy.percentile([1..5], 99) = 4.96
}

TEST(Stats, PercentileInterpolates) {
  std::vector<double> sorted{0, 10, 20, 30};
  EXPECT_DOUBLE_EQ(ffb::percentile(sorted, 0), 0);
  EXPECT_DOUBLE_EQ(ffb::percentile(sorted, 100), 30);
  EXPECT_DOUBLE_EQ(ffb::percentile(sorted, 50), 15);
  EXPECT_NEAR(ffb::percentile(sorted, 99), 29.7, 1e-12);
}

TEST(Stats, EmptyAndSingle) {
  EXPECT_EQ(ffb::summarize(std::vector<double>{}).n, 0u);
  const auto s = ffb::summarize(std::vector<double>{7});
  EXPECT_DOUBLE_EQ(s.p99, 7);
  EXPECT_DOUBLE_EQ(s.mean, 7);
}

}  // namespace
