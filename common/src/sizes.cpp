#include "ffb/sizes.h"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "ffb/error.h"

namespace ffb {

std::uint64_t parse_size(std::string_view text, std::string_view flag) {
  const auto fail = [&](std::string_view why) {
    return UsageError(
        fmt::format("{} '{}': {}; use a byte count with an optional K, M, G or T "
                    "suffix (binary), e.g. 8, 64K, 128M",
                    flag, text, why));
  };
  if (text.empty()) throw fail("empty size");
  std::uint64_t value = 0;
  const auto* begin = text.data();
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::result_out_of_range) throw fail("too large");
  if (ec != std::errc() || ptr == begin) throw fail("not a size");
  std::string_view suffix(ptr, static_cast<std::size_t>(end - ptr));
  if (suffix.ends_with("iB") || suffix.ends_with("ib"))
    suffix.remove_suffix(2);
  else if (suffix.size() == 2 && (suffix[1] == 'B' || suffix[1] == 'b'))
    suffix.remove_suffix(1);
  unsigned shift = 0;
  if (suffix.empty() || suffix == "B" || suffix == "b")
    shift = 0;
  else if (suffix == "K" || suffix == "k")
    shift = 10;
  else if (suffix == "M" || suffix == "m")
    shift = 20;
  else if (suffix == "G" || suffix == "g")
    shift = 30;
  else if (suffix == "T" || suffix == "t")
    shift = 40;
  else
    throw fail(fmt::format("unknown suffix '{}'", suffix));
  if (shift > 0 && value > (std::numeric_limits<std::uint64_t>::max() >> shift))
    throw fail("too large");
  return value << shift;
}

std::string format_size(std::uint64_t bytes) {
  constexpr std::array<const char*, 5> units{"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024.0 && unit + 1 < units.size()) {
    v /= 1024.0;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  if (v == std::floor(v)) return fmt::format("{:.0f} {}", v, units[unit]);
  return fmt::format("{:.1f} {}", v, units[unit]);
}

std::vector<std::uint64_t> size_sweep(std::uint64_t min_bytes, std::uint64_t max_bytes,
                                      double factor, std::uint64_t step_bytes) {
  if (min_bytes > max_bytes)
    throw UsageError(fmt::format("-b/--minbytes {} is larger than -e/--maxbytes {}; give -b <= -e",
                                 min_bytes, max_bytes));
  if (!(factor >= 1.0) || !std::isfinite(factor))
    throw UsageError(
        fmt::format("-f/--stepfactor {} is invalid; use a factor >= 1 (1 = additive "
                    "steps of -i)",
                    factor));
  if (factor == 1.0 && step_bytes == 0 && min_bytes != max_bytes)
    throw UsageError("-i/--stepbytes 0 with -f 1 never reaches -e; give -i > 0 or -f > 1");
  std::vector<std::uint64_t> sizes;
  std::uint64_t s = min_bytes;
  while (s <= max_bytes) {
    sizes.push_back(s);
    std::uint64_t next = 0;
    if (factor > 1.0) {
      next = s == 0 ? 1 : static_cast<std::uint64_t>(std::ceil(static_cast<double>(s) * factor));
    } else {
      if (step_bytes == 0) break;
      next = s + step_bytes;
    }
    if (next <= s) break;  // overflow guard
    s = next;
  }
  return sizes;
}

}  // namespace ffb
