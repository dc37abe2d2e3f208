// The host facts measurements are sized by, the shared membw size rule and the link-rate
// provenance parsers: pure functions, fed with what sysfs, /proc/meminfo and tc would say.
#include <gtest/gtest.h>

#include "ffb/hostinfo.h"
#include "ffb/link_rate.h"
#include "ffb/membw.h"

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kGiB = 1ull << 30;

TEST(LastLevelCache, ParsesSysfsSizes) {
  EXPECT_EQ(ffb::parse_cache_size("32768K"), 32 * kMiB);
  EXPECT_EQ(ffb::parse_cache_size("32768K\n"), 32 * kMiB);
  EXPECT_EQ(ffb::parse_cache_size("2M"), 2 * kMiB);
  EXPECT_EQ(ffb::parse_cache_size("512"), 512u);
  EXPECT_EQ(ffb::parse_cache_size(""), 0u);
  EXPECT_EQ(ffb::parse_cache_size("big"), 0u);
}

TEST(LastLevelCache, SumsDistinctInstancesOfTheHighestLevel) {
  // Two sockets, two CPUs each: per-CPU L1/L2, one L3 per socket seen from every CPU.
  std::vector<ffb::CacheEntry> e;
  for (int cpu = 0; cpu < 4; ++cpu) {
    const std::string self = std::to_string(cpu);
    e.push_back({1, "Data", 48 * 1024, self});
    e.push_back({1, "Instruction", 32 * 1024, self});
    e.push_back({2, "Unified", 2 * kMiB, self});
    e.push_back({3, "Unified", 105 * kMiB, cpu < 2 ? "0-1" : "2-3"});
  }
  const auto llc = ffb::last_level_cache_of(e);
  EXPECT_EQ(llc.bytes, 210 * kMiB);
  EXPECT_EQ(llc.level, 3);
  EXPECT_EQ(llc.instances, 2);
  EXPECT_EQ(llc.source, "sysfs");
}

TEST(LastLevelCache, FallsBackTo32MiBAndSaysSo) {
  const auto none = ffb::last_level_cache_of({});
  EXPECT_EQ(none.bytes, 32 * kMiB);
  EXPECT_EQ(none.level, 0);
  EXPECT_NE(none.source.find("fallback"), std::string::npos);
  // An instruction cache alone is no data cache.
  EXPECT_EQ(ffb::last_level_cache_of({{1, "Instruction", 32 * 1024, "0"}}).level, 0);
  EXPECT_EQ(ffb::last_level_cache("/nonexistent").source, none.source);
}

ffb::LastLevelCache llc_of(std::uint64_t bytes) { return {bytes, 3, 1, "sysfs"}; }

TEST(MembwPlan, WorkingSetIsFourTimesTheCache) {
  // 300 MiB L3, add kernel, 2 threads: 4 x 300 MiB / (3 x 2) = 200 MiB per array.
  const auto p = ffb::plan_membw_for(3, 2, 0, llc_of(300 * kMiB), 24 * kGiB);
  EXPECT_EQ(p.bytes_per_array, 200 * kMiB);
  EXPECT_EQ(p.working_set, 1200 * kMiB);
  EXPECT_TRUE(p.automatic);
  EXPECT_TRUE(p.fits());
  EXPECT_EQ(p.rule,
            "3 arrays x 200 MiB x 2 threads = 1.2 GiB = 4 x LLC (300 MiB, sysfs); rule: working "
            "set >= 4 x LLC, arrays >= 64 MiB");
  // Rounded up to whole MiB: 4 x 100 MiB / 3 = 133.3 MiB -> 134 MiB.
  EXPECT_EQ(ffb::plan_membw_for(3, 1, 0, llc_of(100 * kMiB), 0).bytes_per_array, 134 * kMiB);
}

TEST(MembwPlan, ArraysAreAtLeast64MiB) {
  const auto p = ffb::plan_membw_for(2, 2, 0, llc_of(32 * kMiB), 24 * kGiB, "rank");
  EXPECT_EQ(p.bytes_per_array, 64 * kMiB);
  EXPECT_EQ(p.rule.substr(0, 48), "2 arrays x 64 MiB x 2 ranks = 256 MiB = 8 x LLC ");
  EXPECT_EQ(ffb::plan_membw_for(3, 1, 0, llc_of(1 * kMiB), 0).bytes_per_array, 64 * kMiB);
}

TEST(MembwPlan, ExplicitSizeIsKeptAndJudged) {
  const auto small = ffb::plan_membw_for(3, 2, 16 * kMiB, llc_of(32 * kMiB), 24 * kGiB);
  EXPECT_EQ(small.bytes_per_array, 16 * kMiB);
  EXPECT_FALSE(small.automatic);
  EXPECT_NE(small.rule.find("explicit size, below the rule"), std::string::npos) << small.rule;
  const auto big = ffb::plan_membw_for(3, 2, 128 * kMiB, llc_of(32 * kMiB), 24 * kGiB);
  EXPECT_NE(big.rule.find("explicit size, meets the rule"), std::string::npos) << big.rule;
}

TEST(MembwPlan, RefusesMoreThanHalfOfMemAvailable) {
  const auto p = ffb::plan_membw_for(3, 2, 16 * kGiB, llc_of(32 * kMiB), 24 * kGiB);
  EXPECT_FALSE(p.fits());
  EXPECT_EQ(p.shortfall(),
            "3 arrays x 16 GiB x 2 threads = 96 GiB is more than half of MemAvailable (24 GiB)");
  EXPECT_TRUE(ffb::plan_membw_for(3, 2, 2 * kGiB, llc_of(32 * kMiB), 24 * kGiB).fits());
  EXPECT_FALSE(ffb::plan_membw_for(3, 2, 2 * kGiB + kMiB, llc_of(32 * kMiB), 24 * kGiB).fits());
  // Huge requests saturate instead of wrapping around.
  EXPECT_FALSE(ffb::plan_membw_for(3, 1024, 1ull << 62, llc_of(32 * kMiB), 24 * kGiB).fits());
  // MemAvailable unknown: no check.
  EXPECT_TRUE(ffb::plan_membw_for(3, 2, 16 * kGiB, llc_of(32 * kMiB), 0).fits());
}

TEST(MembwPlan, MeasuresWithThePlannedSize) {
  const auto r = ffb::measure_membw(ffb::StreamKernel::copy, 2, 1 * kMiB, 2);
  EXPECT_EQ(r.bytes_per_array, 1 * kMiB);
  EXPECT_EQ(r.rep_gbps.size(), 2u);
  EXPECT_GT(r.gbps, 0.0);
  int calls = 0;
  ffb::measure_membw(ffb::StreamKernel::add, 1, 64 * 1024, 3, [&] { ++calls; });
  EXPECT_EQ(calls, 3);
}

TEST(LinkRate, ParsesTcRates) {
  EXPECT_DOUBLE_EQ(*ffb::parse_tc_rate_gbit("1gbit"), 1.0);
  EXPECT_DOUBLE_EQ(*ffb::parse_tc_rate_gbit("10gbit"), 10.0);
  EXPECT_DOUBLE_EQ(*ffb::parse_tc_rate_gbit("500mbit"), 0.5);
  EXPECT_DOUBLE_EQ(*ffb::parse_tc_rate_gbit("2.5gbit"), 2.5);
  EXPECT_DOUBLE_EQ(*ffb::parse_tc_rate_gbit("100Kbit"), 1e-4);
  EXPECT_DOUBLE_EQ(*ffb::parse_tc_rate_gbit("1000000000bit"), 1.0);
  EXPECT_DOUBLE_EQ(*ffb::parse_tc_rate_gbit("125mbps"), 1.0);  // bytes per second
  EXPECT_DOUBLE_EQ(*ffb::parse_tc_rate_gbit("1gibit"), 1.073741824);
  EXPECT_DOUBLE_EQ(*ffb::parse_tc_rate_gbit(" 1gbit\n"), 1.0);
  for (const char* bad : {"", "gbit", "fast", "1 furlong", "-1gbit", "0gbit", "1.2.3gbit"})
    EXPECT_FALSE(ffb::parse_tc_rate_gbit(bad).has_value()) << bad;
}

TEST(LinkRate, ParsesInfinibandRates) {
  EXPECT_DOUBLE_EQ(*ffb::parse_ib_rate_gbit("200 Gb/sec (4X HDR)"), 200.0);
  EXPECT_DOUBLE_EQ(*ffb::parse_ib_rate_gbit("2.5 Gb/sec (1X SDR)"), 2.5);
  EXPECT_DOUBLE_EQ(*ffb::parse_ib_rate_gbit("400 Gb/sec (4X NDR)\n"), 400.0);
  for (const char* bad : {"", "Gb/sec", "fast", "100 Mb/sec"})
    EXPECT_FALSE(ffb::parse_ib_rate_gbit(bad).has_value()) << bad;
}

TEST(LinkRate, PicksTheFirstSourceThatKnows) {
  const std::vector<ffb::IbPort> ports{
      {"/sys/class/infiniband/mlx5_0/ports/1/rate", "4: ACTIVE", "200 Gb/sec (4X HDR)"},
      {"/sys/class/infiniband/mlx5_1/ports/1/rate", "1: DOWN", "400 Gb/sec (4X NDR)"},
      {"/sys/class/infiniband/mlx5_2/ports/1/rate", "4: ACTIVE", "100 Gb/sec (2X HDR)"}};
  const auto emu = ffb::link_rate_from("1gbit", ports);
  EXPECT_DOUBLE_EQ(*emu.gbit, 1.0);
  EXPECT_EQ(emu.source, "tc rate on the emulated cluster (FFB_EMU_LINK_RATE=1gbit)");
  const auto ib = ffb::link_rate_from(nullptr, ports);
  EXPECT_DOUBLE_EQ(*ib.gbit, 200.0);
  EXPECT_EQ(ib.source, "sysfs /sys/class/infiniband/mlx5_0/ports/1/rate: 200 Gb/sec (4X HDR)");
  const auto none = ffb::link_rate_from(nullptr, {ports[1]});
  EXPECT_FALSE(none.gbit.has_value());
  EXPECT_EQ(none.source, "none found (no FFB_EMU_LINK_RATE, no active InfiniBand/RoCE port)");
  const auto bad = ffb::link_rate_from("fast", {});
  EXPECT_FALSE(bad.gbit.has_value());
  EXPECT_NE(bad.source.find("FFB_EMU_LINK_RATE=fast is not a tc rate"), std::string::npos);
  EXPECT_NE(ffb::link_rate_from("fast", ports).source.find("ignored"), std::string::npos);
}

}  // namespace
