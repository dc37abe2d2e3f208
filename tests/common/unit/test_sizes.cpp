#include <gtest/gtest.h>

#include "ffb/collective.h"
#include "ffb/error.h"
#include "ffb/sizes.h"

namespace {

TEST(ParseSize, PlainAndBinarySuffixes) {
  EXPECT_EQ(ffb::parse_size("0", "-b"), 0u);
  EXPECT_EQ(ffb::parse_size("8", "-b"), 8u);
  EXPECT_EQ(ffb::parse_size("1K", "-b"), 1024u);
  EXPECT_EQ(ffb::parse_size("64M", "-b"), 64ull << 20);
  EXPECT_EQ(ffb::parse_size("2G", "-b"), 2ull << 30);
  EXPECT_EQ(ffb::parse_size("1T", "-b"), 1ull << 40);
  EXPECT_EQ(ffb::parse_size("3k", "-b"), 3072u);
  EXPECT_EQ(ffb::parse_size("4KiB", "-b"), 4096u);
  EXPECT_EQ(ffb::parse_size("4KB", "-b"), 4096u);
}

TEST(ParseSize, ErrorsNameTheFlagAndValue) {
  for (const char* bad : {"", "abc", "12Q", "-5", "1.5M", "99999999999999999999", "20000000T"}) {
    try {
      ffb::parse_size(bad, "-e/--maxbytes");
      FAIL() << "accepted '" << bad << "'";
    } catch (const ffb::UsageError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("-e/--maxbytes"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::string("'") + bad + "'"), std::string::npos) << msg;
    }
  }
}

TEST(SizeSweep, MultiplicativeAndAdditive) {
  EXPECT_EQ(ffb::size_sweep(8, 128, 2.0, 0), (std::vector<std::uint64_t>{8, 16, 32, 64, 128}));
  EXPECT_EQ(ffb::size_sweep(0, 9, 3.0, 0), (std::vector<std::uint64_t>{0, 1, 3, 9}));
  EXPECT_EQ(ffb::size_sweep(100, 350, 1.0, 100), (std::vector<std::uint64_t>{100, 200, 300}));
  EXPECT_EQ(ffb::size_sweep(5, 5, 1.0, 0), (std::vector<std::uint64_t>{5}));
}

TEST(SizeSweep, RejectsImpossibleRequests) {
  EXPECT_THROW(ffb::size_sweep(16, 8, 2.0, 0), ffb::UsageError);
  EXPECT_THROW(ffb::size_sweep(8, 16, 0.5, 0), ffb::UsageError);
  EXPECT_THROW(ffb::size_sweep(8, 16, 1.0, 0), ffb::UsageError);
}

TEST(FormatSize, Readable) {
  EXPECT_EQ(ffb::format_size(17), "17 B");
  EXPECT_EQ(ffb::format_size(1024), "1 KiB");
  EXPECT_EQ(ffb::format_size(1536), "1.5 KiB");
  EXPECT_EQ(ffb::format_size(64ull << 20), "64 MiB");
}

// busbw factors as nccl-tests defines them for allreduce: 2(n-1)/n, and 0 for one rank.
class FactorOnly final : public ffb::CollectiveBackend {
 public:
  std::string name() const override { return "test"; }
  bool supports(ffb::DataType, ffb::ReduceOp) const override { return true; }
  void run(const void*, void*, std::size_t, ffb::DataType, ffb::ReduceOp) override {}
};

TEST(BusBandwidth, AllreduceFactor) {
  FactorOnly b;
  EXPECT_DOUBLE_EQ(b.busbw_factor(1), 0.0);
  EXPECT_DOUBLE_EQ(b.busbw_factor(2), 1.0);
  EXPECT_DOUBLE_EQ(b.busbw_factor(4), 1.5);
  EXPECT_DOUBLE_EQ(b.busbw_factor(8), 1.75);
  EXPECT_DOUBLE_EQ(b.busbw_factor(16), 1.875);
}

}  // namespace
