#include "gpu_logic.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace ffb::gpu {

namespace {

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string read_line(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string line;
  if (in) std::getline(in, line);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == ' '))
    line.pop_back();
  return line;
}

int read_int(const std::filesystem::path& p, int fallback) {
  const std::string s = read_line(p);
  if (s.empty()) return fallback;
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  return end == s.c_str() ? fallback : static_cast<int>(v);
}

// GT/s from "16.0 GT/s PCIe" / "8 GT/s" / "2.5 GT/s"; 0 if not parsable.
double gts_of(const std::string& speed_text) {
  const char* s = speed_text.c_str();
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (end == s || v <= 0) return 0;
  return v;
}

}  // namespace

bool is_bus_id(const std::string& s) {
  // dddd:bb:dd.f (domain may be longer on some systems: accept 4..8 hex digits)
  const auto colon1 = s.find(':');
  if (colon1 == std::string::npos || colon1 < 4 || colon1 > 8) return false;
  if (s.size() != colon1 + 8) return false;  // ":bb:dd.f"
  for (std::size_t i = 0; i < colon1; ++i)
    if (!is_hex(s[i])) return false;
  const std::string rest = s.substr(colon1);
  return rest[0] == ':' && is_hex(rest[1]) && is_hex(rest[2]) && rest[3] == ':' &&
         is_hex(rest[4]) && is_hex(rest[5]) && rest[6] == '.' && rest[7] >= '0' && rest[7] <= '7';
}

PciPath parse_pci_path(const std::string& sysfs_path) {
  PciPath out;
  std::stringstream ss(sysfs_path);
  std::string part;
  bool in_tree = false;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    if (!in_tree) {
      if (part.rfind("pci", 0) == 0 && part.size() > 3 && part.find(':') != std::string::npos) {
        out.root_complex = lower(part);
        in_tree = true;
      }
      continue;
    }
    if (is_bus_id(part)) out.chain.push_back(lower(part));
    // other components (e.g. "virtio", "host0") end nothing: PCI functions continue below them
    // only in odd trees; we keep collecting bus ids.
  }
  if (out.chain.empty()) out.root_complex.clear();
  return out;
}

double pcie_link_gbps(const std::string& speed_text, int width) {
  const double gts = gts_of(speed_text);
  if (gts <= 0 || width <= 0) return 0;
  double efficiency = 128.0 / 130.0;
  if (gts < 8.0) efficiency = 8.0 / 10.0;
  if (gts >= 64.0) efficiency = 242.0 / 256.0;
  return gts * width * efficiency / 8.0;
}

std::string pcie_generation(const std::string& speed_text) {
  const double gts = gts_of(speed_text);
  struct G {
    double gts;
    const char* name;
  };
  static constexpr G gens[] = {{2.5, "Gen1"},  {5.0, "Gen2"},  {8.0, "Gen3"},
                               {16.0, "Gen4"}, {32.0, "Gen5"}, {64.0, "Gen6"}};
  for (const auto& g : gens)
    if (std::fabs(gts - g.gts) < 0.01) return g.name;
  return "";
}

std::map<std::string, std::vector<int>> group_by_root_port(const std::vector<PciPath>& paths) {
  std::map<std::string, std::vector<int>> groups;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    std::string key = paths[i].root_port();
    if (key.empty()) {
      if (paths[i].chain.empty()) {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "?%zu", i);
        key = buf;
      } else {
        key = paths[i].chain.back();
      }
    }
    groups[key].push_back(static_cast<int>(i));
  }
  return groups;
}

PciInfo read_pci_info(const std::string& bus_id, const std::string& sysfs_root) {
  namespace fs = std::filesystem;
  PciInfo info;
  info.bus_id = lower(bus_id);
  const fs::path dev = fs::path(sysfs_root) / "bus" / "pci" / "devices" / info.bus_id;
  std::error_code ec;
  const fs::path real = fs::canonical(dev, ec);
  if (!ec) info.path = parse_pci_path(real.string());
  info.numa_node = read_int(dev / "numa_node", -1);
  info.link_speed = read_line(dev / "current_link_speed");
  info.max_link_speed = read_line(dev / "max_link_speed");
  info.link_width = read_int(dev / "current_link_width", 0);
  info.max_link_width = read_int(dev / "max_link_width", 0);
  return info;
}

double gemm_flops(std::uint64_t n) {
  const double d = static_cast<double>(n);
  return 2.0 * d * d * d;
}

double gemm_tflops(std::uint64_t n, int reps, double seconds) {
  if (seconds <= 0 || reps <= 0) return 0;
  return gemm_flops(n) * reps / seconds / 1e12;
}

}  // namespace ffb::gpu
