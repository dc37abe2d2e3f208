// Host-side logic of the GPU programs and of the CUDA copy stage, tested without a GPU (CI).
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "copy/cuda_stage_logic.h"
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

TEST(Pairs, ParsesModes) {
  EXPECT_EQ(parse_pair_mode("off"), PairMode::off);
  EXPECT_EQ(parse_pair_mode("auto"), PairMode::automatic);
  EXPECT_EQ(parse_pair_mode("force"), PairMode::force);
  EXPECT_FALSE(parse_pair_mode("on").has_value());
  EXPECT_STREQ(name_of(PairMode::automatic), "auto");
}

namespace {
// NVLink bridges join (0,1) and (2,3); (1,2) only over PCIe without P2P.
bool bridges(const std::string& a, const std::string& b) {
  auto idx = [](const std::string& s) { return s.back() - '0'; };
  return idx(a) / 2 == idx(b) / 2 && a != b;
}
}  // namespace

TEST(Pairs, ConsecutiveLocalRanksPairWhenLinked) {
  const std::vector<std::string> buses = {"gpu0", "gpu1", "gpu2", "gpu3"};
  for (int r = 0; r < 4; ++r) {
    const auto p = plan_pair(r, buses, bridges, false);
    EXPECT_TRUE(p.ok) << p.reason;
    EXPECT_EQ(p.partner_local, r ^ 1);
    EXPECT_EQ(p.position, r % 2);
  }
}

TEST(Pairs, MissingPeerAccessFallsBackWithReason) {
  const std::vector<std::string> buses = {"gpu0", "gpu2", "gpu1", "gpu3"};  // ranks 0,1 not bridged
  const auto p = plan_pair(3, buses, bridges, false);  // every rank sees the same verdict
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.reason.find("gpu0 and gpu2"), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find("peer-to-peer"), std::string::npos) << p.reason;
}

TEST(Pairs, OneWayAccessIsNotEnough) {
  auto one_way = [](const std::string& a, const std::string& b) { return a < b; };
  EXPECT_FALSE(plan_pair(0, {"gpu0", "gpu1"}, one_way, false).ok);
}

TEST(Pairs, OddRankCountCannotPair) {
  const auto p = plan_pair(0, {"gpu0", "gpu1", "gpu2"}, bridges, true);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.reason.find("odd"), std::string::npos);
}

TEST(Pairs, SharedGpuNeedsForce) {
  const std::vector<std::string> one_gpu = {"gpu0", "gpu0", "gpu0", "gpu0"};
  auto never = [](const std::string&, const std::string&) { return false; };
  const auto p = plan_pair(1, one_gpu, never, false);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.reason.find("share GPU"), std::string::npos);
  EXPECT_NE(p.reason.find("force"), std::string::npos);
  const auto f = plan_pair(1, one_gpu, never, true);
  EXPECT_TRUE(f.ok);
  EXPECT_EQ(f.partner_local, 0);
  EXPECT_EQ(f.position, 1);
}

TEST(Pairs, HalvesCoverTheMessageOnce) {
  for (std::size_t count : {0ul, 1ul, 2ul, 63ul, 64ul, 65ul, 127ul, 128ul, 1000ul, 1ul << 20}) {
    const auto a = pair_half(count, 0), b = pair_half(count, 1);
    EXPECT_EQ(a.begin, 0u);
    EXPECT_EQ(a.end, b.begin);
    EXPECT_EQ(b.end, count);
    EXPECT_EQ(a.size() + b.size(), count);
    if (b.size() > 0) {
      EXPECT_EQ(b.begin % 64, 0u) << count;
    }
    EXPECT_GE(a.size(), b.size()) << count;  // the staging buffer is sized by the first half
  }
}

// ---- the CUDA copy stage's bookkeeping ----

TEST(CudaStageLogic, DeviceChoiceWrapsLocalRank) {
  using hfreduce::copy::choose_device;
  EXPECT_EQ(choose_device(0, 8), 0);
  EXPECT_EQ(choose_device(5, 8), 5);
  EXPECT_EQ(choose_device(9, 8), 1);
  EXPECT_EQ(choose_device(3, 1), 0);  // four ranks on one GPU share it
  EXPECT_EQ(choose_device(-1, 2), 0);
  EXPECT_THROW(choose_device(0, 0), std::invalid_argument);
}

TEST(CudaStageLogic, HostRangesRegisterOnce) {
  hfreduce::copy::HostRanges r;
  std::vector<char> seg(1 << 16);
  EXPECT_TRUE(r.add(seg.data(), seg.size()));
  EXPECT_FALSE(r.add(seg.data(), seg.size()));  // already pinned
  EXPECT_FALSE(r.add(seg.data() + 100, 1000));  // inside a pinned range
  EXPECT_FALSE(r.add(seg.data(), 0));           // empty
  EXPECT_TRUE(r.covers(seg.data() + 4096, 4096));
  EXPECT_FALSE(r.covers(seg.data() + seg.size() - 10, 20));  // runs past the end
  std::vector<char> other(4096);
  EXPECT_FALSE(r.covers(other.data(), 1));
  EXPECT_TRUE(r.add(other.data(), other.size(), /*owned=*/false));
  ASSERT_EQ(r.ranges().size(), 2u);
  EXPECT_TRUE(r.ranges()[0].owned);
  EXPECT_FALSE(r.ranges()[1].owned);
  r.clear();
  EXPECT_FALSE(r.covers(seg.data(), 1));
}

TEST(CudaStageLogic, GateHoldsUntilReleased) {
  hfreduce::copy::Gate gate;
  EXPECT_FALSE(gate.released());
  std::atomic<bool> passed{false};
  std::thread waiter([&] {
    gate.wait();
    passed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(passed.load());
  gate.release();
  waiter.join();
  EXPECT_TRUE(passed.load());
  EXPECT_TRUE(gate.released());
  gate.wait();  // a released gate never blocks again
}
