#include "ffb/link_rate.h"

#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <utility>

#include <fmt/format.h>

namespace ffb {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Leading decimal number (digits with at most one '.'); the rest goes to `rest`.
std::optional<double> leading_number(std::string_view s, std::string_view& rest) {
  std::size_t i = 0;
  bool dot = false, digit = false;
  for (; i < s.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) {
      digit = true;
    } else if (s[i] == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!digit) return std::nullopt;
  const double v = std::strtod(std::string(s.substr(0, i)).c_str(), nullptr);
  if (!std::isfinite(v)) return std::nullopt;
  rest = s.substr(i);
  return v;
}

}  // namespace

std::optional<double> parse_tc_rate_gbit(std::string_view text) {
  std::string_view unit;
  const auto v = leading_number(trim(text), unit);
  if (!v || *v <= 0) return std::nullopt;
  std::string u(unit);
  for (auto& c : u) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // tc(8): bit (or a bare number) and bps (bytes/s), with SI (k, m, g, t) or IEC (ki, mi, ...)
  // prefixes.
  static const std::array<std::pair<const char*, double>, 9> prefixes{{{"", 1.0},
                                                                       {"k", 1e3},
                                                                       {"m", 1e6},
                                                                       {"g", 1e9},
                                                                       {"t", 1e12},
                                                                       {"ki", 1024.0},
                                                                       {"mi", 1048576.0},
                                                                       {"gi", 1073741824.0},
                                                                       {"ti", 1099511627776.0}}};
  if (u.empty()) return *v / 1e9;
  for (const auto& [p, scale] : prefixes) {
    if (u == std::string(p) + "bit") return *v * scale / 1e9;
    if (u == std::string(p) + "bps") return *v * scale * 8.0 / 1e9;
  }
  return std::nullopt;
}

std::optional<double> parse_ib_rate_gbit(std::string_view text) {
  std::string_view rest;
  const auto v = leading_number(trim(text), rest);
  if (!v || *v <= 0 || !trim(rest).starts_with("Gb/sec")) return std::nullopt;
  return v;
}

LinkRate link_rate_from(const char* env_value, const std::vector<IbPort>& ports) {
  std::string note;
  if (env_value != nullptr && *env_value != '\0') {
    if (const auto g = parse_tc_rate_gbit(env_value))
      return {g, fmt::format("tc rate on the emulated cluster (FFB_EMU_LINK_RATE={})", env_value)};
    note = fmt::format("; FFB_EMU_LINK_RATE={} ignored (not a tc rate such as 1gbit)", env_value);
  }
  const IbPort* best = nullptr;
  double best_gbit = 0;
  for (const auto& p : ports) {
    const auto g = parse_ib_rate_gbit(p.rate);
    if (p.state.find("ACTIVE") == std::string::npos || !g || *g <= best_gbit) continue;
    best = &p;
    best_gbit = *g;
  }
  if (best != nullptr)
    return {best_gbit, fmt::format("sysfs {}: {}{}", best->rate_path, trim(best->rate), note)};
  if (!note.empty())
    return {std::nullopt, fmt::format("none found (FFB_EMU_LINK_RATE={} is not a tc rate such as "
                                      "1gbit; no active InfiniBand/RoCE port)",
                                      env_value)};
  return {std::nullopt, "none found (no FFB_EMU_LINK_RATE, no active InfiniBand/RoCE port)"};
}

namespace {

std::string read_line(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

LinkRate detect_link_rate(const std::string& ib_root) {
  namespace fs = std::filesystem;
  std::vector<IbPort> ports;
  std::error_code ec;
  for (const auto& dev : fs::directory_iterator(ib_root, ec)) {
    std::error_code ec2;
    for (const auto& port : fs::directory_iterator(dev.path() / "ports", ec2)) {
      const auto rate = port.path() / "rate";
      ports.push_back({rate.string(), read_line(port.path() / "state"), read_line(rate)});
    }
  }
  return link_rate_from(std::getenv("FFB_EMU_LINK_RATE"), ports);
}

}  // namespace ffb
