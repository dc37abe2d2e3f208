// Host <-> device bandwidth per GPU (R6): pinned and pageable host memory, host-to-device,
// device-to-host and both at once, each GPU alone, then the GPUs that share a PCIe root port
// together, then all GPUs of the node at once, so a shared uplink shows (the paper: one A100 moves
// > 27 GB/s device-to-host alone, two on one root port about 37 GB/s together). Prints the PCI
// topology it ran on (sysfs). One process drives every GPU of the node, one thread per transfer.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "ffb/sizes.h"
#include "gpu_logic.h"
#include "gpu_program.h"
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

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string join_ints(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string bytes_text = "256M", devices_text = "all", memory_text = "pinned,pageable", output,
              label;
  int iters = 10, warmup = 2;
  bool no_groups = false;
  return gpu::run_program(
      argc, argv, "pcie_bench",
      "host<->device bandwidth per GPU, alone and together (R6); GB = 1e9 B",
      [&](CLI::App& app) {
        app.add_option("-b,--bytes", bytes_text, "bytes per copy (K/M/G)")->capture_default_str();
        app.add_option("-n,--iters", iters, "timed copies per transfer")->capture_default_str();
        app.add_option("-w,--warmup", warmup, "warm-up copies per transfer")->capture_default_str();
        app.add_option("--devices", devices_text, "GPUs to measure: all or a comma list")
            ->capture_default_str();
        app.add_option("--memory", memory_text, "host memory kinds for the alone runs")
            ->capture_default_str();
        app.add_flag("--no-groups", no_groups, "skip the shared-root-port and all-GPU runs");
        app.add_option("--output", output, "append this run to an HDF5 results file");
        app.add_option("--label", label, "free text stored with the run");
      },
      [&](gpu::ProgramContext& ctx) {
        ffb::check_output(output, ctx.comm);
        const auto bytes = ffb::parse_size(bytes_text, "--bytes");
        if (bytes < 4096)
          throw ffb::UsageError(fmt::format("--bytes {}: give at least 4K", bytes_text));
        if (iters < 1 || warmup < 0) throw ffb::UsageError("-n >= 1 and -w >= 0, please");
        std::vector<bool> kinds;
        for (const auto& m : split_list(memory_text)) {
          if (m == "pinned")
            kinds.push_back(true);
          else if (m == "pageable")
            kinds.push_back(false);
          else
            throw ffb::UsageError(fmt::format("--memory {}: give pinned and/or pageable", m));
        }
        const int count = gpu::require_gpus();
        std::vector<int> devices;
        if (devices_text == "all") {
          for (int d = 0; d < count; ++d) devices.push_back(d);
        } else {
          for (const auto& s : split_list(devices_text)) {
            char* end = nullptr;
            const long d = std::strtol(s.c_str(), &end, 10);
            if (end == s.c_str() || *end != '\0' || d < 0 || d >= count)
              throw ffb::UsageError(
                  fmt::format("--devices {}: give GPU indices 0..{}", s, count - 1));
            devices.push_back(static_cast<int>(d));
          }
        }
        std::vector<std::string> names;
        std::vector<ffb::gpu::PciInfo> pci;
        for (int d : devices) {
          names.push_back(gpu::describe_device(d));
          pci.push_back(gpu::read_pci_info(gpu::pci_bus_id(d)));
        }

        ffb::RunRecord run;
        run.attrs["label"] = label;
        run.attrs["options"] = fmt::format(
            R"({{"bytes": {}, "iters": {}, "warmup": {}, "devices": "{}", "memory": "{}", "groups": {}}})",
            bytes, iters, warmup, devices_text, memory_text, no_groups ? "false" : "true");
        std::string all_names;
        for (const auto& s : names) all_names += (all_names.empty() ? "" : "; ") + s;
        ffb::add_provenance(run, ctx.comm, ctx.topology, "pcie_bench", "probe", ctx.argv,
                            ctx.root() ? all_names : "-");
        int failed = 0;
        if (ctx.root()) {
          int nranks = 1;
          MPI_Comm_size(ctx.comm, &nranks);
          if (nranks > 1)
            fmt::print(
                "# pcie_bench measures from rank 0 only (it drives every GPU of its node)\n");
          // ---- topology ----
          fmt::print("# PCI topology (sysfs) of {}:\n", ctx.topology.host);
          ffb::Table topo{.name = "pcie_topology", .columns = {}};
          auto& t_dev = topo.add_i64("device", "1");
          auto& t_name = topo.add_str("name");
          auto& t_bus = topo.add_str("bus_id");
          auto& t_numa = topo.add_i64("numa_node", "1");
          auto& t_port = topo.add_str("root_port");
          auto& t_bridges = topo.add_i64("bridges_below_root_port", "count");
          auto& t_speed = topo.add_str("link_speed");
          auto& t_width = topo.add_i64("link_width", "count");
          auto& t_link = topo.add_f64("link_gbps", "GB/s");
          std::vector<ffb::gpu::PciPath> paths;
          for (std::size_t i = 0; i < devices.size(); ++i) {
            const auto& p = pci[i];
            const double link = gpu::pcie_link_gbps(p.link_speed, p.link_width);
            const std::string port =
                p.path.root_port().empty() ? std::string("(on the root bus)") : p.path.root_port();
            fmt::print(
                "#  {}: NUMA {}, root complex {}, root port {}, {} bridge(s) below it, link "
                "{} x{} ({:.1f} GB/s per direction; max {} x{})\n",
                names[i], p.numa_node, p.path.root_complex.empty() ? "?" : p.path.root_complex,
                port, p.path.bridges_below_root_port(),
                p.link_speed.empty() ? "?"
                                     : gpu::pcie_generation(p.link_speed) + " " + p.link_speed,
                p.link_width, link, p.max_link_speed.empty() ? "?" : p.max_link_speed,
                p.max_link_width);
            paths.push_back(p.path);
            t_dev.push_back(devices[i]);
            t_name.push_back(names[i]);
            t_bus.push_back(p.bus_id);
            t_numa.push_back(p.numa_node);
            t_port.push_back(p.path.root_port());
            t_bridges.push_back(p.path.bridges_below_root_port());
            t_speed.push_back(p.link_speed);
            t_width.push_back(p.link_width);
            t_link.push_back(link);
          }
          const auto groups = gpu::group_by_root_port(paths);
          for (const auto& [port, members] : groups)
            if (members.size() > 1) {
              std::vector<int> devs;
              for (int m : members) devs.push_back(devices[static_cast<std::size_t>(m)]);
              fmt::print("#  root port {} is shared by GPUs {}\n", port, join_ints(devs));
            }
          fmt::print(
              "# R6 (paper, A100 PCIe Gen4 x16 on EPYC): one GPU device-to-host > 27 GB/s; "
              "two GPUs on one root port ~37 GB/s together, less in both directions\n");
          fmt::print("# {} per copy, {} warm-up + {} timed copies per transfer; GB = 1e9 B\n",
                     ffb::format_size(bytes), warmup, iters);
          fmt::print("# {:<26} {:>9} {:>9} {:>5} {:>11} {:>22}\n", "scenario", "GPUs", "memory",
                     "dir", "total GB/s", "per transfer GB/s");

          ffb::Table table{.name = "pcie", .columns = {}};
          auto& c_scn = table.add_str("scenario");
          auto& c_gpus = table.add_str("gpus");
          auto& c_mem = table.add_str("memory");
          auto& c_dir = table.add_str("direction");
          auto& c_total = table.add_f64("bandwidth", "GB/s");
          auto& c_min = table.add_f64("bandwidth_min_transfer", "GB/s");
          auto& c_max = table.add_f64("bandwidth_max_transfer", "GB/s");
          Buffers buffers(bytes);
          auto measure = [&](const std::string& scenario, const std::vector<int>& devs, bool pinned,
                             Dir dir) {
            std::vector<Transfer> xs;
            for (int d : devs) {
              if (dir != Dir::d2h) xs.push_back({d, true, pinned});
              if (dir != Dir::h2d) xs.push_back({d, false, pinned});
            }
            const auto m = run_concurrent(xs, buffers, bytes, iters, warmup);
            const double lo = *std::min_element(m.per_transfer.begin(), m.per_transfer.end());
            const double hi = *std::max_element(m.per_transfer.begin(), m.per_transfer.end());
            std::string per;
            for (double v : m.per_transfer)
              per += fmt::format("{}{:.1f}", per.empty() ? "" : " ", v);
            fmt::print("  {:<26} {:>9} {:>9} {:>5} {:11.2f}   {}\n", scenario, join_ints(devs),
                       pinned ? "pinned" : "pageable", name_of(dir), m.total_gbps, per);
            std::fflush(stdout);
            c_scn.push_back(scenario);
            c_gpus.push_back(join_ints(devs));
            c_mem.emplace_back(pinned ? "pinned" : "pageable");
            c_dir.emplace_back(name_of(dir));
            c_total.push_back(m.total_gbps);
            c_min.push_back(lo);
            c_max.push_back(hi);
          };
          for (int d : devices)
            for (bool pinned : kinds)
              for (Dir dir : {Dir::h2d, Dir::d2h, Dir::bidir}) measure("alone", {d}, pinned, dir);
          if (!no_groups) {
            for (const auto& [port, members] : groups) {
              if (members.size() < 2 || members.size() == devices.size()) continue;
              std::vector<int> devs;
              for (int m : members) devs.push_back(devices[static_cast<std::size_t>(m)]);
              for (Dir dir : {Dir::d2h, Dir::h2d, Dir::bidir})
                measure("root port " + port, devs, true, dir);
            }
            if (devices.size() > 1)
              for (Dir dir : {Dir::d2h, Dir::h2d, Dir::bidir})
                measure(groups.size() == 1 ? "all GPUs (one root port)" : "all GPUs", devices, true,
                        dir);
          }
          run.tables.push_back(std::move(topo));
          run.tables.push_back(std::move(table));
          if (!output.empty())
            fmt::print("# results appended to {} as /runs/{}\n", output,
                       ffb::append_run(output, run));
          std::fflush(stdout);
        }
        MPI_Bcast(&failed, 1, MPI_INT, 0, ctx.comm);
        return failed == 0 ? ffb::kExitOk : ffb::kExitFailure;
      });
}
