// How a chunk is cut: into slices per local rank and halves per tree, in units of 64 elements so
// every piece starts 64-element aligned.
#pragma once

#include <cstddef>
#include <utility>

namespace hfreduce {

inline constexpr std::size_t kSliceUnit = 64;

// Piece i of `parts` over n elements: returns {begin, end}.
inline std::pair<std::size_t, std::size_t> slice_range(std::size_t n, int parts, int i) {
  const std::size_t units = (n + kSliceUnit - 1) / kSliceUnit;
  const std::size_t b = units * static_cast<std::size_t>(i) / static_cast<std::size_t>(parts);
  const std::size_t e = units * static_cast<std::size_t>(i + 1) / static_cast<std::size_t>(parts);
  return {std::min(n, b * kSliceUnit), std::min(n, e * kSliceUnit)};
}

}  // namespace hfreduce
