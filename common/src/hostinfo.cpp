#include "ffb/hostinfo.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace ffb {

namespace fs = std::filesystem;

std::uint64_t meminfo_bytes(std::string_view key) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(k, 0) != 0) continue;
    std::istringstream is(line.substr(k.size()));
    std::uint64_t v = 0;
    std::string unit;
    is >> v >> unit;
    return unit == "kB" ? v * 1024 : v;
  }
  return 0;
}

std::uint64_t mem_available_bytes() { return meminfo_bytes("MemAvailable"); }

std::uint64_t parse_cache_size(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::uint64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr == text.data()) return 0;
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  if (unit.empty()) return v;
  if (unit == "K") return v << 10;
  if (unit == "M") return v << 20;
  if (unit == "G") return v << 30;
  return 0;
}

LastLevelCache last_level_cache_of(const std::vector<CacheEntry>& entries) {
  int top = 0;
  for (const auto& e : entries)
    if (e.type != "Instruction" && e.bytes > 0) top = std::max(top, e.level);
  LastLevelCache llc;
  std::set<std::string> seen;
  for (const auto& e : entries) {
    if (e.level != top || e.type == "Instruction" || e.bytes == 0) continue;
    if (!seen.insert(e.shared_cpu_list).second) continue;
    llc.bytes += e.bytes;
    ++llc.instances;
  }
  if (top == 0 || llc.bytes == 0) {
    return LastLevelCache{kFallbackLlcBytes, 0, 0,
                          "fallback 32 MiB: no cache sizes in /sys/devices/system/cpu"};
  }
  llc.level = top;
  llc.source = "sysfs";
  return llc;
}

namespace {

std::string read_line(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

LastLevelCache last_level_cache(const std::string& root) {
  std::vector<CacheEntry> entries;
  std::error_code ec;
  for (const auto& cpu : fs::directory_iterator(root, ec)) {
    const auto name = cpu.path().filename().string();
    if (name.size() < 4 || name.rfind("cpu", 0) != 0 ||
        name.find_first_not_of("0123456789", 3) != std::string::npos)
      continue;
    std::error_code ec2;
    for (const auto& idx : fs::directory_iterator(cpu.path() / "cache", ec2)) {
      if (idx.path().filename().string().rfind("index", 0) != 0) continue;
      CacheEntry e;
      const auto level = read_line(idx.path() / "level");
      std::from_chars(level.data(), level.data() + level.size(), e.level);
      e.type = read_line(idx.path() / "type");
      e.bytes = parse_cache_size(read_line(idx.path() / "size"));
      e.shared_cpu_list = read_line(idx.path() / "shared_cpu_list");
      if (e.shared_cpu_list.empty()) e.shared_cpu_list = name;  // unknown sharing: one per CPU
      entries.push_back(std::move(e));
    }
  }
  return last_level_cache_of(entries);
}

}  // namespace ffb
