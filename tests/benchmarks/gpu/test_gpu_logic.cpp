// Host-side logic of the GPU programs, tested without a GPU. (The CUDA copy stage's bookkeeping and
// the NVLink-pair planning are the library's: tests/hfreduce/unit/test_gpu_stage_logic.cpp, which
// CI builds without the CUDA toolkit too.)
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "gpu_logic.h"

namespace fs = std::filesystem;
using namespace ffb::gpu;

TEST(PciPath, ParsesRootPortAndBridges) {
  const auto p = parse_pci_path("/sys/devices/pci0000:17/0000:17:01.0/0000:18:00.0/0000:19:00.0");
  EXPECT_EQ(p.root_complex, "pci0000:17");
  ASSERT_EQ(p.chain.size(), 3u);
  EXPECT_EQ(p.root_port(), "0000:17:01.0");
  EXPECT_EQ(p.chain.back(), "0000:19:00.0");
  EXPECT_EQ(p.bridges_below_root_port(), 1);
}

TEST(PciPath, DeviceOnRootBusHasNoRootPort) {
  const auto p = parse_pci_path("/sys/devices/pci0000:00/0000:00:05.0");
  EXPECT_EQ(p.root_complex, "pci0000:00");
  EXPECT_EQ(p.root_port(), "");
  EXPECT_EQ(p.bridges_below_root_port(), 0);
}

TEST(PciPath, UpperCaseAndLongDomainsAreNormalised) {
  const auto p = parse_pci_path("/sys/devices/pci10000:E0/10000:E0:03.1/10000:E1:00.0");
  EXPECT_EQ(p.root_complex, "pci10000:e0");
  EXPECT_EQ(p.root_port(), "10000:e0:03.1");
}

TEST(PciPath, GarbageGivesEmpty) {
  EXPECT_TRUE(parse_pci_path("").chain.empty());
  EXPECT_TRUE(parse_pci_path("/sys/devices/platform/foo").root_complex.empty());
  EXPECT_FALSE(is_bus_id("0000:19:00"));
  EXPECT_FALSE(is_bus_id("0000:19:00.8"));
  EXPECT_FALSE(is_bus_id("00:19:00.0"));
  EXPECT_TRUE(is_bus_id("0000:19:00.0"));
  EXPECT_TRUE(is_bus_id("0000:AB:1f.7"));
}

TEST(PciLink, BandwidthPerGeneration) {
  EXPECT_NEAR(pcie_link_gbps("16.0 GT/s PCIe", 16), 31.51, 0.01);  // Gen4 x16
  EXPECT_NEAR(pcie_link_gbps("32.0 GT/s PCIe", 16), 63.02, 0.01);  // Gen5 x16
  EXPECT_NEAR(pcie_link_gbps("8.0 GT/s", 8), 7.88, 0.01);          // Gen3 x8
  EXPECT_NEAR(pcie_link_gbps("2.5 GT/s", 1), 0.25, 1e-9);          // Gen1 x1, 8b/10b
  EXPECT_EQ(pcie_link_gbps("Unknown", 16), 0.0);
  EXPECT_EQ(pcie_link_gbps("16.0 GT/s", 0), 0.0);
  EXPECT_EQ(pcie_generation("16.0 GT/s PCIe"), "Gen4");
  EXPECT_EQ(pcie_generation("32.0 GT/s PCIe"), "Gen5");
  EXPECT_EQ(pcie_generation("?"), "");
}

TEST(PciLink, GroupsBySharedRootPort) {
  std::vector<PciPath> paths = {
      parse_pci_path("/sys/devices/pci0000:00/0000:00:01.1/0000:01:00.0"),
      parse_pci_path("/sys/devices/pci0000:40/0000:40:03.1/0000:41:00.0/0000:42:08.0/0000:44:00.0"),
      parse_pci_path("/sys/devices/pci0000:40/0000:40:03.1/0000:41:00.0/0000:42:10.0/0000:45:00.0"),
      parse_pci_path("/sys/devices/pci0000:80/0000:80:00.0")};
  const auto g = group_by_root_port(paths);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g.at("0000:40:03.1"), (std::vector<int>{1, 2}));
  EXPECT_EQ(g.at("0000:00:01.1"), (std::vector<int>{0}));
  EXPECT_EQ(g.at("0000:80:00.0"), (std::vector<int>{3}));  // on the root bus: keyed by itself
}

TEST(PciInfo, ReadsAFakeSysfsTree) {
  const fs::path root = fs::temp_directory_path() / ("ffb_sysfs_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const fs::path dev = root / "devices" / "pci0000:17" / "0000:17:01.0" / "0000:19:00.0";
  fs::create_directories(dev);
  fs::create_directories(root / "bus" / "pci" / "devices");
  fs::create_directory_symlink(dev, root / "bus" / "pci" / "devices" / "0000:19:00.0");
  std::ofstream(dev / "numa_node") << "1\n";
  std::ofstream(dev / "current_link_speed") << "16.0 GT/s PCIe\n";
  std::ofstream(dev / "current_link_width") << "16\n";
  std::ofstream(dev / "max_link_speed") << "16.0 GT/s PCIe\n";
  std::ofstream(dev / "max_link_width") << "16\n";
  const auto info = read_pci_info("0000:19:00.0", root.string());
  EXPECT_EQ(info.numa_node, 1);
  EXPECT_EQ(info.link_width, 16);
  EXPECT_EQ(info.link_speed, "16.0 GT/s PCIe");
  EXPECT_EQ(info.path.root_port(), "0000:17:01.0");
  const auto missing = read_pci_info("0000:99:00.0", root.string());
  EXPECT_EQ(missing.numa_node, -1);
  EXPECT_TRUE(missing.path.chain.empty());
  fs::remove_all(root);
}

TEST(Gemm, FlopCountIsTwoNCubed) {
  EXPECT_EQ(gemm_flops(2048), 2.0 * 2048.0 * 2048.0 * 2048.0);
  // 100 products of N = 8192 in 1 s: 2 * 8192^3 * 100 / 1e12 = 109.95 TFLOPS
  EXPECT_NEAR(gemm_tflops(8192, 100, 1.0), 109.95, 0.01);
  EXPECT_EQ(gemm_tflops(8192, 100, 0.0), 0.0);
}
