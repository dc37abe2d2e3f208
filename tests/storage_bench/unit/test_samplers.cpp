// Seeded samplers: Rng, shuffle, Zipf, sample sizes, Poisson inter-arrivals.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include <gtest/gtest.h>

#include "ffb/error.h"
#include "samplers.h"

namespace {

using namespace sb;

// Pearson chi-square statistic.
double chi2(const std::vector<double>& observed, const std::vector<double>& expected) {
  double s = 0;
  for (std::size_t i = 0; i < observed.size(); ++i)
    s += (observed[i] - expected[i]) * (observed[i] - expected[i]) / expected[i];
  return s;
}

TEST(Rng, DeterministicPerSeed) {
  Rng a(7), b(7), c(8);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next();
    EXPECT_EQ(x, b.next());
    differs |= x != c.next();
  }
  EXPECT_TRUE(differs);
}

TEST(Rng, BelowIsInRangeAndUniform) {
  Rng r(1);
  std::vector<double> counts(10, 0);
  constexpr int kN = 1000000;
  for (int i = 0; i < kN; ++i) {
    const auto x = r.below(10);
    ASSERT_LT(x, 10u);
    counts[x] += 1;
  }
  // 9 degrees of freedom: P(chi2 > 27.9) = 0.001
  EXPECT_LT(chi2(counts, std::vector<double>(10, kN / 10.0)), 27.9);
  EXPECT_EQ(r.below(1), 0u);
}

TEST(Rng, Uniform01AndExponentialMean) {
  Rng r(3);
  double s = 0, e = 0;
  constexpr int kN = 200000;
  for (int i = 0; i < kN; ++i) {
    const double u = r.uniform01();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    s += u;
    const double x = r.exponential(2.5);
    ASSERT_GE(x, 0.0);
    e += x;
  }
  EXPECT_NEAR(s / kN, 0.5, 0.005);
  EXPECT_NEAR(e / kN, 2.5, 0.05);  // Poisson arrivals at rate 0.4
}

TEST(Shuffle, IsASeededPermutation) {
  const auto p = permutation(10000, 42);
  std::vector<std::uint64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (std::uint64_t i = 0; i < sorted.size(); ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(p, permutation(10000, 42));
  EXPECT_NE(p, permutation(10000, 43));
  EXPECT_TRUE(permutation(0, 1).empty());
  EXPECT_EQ(permutation(1, 1), std::vector<std::uint64_t>{0});
}

TEST(Shuffle, EveryPositionIsUniform) {
  // Where element 0 lands, over many seeds: uniform over the 6 positions.
  std::vector<double> where(6, 0);
  constexpr int kN = 60000;
  for (int s = 0; s < kN; ++s) {
    const auto p = permutation(6, static_cast<std::uint64_t>(s));
    where[static_cast<std::size_t>(std::find(p.begin(), p.end(), 0u) - p.begin())] += 1;
  }
  EXPECT_LT(chi2(where, std::vector<double>(6, kN / 6.0)), 20.5);  // 5 dof, p = 0.001
}

TEST(Zipf, ProbabilitiesFollowThePowerLaw) {
  const ZipfSampler z(1000, 1.2);
  double total = 0;
  for (std::uint64_t k = 0; k < 1000; ++k) total += z.probability(k);
  EXPECT_NEAR(total, 1.0, 1e-9);
  EXPECT_NEAR(z.probability(0) / z.probability(9), std::pow(10.0, 1.2), 1e-6);
  EXPECT_NEAR(z.probability(1) / z.probability(3), std::pow(2.0, 1.2), 1e-6);
  EXPECT_EQ(z.probability(5000), 0.0);
}

TEST(Zipf, SamplesMatchTheDistribution) {
  const ZipfSampler z(500, 0.99);
  Rng r(11);
  constexpr int kN = 500000, kTop = 20;
  std::vector<double> obs(kTop + 1, 0), exp(kTop + 1, 0);
  for (int i = 0; i < kN; ++i) {
    const auto k = z.sample(r);
    ASSERT_LT(k, 500u);
    obs[std::min<std::uint64_t>(k, kTop)] += 1;
  }
  for (std::uint64_t k = 0; k < 500; ++k)
    exp[std::min<std::uint64_t>(k, kTop)] += z.probability(k) * kN;
  EXPECT_LT(chi2(obs, exp), 45.3);  // 20 dof, p = 0.001
}

TEST(Zipf, ZeroExponentIsUniform) {
  const ZipfSampler z(4, 0.0);
  for (std::uint64_t k = 0; k < 4; ++k) EXPECT_NEAR(z.probability(k), 0.25, 1e-12);
}

TEST(SizeDistribution, ParsesAndRejectsWithTheFlagName) {
  EXPECT_EQ(SizeDistribution::parse("fixed:64K", "--sample-size").size_of(1, 5), 65536u);
  const auto d = SizeDistribution::parse(SizeDistribution::kDefault, "--sample-size");
  EXPECT_EQ(d.min_size(), 2048u);
  EXPECT_EQ(d.max_size(), 8u << 20);
  for (const char* bad :
       {"gauss:1", "uniform:min=4K", "lognormal:median=1K", "uniform:min=8K,max=4K",
        "lognormal:median=1K,sigma=x", "uniform:min=1K,max=2K,foo=3", "fixed:0"}) {
    try {
      SizeDistribution::parse(bad, "--sample-size");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ffb::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("--sample-size"), std::string::npos) << e.what();
    }
  }
}

TEST(SizeDistribution, UniformStaysInBoundsWithTheRightMean) {
  const auto d = SizeDistribution::parse("uniform:min=4K,max=8K", "--sample-size");
  double s = 0;
  constexpr int kN = 100000;
  for (int i = 0; i < kN; ++i) {
    const auto x = d.size_of(9, static_cast<std::uint64_t>(i));
    ASSERT_GE(x, 4096u);
    ASSERT_LE(x, 8192u);
    s += static_cast<double>(x);
  }
  EXPECT_NEAR(s / kN, 6144.0, 30.0);
}

TEST(SizeDistribution, LognormalDefaultIsTrainingShaped) {
  const auto d = SizeDistribution::parse(SizeDistribution::kDefault, "--sample-size");
  std::vector<std::uint64_t> v;
  constexpr int kN = 100000;
  int aligned = 0;
  for (int i = 0; i < kN; ++i) {
    const auto x = d.size_of(1, static_cast<std::uint64_t>(i));
    ASSERT_GE(x, 2048u);
    ASSERT_LE(x, 8u << 20);
    aligned += x % 4096 == 0;
    v.push_back(x);
  }
  std::sort(v.begin(), v.end());
  EXPECT_NEAR(static_cast<double>(v[kN / 2]), 65536.0, 65536.0 * 0.03);  // median as given
  EXPECT_LT(v[kN / 100], 8192u);                                         // a few KiB ...
  EXPECT_GT(v[kN - kN / 100], 1u << 20);                                 // ... to MiB
  EXPECT_LT(aligned, kN / 1000);                                         // not 4 KiB aligned
}

TEST(SizeDistribution, IsAPureFunctionOfSeedAndIndex) {
  const auto d = SizeDistribution::parse("loguniform:min=1K,max=1M", "--sample-size");
  EXPECT_EQ(d.size_of(5, 123), d.size_of(5, 123));
  int same = 0;
  for (std::uint64_t i = 0; i < 100; ++i) same += d.size_of(5, i) == d.size_of(6, i);
  EXPECT_LT(same, 10);
}

}  // namespace
