// Facts about this host that measurements are sized by: available memory and the last-level cache.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ffb {

// /proc/meminfo value of `key` (e.g. "MemAvailable", "Cached") in bytes; 0 when absent.
std::uint64_t meminfo_bytes(std::string_view key);
// /proc/meminfo MemAvailable in bytes; 0 when unknown.
std::uint64_t mem_available_bytes();

// One /sys/devices/system/cpu/cpu*/cache/index* directory.
struct CacheEntry {
  int level = 0;
  std::string type;             // "Data", "Instruction", "Unified"
  std::uint64_t bytes = 0;      // from `size`, e.g. "32768K"
  std::string shared_cpu_list;  // e.g. "0-1": names the instance
};

struct LastLevelCache {
  std::uint64_t bytes = 0;  // summed over the distinct instances (both L3s of a 2-socket node)
  int level = 0;            // 0 when the fallback was used
  int instances = 0;
  std::string source;  // "sysfs" or "fallback: ..."
};

inline constexpr std::uint64_t kFallbackLlcBytes = 32ull << 20;

// sysfs `size` text ("32768K", "1M", "512") in bytes; 0 when unreadable.
std::uint64_t parse_cache_size(std::string_view text);

// The highest level holding data, summed over distinct shared_cpu_list; the 32 MiB fallback (with
// the reason in `source`) when no entry qualifies.
LastLevelCache last_level_cache_of(const std::vector<CacheEntry>& entries);

// Reads sysfs (`root` for tests) and applies last_level_cache_of.
LastLevelCache last_level_cache(const std::string& root = "/sys/devices/system/cpu");

}  // namespace ffb
