// Host-side logic of the GPU programs that needs no GPU, no CUDA and no MPI, so CI can unit-test
// it (tests/benchmarks/gpu/test_gpu_logic.cpp): PCI topology from sysfs, link bandwidth and GEMM
// flop counts. (NVLink-pair planning is the library's: hfreduce/src/gpu/pair_logic.h.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ffb::gpu {

// ---- PCI topology ----

// Where a PCI function sits: the root complex and the chain of functions from the root port down
// to the device, parsed from the canonical sysfs path of /sys/bus/pci/devices/<bdf>, e.g.
// "/sys/devices/pci0000:17/0000:17:01.0/0000:18:00.0/0000:19:00.0" ->
//   root_complex "pci0000:17", chain {"0000:17:01.0", "0000:18:00.0", "0000:19:00.0"}.
struct PciPath {
  std::string root_complex;        // "pci0000:17"; empty if the path was not understood
  std::vector<std::string> chain;  // bus ids, root port first, the device last
  // The root port the device hangs off ("0000:17:01.0"), or "" when the device sits directly on
  // the root bus (virtual machines, integrated devices).
  std::string root_port() const { return chain.size() >= 2 ? chain.front() : std::string(); }
  // PCIe switches/bridges between the root port and the device.
  int bridges_below_root_port() const {
    return chain.size() >= 2 ? static_cast<int>(chain.size()) - 2 : 0;
  }
};

// True for "0000:19:00.0"-shaped bus ids (domain:bus:device.function, hex, any case).
bool is_bus_id(const std::string& s);
PciPath parse_pci_path(const std::string& sysfs_path);

// Bandwidth of a PCIe link per direction in GB/s (1e9 B/s), after line encoding (8b/10b up to
// 5 GT/s, 128b/130b from 8 GT/s; 242B/256B FLIT for 64 GT/s), before protocol overhead.
// speed_text as sysfs prints it: "16.0 GT/s PCIe", "2.5 GT/s"; 0 when it cannot be parsed.
double pcie_link_gbps(const std::string& speed_text, int width);
// "Gen4" for 16 GT/s, ... ("" if unknown).
std::string pcie_generation(const std::string& speed_text);

// Devices grouped by root port (a group of two or more shares the port's uplink: R6's case).
// Devices without a root port form singleton groups keyed by their own bus id.
std::map<std::string, std::vector<int>> group_by_root_port(const std::vector<PciPath>& paths);

// What the sysfs files say about one device (read_pci_info fills it; pure parsing is above).
struct PciInfo {
  std::string bus_id;
  PciPath path;
  int numa_node = -1;
  std::string link_speed, max_link_speed;  // as sysfs prints them
  int link_width = 0, max_link_width = 0;
};
// Reads /sys/bus/pci/devices/<bus_id>/... under `sysfs_root` ("/sys" normally; tests pass a fake
// tree). Missing files leave the defaults.
PciInfo read_pci_info(const std::string& bus_id, const std::string& sysfs_root = "/sys");

// ---- GEMM ----

// Floating-point operations of one C = A x B with square N x N matrices: 2 N^3 (R7's count).
double gemm_flops(std::uint64_t n);
// TFLOPS (1e12 flop/s) of `reps` products of size n in `seconds`.
double gemm_tflops(std::uint64_t n, int reps, double seconds);

}  // namespace ffb::gpu
