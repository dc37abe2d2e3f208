// Byte sizes as users type them: 8, 1K, 64M, 2G (binary suffixes, as nccl-tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ffb {

// Parses "64", "1K", "64M", "2G", "1T" (also "1KiB", "1KB" as binary). Throws UsageError naming
// flag.
std::uint64_t parse_size(std::string_view text, std::string_view flag);

// "1.0 KiB", "64 MiB", "17 B".
std::string format_size(std::uint64_t bytes);

// The nccl-tests sweep: from min to max, multiplying by factor when factor > 1, else adding step.
// A zero minimum is followed by 1 (then the factor applies). Throws UsageError on min > max etc.
std::vector<std::uint64_t> size_sweep(std::uint64_t min_bytes, std::uint64_t max_bytes,
                                      double factor, std::uint64_t step_bytes);

}  // namespace ffb
