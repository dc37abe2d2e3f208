// Block header and checksum: every kind of damage --verify must catch.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "block.h"

namespace {

using namespace sb;

std::vector<std::byte> block_of(std::size_t len, const BlockId& id) {
  std::vector<std::byte> b(len);
  make_block(b, id);
  return b;
}

const BlockId kId{3, 17, 1 << 20, 5};

TEST(Checksum, DeterministicAndSensitive) {
  std::vector<unsigned char> a(1000);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<unsigned char>(i * 7);
  const auto s = checksum64(a.data(), a.size());
  EXPECT_EQ(s, checksum64(a.data(), a.size()));
  for (std::size_t pos : {0u, 1u, 31u, 32u, 500u, 992u, 999u}) {
    auto b = a;
    b[pos] ^= 1;
    EXPECT_NE(checksum64(b.data(), b.size()), s) << pos;
  }
  EXPECT_NE(checksum64(a.data(), 999), s);  // length matters
  EXPECT_NE(checksum64(a.data(), a.size(), 1), s);
  for (std::size_t n = 0; n < 100; ++n) EXPECT_EQ(checksum64(a.data(), n), checksum64(a.data(), n));
}

TEST(Block, RoundTrip) {
  for (std::size_t len : {64u, 65u, 4096u, 4097u, 1u << 20}) {
    const auto b = block_of(len, kId);
    EXPECT_EQ(check_block(b, kId), BlockCheck::ok) << len;
  }
}

TEST(Block, PayloadCorruptionIsCaught) {
  auto b = block_of(8192, kId);
  b[5000] ^= std::byte{0x10};
  EXPECT_EQ(check_block(b, kId), BlockCheck::bad_payload_sum);
}

TEST(Block, HeaderCorruptionIsCaught) {
  auto b = block_of(8192, kId);
  b[offsetof(BlockHeader, offset)] ^= std::byte{1};
  EXPECT_EQ(check_block(b, kId), BlockCheck::bad_header_sum);
}

TEST(Block, MisplacedOrStaleDataIsCaught) {
  const auto b = block_of(8192, kId);
  BlockId other = kId;
  other.offset += 8192;
  EXPECT_EQ(check_block(b, other), BlockCheck::wrong_identity);  // read from the wrong offset
  other = kId;
  other.seq = 6;
  EXPECT_EQ(check_block(b, other), BlockCheck::wrong_identity);  // stale: last step's data
  other = kId;
  other.rank = 4;
  EXPECT_EQ(check_block(b, other), BlockCheck::wrong_identity);  // another rank's data
  const std::string msg = describe_mismatch(b, other, BlockCheck::wrong_identity);
  EXPECT_NE(msg.find("expected rank 4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("found rank 3"), std::string::npos) << msg;
}

TEST(Block, LostDataIsCaught) {
  std::vector<std::byte> zeros(4096);
  EXPECT_EQ(check_block(zeros, kId), BlockCheck::bad_magic);
  auto b = block_of(4096, kId);
  std::vector<std::byte> truncated(b.begin(), b.begin() + 2048);
  EXPECT_EQ(check_block(truncated, kId), BlockCheck::wrong_identity);  // length in the header
}

TEST(Block, ShortBlocksUseAPattern) {
  for (std::size_t len : {1u, 7u, 63u}) {
    auto b = block_of(len, kId);
    EXPECT_EQ(check_block(b, kId), BlockCheck::ok);
    b[len / 2] ^= std::byte{0x80};
    EXPECT_EQ(check_block(b, kId), BlockCheck::bad_pattern);
  }
}

TEST(Block, StampingWithAKnownPayloadSumMatches) {
  std::vector<std::byte> a(4096), b(4096);
  fill_pattern(a, 99);
  b = a;
  const std::uint64_t sum = checksum64(a.data() + kHeaderBytes, a.size() - kHeaderBytes);
  stamp_block(a, kId, &sum);
  stamp_block(b, kId);
  EXPECT_EQ(a, b);
  EXPECT_EQ(check_block(a, kId), BlockCheck::ok);
}

}  // namespace
