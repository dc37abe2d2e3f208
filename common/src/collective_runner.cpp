// The sweep: for each type, op and size, time out-of-place then in-place, validate, print, record.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "collective_internal.h"
#include "ffb/error.h"
#include "ffb/hostinfo.h"
#include "ffb/provenance.h"
#include "ffb/sizes.h"
#include "ffb/stats.h"
#include "ffb/timer.h"
#include "ffb/validation.h"
#include "ffb/watchdog.h"

namespace ffb {

// ---- default (host memory) buffer handling for backends ----

void* CollectiveBackend::allocate(std::size_t bytes) {
  const std::size_t page = 4096;
  void* p = std::aligned_alloc(page, std::max(page, (bytes + page - 1) / page * page));
  if (p == nullptr) throw std::runtime_error(fmt::format("cannot allocate {}", format_size(bytes)));
  return p;
}
void CollectiveBackend::deallocate(void* p, std::size_t /*bytes*/) { std::free(p); }
void CollectiveBackend::upload(void* dst, const void* host_src, std::size_t bytes) {
  if (bytes > 0) std::memcpy(dst, host_src, bytes);
}
void CollectiveBackend::download(void* host_dst, const void* src, std::size_t bytes) {
  if (bytes > 0) std::memcpy(host_dst, src, bytes);
}

namespace {

const char* average_name(AverageMode m) {
  switch (m) {
    case AverageMode::rank0:
      return "rank0";
    case AverageMode::avg:
      return "avg";
    case AverageMode::min:
      return "min";
    case AverageMode::max:
      return "max";
  }
  return "?";
}

// Buffers allocated through the backend, freed on every path.
class DeviceBuffer {
 public:
  DeviceBuffer(CollectiveBackend& b, std::size_t bytes)
      : backend_(b), bytes_(bytes), ptr_(b.allocate(bytes)) {}
  ~DeviceBuffer() { backend_.deallocate(ptr_, bytes_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }

 private:
  CollectiveBackend& backend_;
  std::size_t bytes_;
  void* ptr_;
};

// What the watchdog names when it fires: updated with relaxed stores on the hot path.
struct Progress {
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<int> type{0}, op{0}, iteration{0}, placement{0}, phase{0};
  std::string describe(const std::string& collective) const {
    static constexpr std::array<const char*, 4> phases{"warm-up", "timed", "validation",
                                                       "accuracy"};
    return fmt::format("{} of {} B ({} {}), {} iteration {}, {}", collective, bytes.load(),
                       name_of(static_cast<DataType>(type.load())),
                       name_of(static_cast<ReduceOp>(op.load())), phases.at(phase.load()),
                       iteration.load(), placement.load() == 0 ? "out-of-place" : "in-place");
  }
};

struct PlacementResult {
  std::vector<double> t_max, t_min, t_avg, t_rank0;  // per iteration, us (valid on rank 0)
  Summary summary;
  double time_us = 0, algbw = 0, busbw = 0;
  std::int64_t wrong = -1;
  double accuracy = std::nan("");
  std::vector<Metric> metrics;  // mean over iterations, slowest rank
};

class Runner {
 public:
  Runner(MPI_Comm comm, const Topology& topo, const CollectiveOptions& opt,
         CollectiveBackend& backend)
      : comm_(comm), topo_(topo), opt_(opt), backend_(backend) {}

  // Returns true when every validation passed.
  bool run_sweep(const std::vector<std::uint64_t>& sizes, RunRecord& record);

 private:
  PlacementResult measure(std::size_t count, DataType t, ReduceOp op, bool in_place);
  std::int64_t validate(std::size_t count, DataType t, ReduceOp op, bool in_place);
  double accuracy(std::size_t count, DataType t, ReduceOp op, bool in_place);
  void timed_call(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op);
  void print_header_row() const;

  MPI_Comm comm_;
  const Topology& topo_;
  const CollectiveOptions& opt_;
  CollectiveBackend& backend_;
  Progress progress_;
  std::optional<Watchdog> watchdog_;
  std::unique_ptr<DeviceBuffer> send_, recv_;
  std::vector<unsigned char> host_;  // staging for inputs and downloaded results
  bool stall_pending_ = true;
  TickClock clock_;
};

void Runner::timed_call(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op) {
  watchdog_->arm();
  if (stall_pending_ && opt_.inject_stall_rank == topo_.rank && progress_.phase.load() == 1) {
    stall_pending_ = false;
    std::this_thread::sleep_for(std::chrono::duration<double>(opt_.inject_stall_s));
  }
  backend_.run(send, recv, count, t, op);
  watchdog_->disarm();
}

PlacementResult Runner::measure(std::size_t count, DataType t, ReduceOp op, bool in_place) {
  PlacementResult res;
  const std::size_t bytes = count * size_of(t);
  progress_.placement.store(in_place ? 1 : 0, std::memory_order_relaxed);
  void* recv = recv_->get();
  const void* send = in_place ? recv : send_->get();
  fill_pattern(host_.data(), t, op, topo_.size, topo_.rank, count);
  backend_.upload(in_place ? recv : send_->get(), host_.data(), bytes);

  progress_.phase.store(0, std::memory_order_relaxed);
  for (int i = 0; i < opt_.warmup_iters; ++i) {
    progress_.iteration.store(i, std::memory_order_relaxed);
    timed_call(send, recv, count, t, op);
  }
  MPI_Barrier(comm_);

  progress_.phase.store(1, std::memory_order_relaxed);
  const auto n = static_cast<std::size_t>(opt_.iters);
  std::vector<double> local(n);
  std::map<std::string, std::pair<std::string, double>> metric_sums;
  for (std::size_t i = 0; i < n; ++i) {
    progress_.iteration.store(static_cast<int>(i), std::memory_order_relaxed);
    if (opt_.blocking) MPI_Barrier(comm_);
    const auto t0 = clock_.now();
    timed_call(send, recv, count, t, op);
    const auto t1 = clock_.now();
    local[i] = clock_.to_us(t1 - t0);
    for (const auto& m : backend_.last_metrics()) {
      auto& slot = metric_sums[m.name];
      slot.first = m.units;
      slot.second += m.value;
    }
  }

  // Per-iteration combination over ranks: the iteration ends when its slowest rank does.
  const bool root = topo_.rank == 0;
  res.t_max.resize(n);
  res.t_min.resize(n);
  res.t_avg.resize(n);
  MPI_Reduce(local.data(), res.t_max.data(), static_cast<int>(n), MPI_DOUBLE, MPI_MAX, 0, comm_);
  MPI_Reduce(local.data(), res.t_min.data(), static_cast<int>(n), MPI_DOUBLE, MPI_MIN, 0, comm_);
  MPI_Reduce(local.data(), res.t_avg.data(), static_cast<int>(n), MPI_DOUBLE, MPI_SUM, 0, comm_);
  for (auto& v : res.t_avg) v /= topo_.size;
  res.t_rank0 = local;
  for (auto& [name, slot] : metric_sums) {
    const double mean = slot.second / static_cast<double>(n);
    double worst = 0;
    MPI_Reduce(&mean, &worst, 1, MPI_DOUBLE, MPI_MAX, 0, comm_);
    res.metrics.push_back({name, slot.first, worst});
  }
  if (root) {
    res.summary = summarize(res.t_max);
    const std::vector<double>* shown = &res.t_max;
    if (opt_.average == AverageMode::rank0) shown = &res.t_rank0;
    if (opt_.average == AverageMode::avg) shown = &res.t_avg;
    if (opt_.average == AverageMode::min) shown = &res.t_min;
    res.time_us = summarize(*shown).mean;
    res.algbw = res.time_us > 0 ? static_cast<double>(bytes) / (res.time_us * 1e3) : 0.0;
    res.busbw = res.algbw * backend_.busbw_factor(topo_.size);
  }
  if (opt_.check) res.wrong = validate(count, t, op, in_place);
  if (opt_.accuracy) res.accuracy = accuracy(count, t, op, in_place);
  return res;
}

std::int64_t Runner::validate(std::size_t count, DataType t, ReduceOp op, bool in_place) {
  const std::size_t bytes = count * size_of(t);
  progress_.phase.store(2, std::memory_order_relaxed);
  progress_.iteration.store(0, std::memory_order_relaxed);
  void* recv = recv_->get();
  void* send = in_place ? recv : send_->get();
  fill_pattern(host_.data(), t, op, topo_.size, topo_.rank, count);
  backend_.upload(send, host_.data(), bytes);
  if (!in_place) {  // poison the output so a backend that writes nothing cannot pass
    std::fill_n(host_.data(), bytes, static_cast<unsigned char>(0xA5));
    backend_.upload(recv, host_.data(), bytes);
  }
  timed_call(send, recv, count, t, op);
  backend_.download(host_.data(), recv, bytes);
  if (opt_.inject_corrupt_rank == topo_.rank && count > 0) {
    // Test-only: flip every bit of one element, as a broken backend might.
    for (std::size_t b = 0; b < size_of(t); ++b) host_[count / 2 * size_of(t) + b] ^= 0xFF;
  }
  const ExpectedResult expected(t, op, topo_.size);
  const auto local = static_cast<std::int64_t>(expected.count_wrong(host_.data(), count));
  std::int64_t total = 0;
  MPI_Allreduce(&local, &total, 1, MPI_INT64_T, MPI_SUM, comm_);
  return total;
}

double Runner::accuracy(std::size_t count, DataType t, ReduceOp op, bool in_place) {
  if (!is_floating(t) || (op != ReduceOp::sum && op != ReduceOp::avg)) return std::nan("");
  const std::size_t es = size_of(t);
  const std::size_t bytes = count * es;
  progress_.phase.store(3, std::memory_order_relaxed);
  // Random normal inputs, seeded by rank and size so reruns see the same data.
  std::mt19937_64 rng(0x5eedULL + static_cast<std::uint64_t>(topo_.rank) * 1000003ULL + count);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<unsigned char> input(bytes);
  for (std::size_t j = 0; j < count; ++j) store_from_double(input.data(), t, j, normal(rng));
  void* recv = recv_->get();
  void* send = in_place ? recv : send_->get();
  backend_.upload(send, input.data(), bytes);
  timed_call(send, recv, count, t, op);
  backend_.download(host_.data(), recv, bytes);

  // Reference in float64, chunked to bound memory: sum of x and of |x| over ranks.
  const double n = topo_.size;
  const double u = unit_roundoff(t);
  double worst = 0.0;
  constexpr std::size_t kChunk = 1 << 18;
  std::vector<double> x(2 * kChunk), ref(2 * kChunk);
  for (std::size_t base = 0; base < count; base += kChunk) {
    const std::size_t m = std::min(kChunk, count - base);
    for (std::size_t j = 0; j < m; ++j) {
      x[j] = load_as_double(input.data(), t, base + j);
      x[m + j] = std::fabs(x[j]);
    }
    MPI_Allreduce(x.data(), ref.data(), static_cast<int>(2 * m), MPI_DOUBLE, MPI_SUM, comm_);
    for (std::size_t j = 0; j < m; ++j) {
      const double scale = op == ReduceOp::avg ? 1.0 / n : 1.0;
      const double exact = ref[j] * scale;
      const double bound = n * u * ref[m + j] * scale;
      const double err = std::fabs(load_as_double(host_.data(), t, base + j) - exact);
      if (err > 0) worst = std::max(worst, bound > 0 ? err / bound : INFINITY);
    }
  }
  double global = 0.0;
  MPI_Allreduce(&worst, &global, 1, MPI_DOUBLE, MPI_MAX, comm_);
  return global;
}

std::string fmt_time(double us) {
  return us < 1e4 ? fmt::format("{:7.2f}", us) : fmt::format("{:7.1f}", us);
}

bool Runner::run_sweep(const std::vector<std::uint64_t>& sizes, RunRecord& record) {
  const bool root = topo_.rank == 0;
  std::uint64_t max_elem_bytes = 0;
  for (auto t : opt_.types) max_elem_bytes = std::max<std::uint64_t>(max_elem_bytes, size_of(t));
  const std::uint64_t max_bytes = sizes.empty() ? 0 : sizes.back();

  // Memory: send + recv + host staging per rank, for every rank of this node. Agreed by all ranks
  // so that nobody proceeds into a collective alone.
  const std::uint64_t per_rank = 3 * max_bytes + (opt_.accuracy ? 2 * max_bytes : 0);
  const std::uint64_t need =
      per_rank * static_cast<std::uint64_t>(topo_.ranks_per_node[topo_.node_of_rank[topo_.rank]]);
  const std::uint64_t avail = mem_available_bytes();
  int too_big = avail > 0 && need > avail / 10 * 9 ? 1 : 0;
  int any_too_big = 0;
  MPI_Allreduce(&too_big, &any_too_big, 1, MPI_INT, MPI_MAX, comm_);
  if (any_too_big)
    throw UsageError(fmt::format(
        "-e/--maxbytes {}: the buffers need about {} per node but only {} is available; lower -e "
        "or run fewer ranks per node",
        format_size(max_bytes), format_size(need), format_size(avail)));

  send_ = std::make_unique<DeviceBuffer>(backend_, std::max<std::uint64_t>(max_bytes, 64));
  recv_ = std::make_unique<DeviceBuffer>(backend_, std::max<std::uint64_t>(max_bytes, 64));
  host_.assign(std::max<std::uint64_t>(max_bytes, 64), 0);
  watchdog_.emplace(comm_, opt_.timeout_s,
                    [this] { return progress_.describe(backend_.collective()); });

  record.attrs["timer"] = clock_.description();
  Table table{.name = "collective", .columns = {}};
  auto& c_size = table.add_i64("size", "B");
  auto& c_count = table.add_i64("count", "count");
  auto& c_type = table.add_str("type");
  auto& c_op = table.add_str("redop");
  auto& c_place = table.add_str("placement");
  auto& c_time = table.add_f64("time", "us");
  auto& c_mean = table.add_f64("time_mean", "us");
  auto& c_min = table.add_f64("time_min", "us");
  auto& c_p50 = table.add_f64("time_p50", "us");
  auto& c_p99 = table.add_f64("time_p99", "us");
  auto& c_max = table.add_f64("time_max", "us");
  auto& c_alg = table.add_f64("algbw", "GB/s");
  auto& c_bus = table.add_f64("busbw", "GB/s");
  auto& c_wrong = table.add_i64("wrong", "count");
  auto& c_acc = table.add_f64("accuracy", "1");
  const auto iters = static_cast<std::size_t>(opt_.iters);
  auto& c_it_max = table.add_f64("iter_time_max", "us", iters);
  auto& c_it_min = table.add_f64("iter_time_min", "us", iters);
  auto& c_it_avg = table.add_f64("iter_time_avg", "us", iters);
  auto& c_it_r0 = table.add_f64("iter_time_rank0", "us", iters);
  std::map<std::string, std::pair<std::string, std::vector<double>>> metric_cols;

  bool rounded = false;
  for (auto s : sizes)
    for (auto t : opt_.types) rounded = rounded || s % size_of(t) != 0;
  if (root && rounded)
    fmt::print(
        "# note: sizes that are not a multiple of the element size are rounded down to "
        "whole elements\n");

  const bool show_metrics = backend_.print_metrics();
  if (root) {
    std::string extra_head;
    if (show_metrics) extra_head = "  (per-call extras follow each placement)";
    fmt::print("#\n#{:>74}{:>32}{}\n", "out-of-place", "in-place", extra_head);
    fmt::print(
        "#{:>11}  {:>12}  {:>8}  {:>6}  {:>6}  {:>7}  {:>6}  {:>6}  {:>6}  {:>7}  {:>6}  "
        "{:>6}  {:>6}\n",
        "size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time",
        "algbw", "busbw", "#wrong");
    fmt::print(
        "#{:>11}  {:>12}  {:>8}  {:>6}  {:>6}  {:>7}  {:>6}  {:>6}  {:>6}  {:>7}  {:>6}  "
        "{:>6}  {:>6}\n",
        "(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)",
        "");
    std::fflush(stdout);
  }

  bool all_ok = true;
  std::int64_t total_wrong = 0;
  double busbw_sum = 0;
  int busbw_points = 0;
  for (auto t : opt_.types) {
    for (auto op : opt_.ops) {
      if (!backend_.supports(t, op)) {
        if (root)
          fmt::print("# skipped {} {}: not supported by the {} backend\n", name_of(t), name_of(op),
                     backend_.name());
        continue;
      }
      progress_.type.store(static_cast<int>(t));
      progress_.op.store(static_cast<int>(op));
      std::optional<std::size_t> last_count;
      for (auto s : sizes) {
        const std::size_t count = s / size_of(t);
        if (last_count && *last_count == count) continue;  // rounding made a duplicate
        last_count = count;
        const std::size_t bytes = count * size_of(t);
        progress_.bytes.store(bytes);
        std::array<PlacementResult, 2> res{measure(count, t, op, false),
                                           measure(count, t, op, true)};
        if (!root) continue;
        std::string line = fmt::format("{:>12}  {:>12}  {:>8}  {:>6}  {:>6}", bytes, count,
                                       name_of(t), name_of(op), -1);
        const double ceiling = backend_.algbw_ceiling(bytes);
        for (int p = 0; p < 2; ++p) {
          auto& r = res[p];
          if (ceiling > 0) r.metrics.push_back({"ceiling_fraction", "1", r.algbw / ceiling});
          const std::string wrong = opt_.check ? std::to_string(r.wrong) : std::string("N/A");
          line += fmt::format("  {}  {:6.2f}  {:6.2f}  {:>6}", fmt_time(r.time_us), r.algbw,
                              r.busbw, wrong);
          if (show_metrics) {
            for (const auto& m : r.metrics) {
              if (m.name == "fallback") {
                if (m.value > 0) line += "  (MPI fallback)";
              } else if (m.name == "ceiling_fraction") {
                line += fmt::format("  {:3.0f}% of ceiling", 100.0 * m.value);
              } else {
                line += fmt::format("  {}={:.1f}", m.name, m.value);
              }
            }
          }
          if (opt_.accuracy && !std::isnan(r.accuracy))
            line += fmt::format("  acc={:.3f}", r.accuracy);
          if (r.wrong > 0 || (!std::isnan(r.accuracy) && r.accuracy > 1.0)) all_ok = false;
          total_wrong += std::max<std::int64_t>(r.wrong, 0);
          if (bytes >= (1u << 20)) {
            busbw_sum += r.busbw;
            ++busbw_points;
          }
          c_size.push_back(static_cast<std::int64_t>(bytes));
          c_count.push_back(static_cast<std::int64_t>(count));
          c_type.emplace_back(name_of(t));
          c_op.emplace_back(name_of(op));
          c_place.emplace_back(p == 0 ? "out-of-place" : "in-place");
          c_time.push_back(r.time_us);
          c_mean.push_back(r.summary.mean);
          c_min.push_back(r.summary.min);
          c_p50.push_back(r.summary.p50);
          c_p99.push_back(r.summary.p99);
          c_max.push_back(r.summary.max);
          c_alg.push_back(r.algbw);
          c_bus.push_back(r.busbw);
          c_wrong.push_back(r.wrong);
          c_acc.push_back(r.accuracy);
          c_it_max.insert(c_it_max.end(), r.t_max.begin(), r.t_max.end());
          c_it_min.insert(c_it_min.end(), r.t_min.begin(), r.t_min.end());
          c_it_avg.insert(c_it_avg.end(), r.t_avg.begin(), r.t_avg.end());
          c_it_r0.insert(c_it_r0.end(), r.t_rank0.begin(), r.t_rank0.end());
          const std::size_t row = c_size.size() - 1;
          for (const auto& m : r.metrics) {
            auto& col = metric_cols[m.name];
            col.first = m.units;
            col.second.resize(row, std::nan(""));
            col.second.push_back(m.value);
          }
        }
        fmt::print("{}\n", line);
        std::fflush(stdout);
      }
    }
  }
  // Every rank learns the verdict (validation counts are already global; accuracy too).
  int ok_local = all_ok ? 1 : 0;
  MPI_Bcast(&ok_local, 1, MPI_INT, 0, comm_);
  all_ok = ok_local == 1;
  watchdog_.reset();

  if (root) {
    for (auto& [name, col] : metric_cols) {
      col.second.resize(c_size.size(), std::nan(""));
      table.add_f64(name, col.first) = col.second;
    }
    fmt::print("# Out of bounds values : {} {}\n", opt_.check ? std::to_string(total_wrong) : "N/A",
               all_ok ? "OK" : "FAILED");
    if (busbw_points > 0)
      fmt::print(
          "# Avg bus bandwidth    : {:.4g} GB/s (mean over {} rows of size >= 1 MiB, both "
          "placements)\n",
          busbw_sum / busbw_points, busbw_points);
    else
      fmt::print("# Avg bus bandwidth    : n/a (no size >= 1 MiB in this sweep)\n");
    fmt::print("#\n");
    std::fflush(stdout);
  }
  record.tables.push_back(std::move(table));
  return all_ok;
}

void print_header(const std::string& program, const CollectiveBackend& backend,
                  const CollectiveOptions& opt, const Topology& topo,
                  const std::vector<std::string>& devices) {
  fmt::print("# ffbench {} {} (git {}): {} {}, busbw factor {:.4g}\n", program, FFB_VERSION,
             FFB_GIT_COMMIT, backend.name(), backend.collective(), backend.busbw_factor(topo.size));
  fmt::print(
      "# minBytes {} maxBytes {} step: {} warmup iters: {} iters: {} validation: {} "
      "time: {} over ranks{} timeout: {} s\n",
      opt.min_bytes, opt.max_bytes,
      opt.step_factor > 1 ? fmt::format("{}(factor)", opt.step_factor)
                          : fmt::format("{}(bytes)", opt.step_bytes),
      opt.warmup_iters, opt.iters, opt.check ? 1 : 0, average_name(opt.average),
      opt.blocking ? ", barrier before each iteration" : "", opt.timeout_s);
  fmt::print("#\n# Using devices\n");
  for (int r = 0; r < topo.size; ++r)
    fmt::print("#  Rank {:2} Group  0 Pid {:6} on {:>10} node {:2} device {}\n", r,
               devices[2 * r + 1], topo.hosts[r], topo.node_of_rank[r], devices[2 * r]);
  fmt::print("# {} ranks on {} node{} ({} ranks per node); {}\n", topo.size, topo.nnodes(),
             topo.nnodes() == 1 ? "" : "s", topo.ranks_per_node_text(), mpi_library_version());
  std::fflush(stdout);
}

}  // namespace

int collective_main(int argc, char** argv, const std::string& program,
                    std::unique_ptr<CollectiveBackend> backend) {
  std::optional<MpiSession> mpi;
  try {
    mpi.emplace(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return kExitFailure;
  }
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  const bool root = world_rank == 0;
  MPI_Comm comm = MPI_COMM_NULL;
  int rc = kExitOk;
  try {
    auto parsed = parse_command_line(argc, argv, program, *backend);
    if (!parsed.help_text.empty()) {
      if (root) std::fputs(parsed.help_text.c_str(), stdout);
      return kExitOk;
    }
    check_launcher(MPI_COMM_WORLD);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    const Topology topo = discover_topology(comm);
    const auto& opt = parsed.options;
    if (opt.inject_corrupt_rank >= topo.size || opt.inject_stall_rank >= topo.size)
      throw UsageError("--inject-*-rank: rank out of range");
    check_output(opt.output, comm);
    backend->setup(BackendContext{comm, &topo, &opt});

    std::vector<std::string> argv_vec(argv, argv + argc);
    RunRecord record;
    record.attrs["label"] = opt.label;
    record.attrs["collective"] = backend->collective();
    record.attrs["backend"] = backend->name();
    record.attrs["busbw_factor"] = backend->busbw_factor(topo.size);
    record.attrs["average_mode"] = std::string(average_name(opt.average));
    record.attrs["blocking"] = static_cast<std::int64_t>(opt.blocking);
    nlohmann::json options = opt.to_json();
    record.attrs["options"] = options.dump();
    add_provenance(record, comm, topo, program, "collective", argv_vec,
                   backend->device_description());
    backend->describe(record);

    // Header lines need device and pid per rank: gathered with the provenance.
    std::vector<std::string> dev_pid;
    for (const auto& t : record.tables)
      if (t.name == "ranks") {
        const auto& dev = std::get<std::vector<std::string>>(t.columns[4].data);
        const auto& pid = std::get<std::vector<std::int64_t>>(t.columns[2].data);
        for (int r = 0; r < topo.size; ++r) {
          dev_pid.push_back(dev[r]);
          dev_pid.push_back(std::to_string(pid[r]));
        }
      }
    if (root) print_header(program, *backend, opt, topo, dev_pid);

    Runner runner(comm, topo, opt, *backend);
    const bool ok = runner.run_sweep(parsed.sizes, record);
    if (!ok) {
      record.attrs["status"] = std::string("failed");
      rc = kExitFailure;
    }
    if (root && !opt.output.empty()) {
      const auto id = append_run(opt.output, record);
      fmt::print("# results appended to {} as /runs/{}\n", opt.output, id);
    }
  } catch (const UsageError& e) {
    if (root) std::fprintf(stderr, "%s: error: %s\n", program.c_str(), e.what());
    rc = kExitUsage;
  } catch (const SkipError& e) {
    if (root) std::fprintf(stderr, "%s: skipped: %s\n", program.c_str(), e.what());
    rc = kExitSkipped;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: rank %d: error: %s\n", program.c_str(), world_rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, kExitFailure);
  }
  backend->teardown();  // idempotent; frees MPI/CUDA objects while MPI is still up
  backend.reset();
  if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  return rc;
}

}  // namespace ffb
