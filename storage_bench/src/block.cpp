#include "block.h"

#include <bit>
#include <cstring>

#include <fmt/format.h>

#include "samplers.h"

namespace sb {

namespace {

constexpr std::uint64_t kP1 = 0x9e3779b185ebca87ULL;
constexpr std::uint64_t kP2 = 0xc2b2ae3d27d4eb4fULL;
constexpr std::uint64_t kP3 = 0x165667b19e3779f9ULL;

inline std::uint64_t load64(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline std::uint64_t lane(std::uint64_t acc, std::uint64_t v) {
  acc += v * kP2;
  acc = std::rotl(acc, 31);
  return acc * kP1;
}

inline std::uint64_t avalanche(std::uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

std::uint64_t header_sum_of(const BlockHeader& h) {
  return checksum64(&h, offsetof(BlockHeader, header_sum), 0x4844);
}

std::uint64_t pattern_seed(const BlockId& id) {
  return mix64(id.file, id.offset, id.seq ^ (std::uint64_t{id.rank} << 40));
}

}  // namespace

std::uint64_t checksum64(const void* data, std::size_t len, std::uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  const unsigned char* end = p + len;
  std::uint64_t a = seed + kP1 + kP2, b = seed + kP2, c = seed, d = seed - kP1;
  while (end - p >= 32) {
    a = lane(a, load64(p));
    b = lane(b, load64(p + 8));
    c = lane(c, load64(p + 16));
    d = lane(d, load64(p + 24));
    p += 32;
  }
  std::uint64_t h = std::rotl(a, 1) + std::rotl(b, 7) + std::rotl(c, 12) + std::rotl(d, 18);
  h ^= static_cast<std::uint64_t>(len) * kP3;
  while (end - p >= 8) {
    h = std::rotl(h ^ lane(0, load64(p)), 27) * kP1 + kP3;
    p += 8;
  }
  while (p < end) {
    h = std::rotl(h ^ (static_cast<std::uint64_t>(*p) * kP3), 11) * kP1;
    ++p;
  }
  return avalanche(h);
}

void fill_pattern(std::span<std::byte> buf, std::uint64_t seed) {
  Rng rng(seed);
  std::size_t i = 0;
  for (; i + 8 <= buf.size(); i += 8) {
    const std::uint64_t v = rng.next();
    std::memcpy(buf.data() + i, &v, 8);
  }
  if (i < buf.size()) {
    const std::uint64_t v = rng.next();
    std::memcpy(buf.data() + i, &v, buf.size() - i);
  }
}

void stamp_block(std::span<std::byte> buf, const BlockId& id, const std::uint64_t* payload_sum) {
  if (buf.size() < kHeaderBytes) {
    fill_pattern(buf, pattern_seed(id));
    return;
  }
  BlockHeader h{};
  h.magic = kBlockMagic;
  h.rank = id.rank;
  h.version = 1;
  h.file = id.file;
  h.offset = id.offset;
  h.seq = id.seq;
  h.length = buf.size();
  h.payload_sum =
      payload_sum ? *payload_sum : checksum64(buf.data() + kHeaderBytes, buf.size() - kHeaderBytes);
  h.header_sum = header_sum_of(h);
  std::memcpy(buf.data(), &h, sizeof h);
}

void make_block(std::span<std::byte> buf, const BlockId& id) {
  if (buf.size() >= kHeaderBytes) fill_pattern(buf.subspan(kHeaderBytes), pattern_seed(id));
  stamp_block(buf, id);
}

const char* name_of(BlockCheck c) {
  switch (c) {
    case BlockCheck::ok:
      return "ok";
    case BlockCheck::bad_magic:
      return "no block header (lost or foreign data)";
    case BlockCheck::wrong_identity:
      return "header names another block (misplaced or stale data)";
    case BlockCheck::bad_header_sum:
      return "header checksum mismatch (corrupted header)";
    case BlockCheck::bad_payload_sum:
      return "payload checksum mismatch (corrupted data)";
    case BlockCheck::bad_pattern:
      return "short block pattern mismatch (corrupted data)";
  }
  return "?";
}

BlockCheck check_block(std::span<const std::byte> buf, const BlockId& expected) {
  if (buf.size() < kHeaderBytes) {
    std::byte tmp[kHeaderBytes];
    fill_pattern(std::span<std::byte>(tmp, buf.size()), pattern_seed(expected));
    return std::memcmp(tmp, buf.data(), buf.size()) == 0 ? BlockCheck::ok : BlockCheck::bad_pattern;
  }
  BlockHeader h;
  std::memcpy(&h, buf.data(), sizeof h);
  if (h.magic != kBlockMagic) return BlockCheck::bad_magic;
  if (h.header_sum != header_sum_of(h)) return BlockCheck::bad_header_sum;
  if (h.rank != expected.rank || h.file != expected.file || h.offset != expected.offset ||
      h.seq != expected.seq || h.length != buf.size())
    return BlockCheck::wrong_identity;
  if (h.payload_sum != checksum64(buf.data() + kHeaderBytes, buf.size() - kHeaderBytes))
    return BlockCheck::bad_payload_sum;
  return BlockCheck::ok;
}

std::string describe_mismatch(std::span<const std::byte> buf, const BlockId& expected,
                              BlockCheck c) {
  std::string s =
      fmt::format("{}: expected rank {} file {} offset {} seq {} length {}", name_of(c),
                  expected.rank, expected.file, expected.offset, expected.seq, buf.size());
  if (buf.size() >= kHeaderBytes && c == BlockCheck::wrong_identity) {
    BlockHeader h;
    std::memcpy(&h, buf.data(), sizeof h);
    s += fmt::format(", found rank {} file {} offset {} seq {} length {}", h.rank, h.file, h.offset,
                     h.seq, h.length);
  }
  return s;
}

}  // namespace sb
