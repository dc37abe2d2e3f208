// Host <-> device bandwidth per GPU (R6): pinned and pageable host memory, host-to-device,
// device-to-host and both at once, each GPU alone, then the GPUs that share a PCIe root port
// together, then all GPUs of the node at once, so a shared uplink shows (the paper: one A100 moves
// > 27 GB/s device-to-host alone, two on one root port about 37 GB/s together). Prints the PCI
// topology it ran on (sysfs). One process drives every GPU of the node, one thread per transfer.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "ffb/program.h"
#include "ffb/provenance.h"
#include "ffb/results.h"
#include "ffb/run_output.h"
#include "ffb/sizes.h"
#include "ffb/strings.h"
#include "gpu_logic.h"
#include "gpu_util.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace gpu = ffb::gpu;

enum class Dir { h2d, d2h, bidir };
const char* name_of(Dir d) {
  switch (d) {
    case Dir::h2d:
      return "h2d";
    case Dir::d2h:
      return "d2h";
    case Dir::bidir:
      return "both";
  }
  return "?";
}

struct Transfer {
  int device;
  bool h2d;
  bool pinned;
};

// Buffers per (device, direction, pinned), allocated on first use and kept.
class Buffers {
 public:
  explicit Buffers(std::size_t bytes) : bytes_(bytes) {}
  std::pair<void*, void*> get(const Transfer& t) {
    const int key = t.device * 4 + (t.h2d ? 2 : 0) + (t.pinned ? 1 : 0);
    auto it = host_.find(key);
    if (it == host_.end()) {
      gpu::check(cudaSetDevice(t.device), "cudaSetDevice");
      it = host_.emplace(key, std::make_unique<gpu::HostMemory>(bytes_, t.pinned)).first;
    }
    const int dkey = t.device * 2 + (t.h2d ? 1 : 0);
    auto dit = device_.find(dkey);
    if (dit == device_.end()) {
      gpu::check(cudaSetDevice(t.device), "cudaSetDevice");
      dit = device_.emplace(dkey, std::make_unique<gpu::DeviceMemory>(bytes_)).first;
    }
    return {it->second->get(), dit->second->get()};
  }

 private:
  std::size_t bytes_;
  std::map<int, std::unique_ptr<gpu::HostMemory>> host_;
  std::map<int, std::unique_ptr<gpu::DeviceMemory>> device_;
};

struct Measured {
  double total_gbps = 0;             // all bytes moved / (last end - first start)
  std::vector<double> per_transfer;  // each transfer's own GB/s
};

// Runs the transfers at once, one thread each, `iters` copies of `bytes` after `warmup` copies.
Measured run_concurrent(const std::vector<Transfer>& xs, Buffers& buffers, std::size_t bytes,
                        int iters, int warmup) {
  const std::size_t n = xs.size();
  std::vector<std::pair<void*, void*>> bufs;
  for (const auto& x : xs) bufs.push_back(buffers.get(x));
  std::vector<Clock::time_point> t0(n), t1(n);
  std::vector<std::string> errors(n);
  std::atomic<std::size_t> ready{0};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        const auto& x = xs[i];
        gpu::check(cudaSetDevice(x.device), "cudaSetDevice");
        gpu::Stream stream;
        auto [host, dev] = bufs[i];
        auto copy = [&] {
          if (x.h2d)
            gpu::check(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, stream.get()),
                       "cudaMemcpyAsync H2D");
          else
            gpu::check(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, stream.get()),
                       "cudaMemcpyAsync D2H");
        };
        for (int w = 0; w < warmup; ++w) copy();
        stream.synchronize();
        ready.fetch_add(1);
        while (ready.load() < n) std::this_thread::yield();
        t0[i] = Clock::now();
        for (int k = 0; k < iters; ++k) copy();
        stream.synchronize();
        t1[i] = Clock::now();
      } catch (const std::exception& e) {
        errors[i] = e.what();
        ready.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (!e.empty()) throw std::runtime_error(e);
  Measured m;
  auto first = t0[0], last = t1[0];
  for (std::size_t i = 0; i < n; ++i) {
    first = std::min(first, t0[i]);
    last = std::max(last, t1[i]);
    const double s = std::chrono::duration<double>(t1[i] - t0[i]).count();
    m.per_transfer.push_back(static_cast<double>(bytes) * iters / s / 1e9);
  }
  const double total_s = std::chrono::duration<double>(last - first).count();
  m.total_gbps = static_cast<double>(bytes) * iters * static_cast<double>(n) / total_s / 1e9;
  return m;
}

std::string join_ints(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

struct Args {
  std::string bytes_text = "256M", devices_text = "all", memory_text = "pinned,pageable", output,
              label;
  int iters = 10, warmup = 2;
  bool no_groups = false;
  // From the texts, by validate():
  std::uint64_t bytes = 0;
  std::vector<bool> kinds;     // host memory of the alone runs: true = pinned
  std::vector<int> requested;  // --devices as numbers; empty for "all"
};

void add_options(CLI::App& app, Args& a) {
  app.add_option("-b,--bytes", a.bytes_text, "bytes per copy (K/M/G)")->capture_default_str();
  app.add_option("-n,--iters", a.iters, "timed copies per transfer")->capture_default_str();
  app.add_option("-w,--warmup", a.warmup, "warm-up copies per transfer")->capture_default_str();
  app.add_option("--devices", a.devices_text, "GPUs to measure: all or a comma list")
      ->capture_default_str();
  app.add_option("--memory", a.memory_text, "host memory kinds for the alone runs")
      ->capture_default_str();
  app.add_flag("--no-groups", a.no_groups, "skip the shared-root-port and all-GPU runs");
  app.add_option("--output", a.output, "append this run to an HDF5 results file");
  app.add_option("--label", a.label, "free text stored with the run");
}

// Every check that needs no GPU; whether the --devices exist is the run's question.
void check(Args& a) {
  a.bytes = ffb::parse_size(a.bytes_text, "--bytes");
  if (a.bytes < 4096)
    throw ffb::UsageError(fmt::format("--bytes {}: give at least 4K", a.bytes_text));
  if (a.iters < 1 || a.warmup < 0) throw ffb::UsageError("-n >= 1 and -w >= 0, please");
  a.kinds.clear();
  for (const auto& m : ffb::split_list(a.memory_text)) {
    if (m == "pinned")
      a.kinds.push_back(true);
    else if (m == "pageable")
      a.kinds.push_back(false);
    else
      throw ffb::UsageError(fmt::format("--memory {}: give pinned and/or pageable", m));
  }
  a.requested.clear();
  if (a.devices_text == "all") return;
  for (const auto& s : ffb::split_list(a.devices_text)) {
    char* end = nullptr;
    const long d = std::strtol(s.c_str(), &end, 10);
    if (end == s.c_str() || *end != '\0' || d < 0 || d > 1 << 20)
      throw ffb::UsageError(fmt::format("--devices {}: give GPU indices (0, 1, ...) or all", s));
    a.requested.push_back(static_cast<int>(d));
  }
}

// The GPUs measured, with what the driver and sysfs say about them.
struct Gpus {
  std::vector<int> devices;
  std::vector<std::string> names;
  std::vector<gpu::PciInfo> pci;
};

Gpus select_gpus(const Args& a) {
  const int count = gpu::require_gpus();
  Gpus g;
  if (a.requested.empty())
    for (int d = 0; d < count; ++d) g.devices.push_back(d);
  for (int d : a.requested) {
    if (d >= count)
      throw ffb::UsageError(fmt::format("--devices {}: give GPU indices 0..{}", d, count - 1));
    g.devices.push_back(d);
  }
  for (int d : g.devices) {
    g.names.push_back(gpu::describe_device(d));
    g.pci.push_back(gpu::read_pci_info(gpu::pci_bus_id(d)));
  }
  return g;
}

// Prints the PCI topology and fills the pcie_topology table; returns the GPUs' indices into
// g.devices grouped by root port.
std::map<std::string, std::vector<int>> report_topology(const Gpus& g, const std::string& host,
                                                        ffb::Table& topo) {
  fmt::print("# PCI topology (sysfs) of {}:\n", host);
  auto& t_dev = topo.add_i64("device", "1");
  auto& t_name = topo.add_str("name");
  auto& t_bus = topo.add_str("bus_id");
  auto& t_numa = topo.add_i64("numa_node", "1");
  auto& t_port = topo.add_str("root_port");
  auto& t_bridges = topo.add_i64("bridges_below_root_port", "count");
  auto& t_speed = topo.add_str("link_speed");
  auto& t_width = topo.add_i64("link_width", "count");
  auto& t_link = topo.add_f64("link_gbps", "GB/s");
  std::vector<gpu::PciPath> paths;
  for (std::size_t i = 0; i < g.devices.size(); ++i) {
    const auto& p = g.pci[i];
    const double link = gpu::pcie_link_gbps(p.link_speed, p.link_width);
    const std::string port =
        p.path.root_port().empty() ? std::string("(on the root bus)") : p.path.root_port();
    fmt::print(
        "#  {}: NUMA {}, root complex {}, root port {}, {} bridge(s) below it, link "
        "{} x{} ({:.1f} GB/s per direction; max {} x{})\n",
        g.names[i], p.numa_node, p.path.root_complex.empty() ? "?" : p.path.root_complex, port,
        p.path.bridges_below_root_port(),
        p.link_speed.empty() ? "?" : gpu::pcie_generation(p.link_speed) + " " + p.link_speed,
        p.link_width, link, p.max_link_speed.empty() ? "?" : p.max_link_speed, p.max_link_width);
    paths.push_back(p.path);
    t_dev.push_back(g.devices[i]);
    t_name.push_back(g.names[i]);
    t_bus.push_back(p.bus_id);
    t_numa.push_back(p.numa_node);
    t_port.push_back(p.path.root_port());
    t_bridges.push_back(p.path.bridges_below_root_port());
    t_speed.push_back(p.link_speed);
    t_width.push_back(p.link_width);
    t_link.push_back(link);
  }
  auto groups = gpu::group_by_root_port(paths);
  for (auto& [port, members] : groups) {
    for (int& m : members) m = g.devices[static_cast<std::size_t>(m)];  // indices -> devices
    if (members.size() > 1)
      fmt::print("#  root port {} is shared by GPUs {}\n", port, join_ints(members));
  }
  return groups;
}

// Runs one scenario (transfers at once), prints its line and adds its row to the pcie table.
class ScenarioRunner {
 public:
  ScenarioRunner(const Args& a, ffb::Table& table)
      : a_(a),
        buffers_(a.bytes),
        c_scn_(table.add_str("scenario")),
        c_gpus_(table.add_str("gpus")),
        c_mem_(table.add_str("memory")),
        c_dir_(table.add_str("direction")),
        c_total_(table.add_f64("bandwidth", "GB/s")),
        c_min_(table.add_f64("bandwidth_min_transfer", "GB/s")),
        c_max_(table.add_f64("bandwidth_max_transfer", "GB/s")) {}

  void measure(const std::string& scenario, const std::vector<int>& devs, bool pinned, Dir dir) {
    std::vector<Transfer> xs;
    for (int d : devs) {
      if (dir != Dir::d2h) xs.push_back({d, true, pinned});
      if (dir != Dir::h2d) xs.push_back({d, false, pinned});
    }
    const auto m = run_concurrent(xs, buffers_, a_.bytes, a_.iters, a_.warmup);
    const auto [lo, hi] = std::minmax_element(m.per_transfer.begin(), m.per_transfer.end());
    std::string per;
    for (double v : m.per_transfer) per += fmt::format("{}{:.1f}", per.empty() ? "" : " ", v);
    fmt::print("  {:<26} {:>9} {:>9} {:>5} {:11.2f}   {}\n", scenario, join_ints(devs),
               pinned ? "pinned" : "pageable", name_of(dir), m.total_gbps, per);
    std::fflush(stdout);
    c_scn_.push_back(scenario);
    c_gpus_.push_back(join_ints(devs));
    c_mem_.emplace_back(pinned ? "pinned" : "pageable");
    c_dir_.emplace_back(name_of(dir));
    c_total_.push_back(m.total_gbps);
    c_min_.push_back(*lo);
    c_max_.push_back(*hi);
  }

 private:
  const Args& a_;
  Buffers buffers_;
  // The pcie table's columns (a Table's columns stay put as it grows).
  std::vector<std::string>& c_scn_;
  std::vector<std::string>& c_gpus_;
  std::vector<std::string>& c_mem_;
  std::vector<std::string>& c_dir_;
  std::vector<double>& c_total_;
  std::vector<double>& c_min_;
  std::vector<double>& c_max_;
};

// Each GPU alone, then the GPUs of each shared root port together, then all of them.
void measure_scenarios(const Args& a, const Gpus& g,
                       const std::map<std::string, std::vector<int>>& groups, ffb::Table& table) {
  fmt::print(
      "# R6 (paper, A100 PCIe Gen4 x16 on EPYC): one GPU device-to-host > 27 GB/s; "
      "two GPUs on one root port ~37 GB/s together, less in both directions\n");
  fmt::print("# {} per copy, {} warm-up + {} timed copies per transfer; GB = 1e9 B\n",
             ffb::format_size(a.bytes), a.warmup, a.iters);
  fmt::print("# {:<26} {:>9} {:>9} {:>5} {:>11} {:>22}\n", "scenario", "GPUs", "memory", "dir",
             "total GB/s", "per transfer GB/s");
  ScenarioRunner runner(a, table);
  for (int d : g.devices)
    for (bool pinned : a.kinds)
      for (Dir dir : {Dir::h2d, Dir::d2h, Dir::bidir}) runner.measure("alone", {d}, pinned, dir);
  if (a.no_groups) return;
  for (const auto& [port, devs] : groups) {
    if (devs.size() < 2 || devs.size() == g.devices.size()) continue;
    for (Dir dir : {Dir::d2h, Dir::h2d, Dir::bidir})
      runner.measure("root port " + port, devs, true, dir);
  }
  if (g.devices.size() > 1)
    for (Dir dir : {Dir::d2h, Dir::h2d, Dir::bidir})
      runner.measure(groups.size() == 1 ? "all GPUs (one root port)" : "all GPUs", g.devices, true,
                     dir);
}

class PcieBench final : public ffb::Program {
 public:
  void add_options(CLI::App& app) override { ::add_options(app, a_); }
  void validate() override { check(a_); }
  int run(ffb::ProgramContext& ctx) override {
    ffb::check_output(a_.output, ctx.comm);
    const Gpus g = select_gpus(a_);
    ffb::RunRecord run;
    run.attrs["label"] = a_.label;
    run.attrs["options"] = fmt::format(
        R"({{"bytes": {}, "iters": {}, "warmup": {}, "devices": "{}", "memory": "{}", "groups": {}}})",
        a_.bytes, a_.iters, a_.warmup, a_.devices_text, a_.memory_text,
        a_.no_groups ? "false" : "true");
    std::string all_names;
    for (const auto& s : g.names) all_names += (all_names.empty() ? "" : "; ") + s;
    ffb::add_provenance(run, ctx.comm, ctx.topology, "pcie_bench", "probe", ctx.argv,
                        ctx.root() ? all_names : "-");
    if (ctx.root()) {
      if (ctx.size > 1)
        fmt::print("# pcie_bench measures from rank 0 only (it drives every GPU of its node)\n");
      ffb::Table topo{.name = "pcie_topology", .columns = {}};
      const auto groups = report_topology(g, ctx.topology.host, topo);
      ffb::Table table{.name = "pcie", .columns = {}};
      measure_scenarios(a_, g, groups, table);
      run.tables.push_back(std::move(topo));
      run.tables.push_back(std::move(table));
    }
    return ffb::finish_run(ctx.comm, a_.output, run, false);
  }

 private:
  Args a_;
};

}  // namespace

int main(int argc, char** argv) {
  PcieBench program;
  return ffb::run_program(
      argc, argv,
      {.name = "pcie_bench",
       .description = "host<->device bandwidth per GPU, alone and together (R6); GB = 1e9 B",
       .thread_level = MPI_THREAD_MULTIPLE,
       .parse = {}},
      program);
}
