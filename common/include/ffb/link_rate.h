// The network link rate a run had, for provenance: the emulated cluster's tc rate, else the fastest
// active InfiniBand/RoCE port in sysfs.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ffb {

// tc rate text ("1gbit", "500mbit", "2.5gbit", "100kbit", "1000000bit", "125mbps") in Gbit/s;
// nullopt when it is not one.
std::optional<double> parse_tc_rate_gbit(std::string_view text);

// sysfs InfiniBand port rate ("200 Gb/sec (4X HDR)", "2.5 Gb/sec (1X SDR)") in Gbit/s.
std::optional<double> parse_ib_rate_gbit(std::string_view text);

struct IbPort {
  std::string rate_path;  // e.g. /sys/class/infiniband/mlx5_0/ports/1/rate
  std::string state;      // e.g. "4: ACTIVE"
  std::string rate;       // e.g. "200 Gb/sec (4X HDR)"
};

struct LinkRate {
  std::optional<double> gbit;
  std::string source;  // always set: where the figure came from, or why there is none
};

// env_value: FFB_EMU_LINK_RATE or nullptr. Pure: the first source that gives a rate wins.
LinkRate link_rate_from(const char* env_value, const std::vector<IbPort>& ports);

// Reads FFB_EMU_LINK_RATE and /sys/class/infiniband/*/ports/*/{state,rate}.
LinkRate detect_link_rate(const std::string& ib_root = "/sys/class/infiniband");

}  // namespace ffb
