// The sweep, in four steps: plan (the type/op pairs and element counts), measure (time
// out-of-place then in-place, validate), record (rank 0 keeps every row, SweepRow) and print.
// What a row's columns are, printed and stored, is declared once in collective_rows.cpp; the HDF5
// table and the -J JSON are built from the kept rows. The program runs in the one frame
// (ffb/program.h) through collective_main.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "collective_internal.h"
#include "collective_json.h"
#include "collective_rows.h"
#include "ffb/error.h"
#include "ffb/hostinfo.h"
#include "ffb/program.h"
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

struct SweepOutcome {
  bool ok = true;
  std::int64_t total_wrong = 0;
  BusbwAverages averages;
};

// The sweep as planned before anything is measured: for each type and op (in -d, -o order)
// either the element counts to measure or a skip (the backend refuses the pair here).
struct PlannedRow {
  DataType type;
  ReduceOp op;
  std::size_t count;
};
struct PlannedPair {
  DataType type;
  ReduceOp op;
  bool supported;
  std::vector<PlannedRow> rows;
};
struct SweepPlan {
  std::vector<PlannedPair> pairs;
  std::uint64_t max_bytes = 0;
  bool rounded = false;  // some size is no multiple of some element size
};

SweepPlan plan_sweep(const std::vector<std::uint64_t>& sizes, const CollectiveOptions& opt,
                     const CollectiveBackend& backend) {
  SweepPlan plan;
  plan.max_bytes = sizes.empty() ? 0 : sizes.back();
  for (auto s : sizes)
    for (auto t : opt.types) plan.rounded = plan.rounded || s % size_of(t) != 0;
  for (auto t : opt.types)
    for (auto op : opt.ops) {
      PlannedPair pair{.type = t, .op = op, .supported = backend.supports(t, op), .rows = {}};
      if (pair.supported)
        for (auto s : sizes) {
          const std::size_t count = s / size_of(t);
          // Rounding to whole elements can make two sizes one.
          if (pair.rows.empty() || pair.rows.back().count != count)
            pair.rows.push_back({t, op, count});
        }
      plan.pairs.push_back(std::move(pair));
    }
  return plan;
}

// The call a timed loop repeats.
struct TimedCall {
  const void* send;
  void* recv;
  std::size_t count;
  DataType type;
  ReduceOp op;
};

// One placement's timed iterations on this rank.
struct TimedLoop {
  // Per iteration (us), and one more element: this rank's mean iteration time, so that one
  // reduction over ranks combines both (Runner::combine_over_ranks).
  std::vector<double> times;
  MetricSums metrics;
};

class Runner {
 public:
  Runner(MPI_Comm comm, const Topology& topo, const CollectiveOptions& opt,
         CollectiveBackend& backend)
      : comm_(comm),
        topo_(topo),
        opt_(opt),
        backend_(backend),
        stall_pending_(opt.inject_stall_rank == topo.rank) {}

  // Measures, prints and keeps every row (rank 0), adds the collective table to the record.
  SweepOutcome run_sweep(const std::vector<std::uint64_t>& sizes, RunRecord& record);

  // Buffers for messages up to max_bytes and the watchdog; then measure() one placement of the
  // point set by set_point() (PlacementMeasurer uses these two directly).
  void prepare(std::uint64_t max_bytes);
  void set_point(std::size_t bytes, DataType t, ReduceOp op);
  PlacementResult measure(std::size_t count, DataType t, ReduceOp op, bool in_place);

 private:
  void print_start(const SweepPlan& plan) const;
  SweepRow measure_row(const PlannedRow& planned);
  void record_row(SweepRow row, SweepOutcome& outcome);
  void print_row(const SweepRow& row) const;
  TimedLoop timed_loop(const TimedCall& call, std::size_t stride);
  std::size_t sample_stride(double warmup_us) const;
  void plain_iterations(const TimedCall& call, std::vector<std::uint64_t>& ticks,
                        std::size_t stride);
  void general_iterations(const TimedCall& call, std::vector<std::uint64_t>& ticks,
                          MetricSums& sums);
  void combine_over_ranks(TimedLoop& loop, PlacementResult& res) const;
  // The timed loop without -z 1, metrics or a stall to inject (plain_iterations).
  bool plain_loop() const { return !opt_.blocking && !backend_.has_metrics() && !stall_pending_; }
  std::int64_t validate(std::size_t count, DataType t, ReduceOp op, bool in_place);
  double accuracy(std::size_t count, DataType t, ReduceOp op, bool in_place);
  void timed_call(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op);
  void stall_if_timed();

  MPI_Comm comm_;
  const Topology& topo_;
  const CollectiveOptions& opt_;
  CollectiveBackend& backend_;
  Progress progress_;
  std::optional<Watchdog> watchdog_;
  std::unique_ptr<DeviceBuffer> send_, recv_;
  std::vector<unsigned char> host_;  // staging for inputs and downloaded results
  std::vector<SweepRow> rows_;       // rank 0: every printed row, in order
  bool stall_pending_;               // test-only: this rank stalls in its first timed call
  TickClock clock_;
};

// Two relaxed stores around the backend's call (and a test-only stall), inlined into the timed
// loop: a call less per iteration.
[[gnu::always_inline]] inline void Runner::timed_call(const void* send, void* recv,
                                                      std::size_t count, DataType t, ReduceOp op) {
  watchdog_->arm();
  if (stall_pending_) [[unlikely]]
    stall_if_timed();
  backend_.run(send, recv, count, t, op);
  watchdog_->disarm();
}

// Test-only (--inject-stall-rank): this rank stalls once, in its first timed call.
void Runner::stall_if_timed() {
  if (progress_.phase.load(std::memory_order_relaxed) != 1) return;
  stall_pending_ = false;
  std::this_thread::sleep_for(std::chrono::duration<double>(opt_.inject_stall_s));
}

void Runner::set_point(std::size_t bytes, DataType t, ReduceOp op) {
  progress_.bytes.store(bytes);
  progress_.type.store(static_cast<int>(t));
  progress_.op.store(static_cast<int>(op));
}

// One clock read per iteration (or per `stride` iterations, see sample_stride): the end of
// iteration i is the start of i + 1, so the iteration times add up to the loop's time. The ranks
// start together: a barrier, then the first read.
TimedLoop Runner::timed_loop(const TimedCall& call, std::size_t stride) {
  const auto n = static_cast<std::size_t>(opt_.iters);
  TimedLoop loop;
  std::vector<std::uint64_t> ticks(n + 1);
  MPI_Barrier(comm_);
  if (plain_loop())
    plain_iterations(call, ticks, stride);
  else
    general_iterations(call, ticks, loop.metrics);
  loop.times.resize(n + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    loop.times[i] = clock_.to_us(ticks[i]);
    total += ticks[i];
  }
  loop.times[n] = n > 0 ? clock_.to_us(total) / static_cast<double>(n) : 0.0;
  return loop;
}

// A clock read costs 11 ns on the 2-core EPYC VM: 2.4% of a 0.45 us allreduce. Iterations
// shorter than kMinSampleUs are therefore timed `stride` at a time, so that a read is at most
// about 0.2% of what it times, while every placement keeps at least kMinSamples samples. Chosen
// from the slowest rank's warm-up (the same stride on every rank, so iteration i is the same
// on all of them); 1 without warm-up, and in the general loop.
constexpr double kMinSampleUs = 5.0;
constexpr std::size_t kMinSamples = 50;

std::size_t Runner::sample_stride(double warmup_us) const {
  // The slowest warm-up, and whether any rank runs the general loop (a stall to inject).
  const std::array<double, 2> mine{warmup_us, plain_loop() ? 0.0 : 1.0};
  std::array<double, 2> all{};
  MPI_Allreduce(mine.data(), all.data(), 2, MPI_DOUBLE, MPI_MAX, comm_);
  const auto n = static_cast<std::size_t>(opt_.iters);
  if (all[1] > 0 || opt_.warmup_iters <= 0 || !(all[0] > 0) || n < 2 * kMinSamples) return 1;
  const double per_iteration = all[0] / opt_.warmup_iters;
  const auto wanted = static_cast<std::size_t>(std::ceil(kMinSampleUs / per_iteration));
  return std::clamp<std::size_t>(wanted, 1, n / kMinSamples);
}

// The common case (no -z 1, no metrics, no stall to inject): between two calls only the
// watchdog's stores, the iteration it names and, every `stride` calls, the clock. Time stamps,
// made differences afterwards: each of a sample's iterations gets the sample's mean.
void Runner::plain_iterations(const TimedCall& call, std::vector<std::uint64_t>& ticks,
                              std::size_t stride) {
  const std::size_t n = ticks.size() - 1;
  Watchdog& watchdog = *watchdog_;
  std::vector<std::uint64_t> stamps;
  stamps.reserve(n / stride + 2);
  stamps.push_back(clock_.now());
  for (std::size_t i = 0; i < n;) {
    const std::size_t end = std::min(n, i + stride);
    for (; i < end; ++i) {
      progress_.iteration.store(static_cast<int>(i), std::memory_order_relaxed);
      watchdog.arm();
      backend_.run(call.send, call.recv, call.count, call.type, call.op);
      watchdog.disarm();
    }
    stamps.push_back(clock_.now());
  }
  // Sample s covers iterations [s * stride, min(n, (s + 1) * stride)); its ticks are shared out
  // so that the iterations still add up to the sample exactly.
  for (std::size_t s = 0; s + 1 < stamps.size(); ++s) {
    const std::size_t first = s * stride, count = std::min(n, first + stride) - first;
    const std::uint64_t total = stamps[s + 1] - stamps[s];
    for (std::size_t j = 0; j < count; ++j)
      ticks[first + j] = total / count + (j < total % count ? 1 : 0);
  }
}

// Everything else: the clock is read again after what must not be timed, the -z 1 barrier and
// the backend's metrics. ticks[i] is iteration i's time.
void Runner::general_iterations(const TimedCall& call, std::vector<std::uint64_t>& ticks,
                                MetricSums& sums) {
  const std::size_t n = ticks.size() - 1;
  const bool ask_metrics = backend_.has_metrics();
  std::uint64_t start = clock_.now();
  for (std::size_t i = 0; i < n; ++i) {
    progress_.iteration.store(static_cast<int>(i), std::memory_order_relaxed);
    if (opt_.blocking) {
      MPI_Barrier(comm_);
      start = clock_.now();
    }
    timed_call(call.send, call.recv, call.count, call.type, call.op);
    const std::uint64_t end = clock_.now();
    ticks[i] = end - start;
    start = end;
    if (!ask_metrics) continue;
    const std::vector<Metric> metrics = backend_.last_metrics();
    if (metrics.empty()) continue;
    sums.add(metrics);
    start = clock_.now();
  }
}

// Per iteration over ranks (the iteration ends when its slowest rank does: iter_time_max and
// its statistics), and each rank's mean combined as -a says: the `time` column.
void Runner::combine_over_ranks(TimedLoop& loop, PlacementResult& res) const {
  const std::size_t n = loop.times.size() - 1;
  const int len = static_cast<int>(n + 1);
  res.t_max.resize(n + 1);
  res.t_min.resize(n + 1);
  res.t_avg.resize(n + 1);
  MPI_Reduce(loop.times.data(), res.t_max.data(), len, MPI_DOUBLE, MPI_MAX, 0, comm_);
  MPI_Reduce(loop.times.data(), res.t_min.data(), len, MPI_DOUBLE, MPI_MIN, 0, comm_);
  MPI_Reduce(loop.times.data(), res.t_avg.data(), len, MPI_DOUBLE, MPI_SUM, 0, comm_);
  for (auto& v : res.t_avg) v /= topo_.size;
  switch (opt_.average) {
    case AverageMode::rank0:
      res.time_us = loop.times[n];
      break;
    case AverageMode::avg:
      res.time_us = res.t_avg[n];
      break;
    case AverageMode::min:
      res.time_us = res.t_min[n];
      break;
    case AverageMode::max:
      res.time_us = res.t_max[n];
      break;
  }
  for (auto* v : {&res.t_max, &res.t_min, &res.t_avg, &loop.times}) v->pop_back();
  res.t_rank0 = std::move(loop.times);
  const auto encoded = allgather_strings(comm_, loop.metrics.encode(n));
  if (topo_.rank == 0) res.metrics = combine_rank_metrics(encoded);
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
  const std::uint64_t warm_start = clock_.now();
  for (int i = 0; i < opt_.warmup_iters; ++i) {
    progress_.iteration.store(i, std::memory_order_relaxed);
    timed_call(send, recv, count, t, op);
  }
  const std::size_t stride = sample_stride(clock_.to_us(clock_.now() - warm_start));

  progress_.phase.store(1, std::memory_order_relaxed);
  TimedLoop loop = timed_loop(TimedCall{send, recv, count, t, op}, stride);
  combine_over_ranks(loop, res);
  res.iters_per_sample = static_cast<std::int64_t>(stride);
  if (topo_.rank == 0) {
    res.summary = summarize(res.t_max);
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

// ---- the footer ----

// nccl-tests' two footer lines in its meaning (the average over every printed row, both
// placements), then ours over the sizes >= 1 MiB on a line of its own.
void print_footer(const SweepOutcome& o, bool check) {
  fmt::print("# {:<20} : {} {}\n", "Out of bounds values",
             check ? std::to_string(o.total_wrong) : std::string("N/A"), o.ok ? "OK" : "FAILED");
  fmt::print("# {:<20} : {:g}\n", "Avg bus bandwidth", o.averages.all);
  if (o.averages.large_values > 0)
    fmt::print(
        "# {:<20} : {:g} GB/s (mean of {} results: rows of size >= 1 MiB, both placements)\n",
        "Mean busbw >= 1 MiB", o.averages.large, o.averages.large_values);
  else
    fmt::print("# {:<20} : n/a (no size >= 1 MiB in this sweep)\n", "Mean busbw >= 1 MiB");
  fmt::print("#\n");
}

// ---- the sweep ----

void Runner::prepare(std::uint64_t max_bytes) {
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
}

SweepRow Runner::measure_row(const PlannedRow& planned) {
  const auto [t, op, count] = planned;
  SweepRow row{.bytes = count * size_of(t), .count = count, .type = t, .op = op, .place = {}};
  set_point(row.bytes, t, op);
  row.place[0] = measure(count, t, op, false);
  row.place[1] = measure(count, t, op, true);
  return row;
}

// Rank 0 keeps the row, with its ceiling fraction, and counts it into the verdict.
void Runner::record_row(SweepRow row, SweepOutcome& outcome) {
  const double ceiling = backend_.algbw_ceiling(row.bytes);
  for (auto& r : row.place) {
    if (ceiling > 0) r.metrics.push_back({"ceiling_fraction", "1", r.algbw / ceiling});
    if (r.wrong > 0 || (!std::isnan(r.accuracy) && r.accuracy > 1.0)) outcome.ok = false;
    outcome.total_wrong += std::max<std::int64_t>(r.wrong, 0);
  }
  rows_.push_back(std::move(row));
}

void Runner::print_row(const SweepRow& row) const {
  fmt::print("{}{}\n", row_text(row, opt_.check),
             row_extras(row, backend_.print_metrics(), opt_.accuracy));
  std::fflush(stdout);
}

void Runner::print_start(const SweepPlan& plan) const {
  if (plan.rounded)
    fmt::print(
        "# note: sizes that are not a multiple of the element size are rounded down to "
        "whole elements\n");
  print_table_header(backend_.print_metrics() || opt_.accuracy);
  std::fflush(stdout);
}

SweepOutcome Runner::run_sweep(const std::vector<std::uint64_t>& sizes, RunRecord& record) {
  const bool root = topo_.rank == 0;
  const SweepPlan plan = plan_sweep(sizes, opt_, backend_);
  prepare(plan.max_bytes);
  record.attrs["timer"] = clock_.description();
  if (root) print_start(plan);

  SweepOutcome outcome;
  for (const auto& pair : plan.pairs) {
    if (!pair.supported) {
      if (root)
        fmt::print("# skipped {} {}: not supported by the {} backend\n", name_of(pair.type),
                   name_of(pair.op), backend_.name());
      continue;
    }
    for (const auto& planned : pair.rows) {
      SweepRow row = measure_row(planned);
      if (!root) continue;
      record_row(std::move(row), outcome);
      print_row(rows_.back());
    }
  }
  // Every rank learns the verdict (validation counts are already global; accuracy too).
  int ok_local = outcome.ok ? 1 : 0;
  MPI_Bcast(&ok_local, 1, MPI_INT, 0, comm_);
  outcome.ok = ok_local == 1;
  watchdog_.reset();

  if (root) {
    outcome.averages = busbw_averages(rows_);
    print_footer(outcome, opt_.check);
    std::fflush(stdout);
  }
  record.tables.push_back(collective_table(rows_, static_cast<std::size_t>(opt_.iters)));
  return outcome;
}

// ---- the header: nccl-tests' lines, then ours ----

template <typename T>
const std::vector<T>& column_data(const Table& t, const std::string& name) {
  for (const auto& c : t.columns)
    if (c.name == name) return std::get<std::vector<T>>(c.data);
  throw std::logic_error(fmt::format("table '{}' has no column '{}'", t.name, name));
}

const Table* find_table(const RunRecord& record, const std::string& name) {
  for (const auto& t : record.tables)
    if (t.name == name) return &t;
  return nullptr;
}

// nccl-tests' "#  Rank  0 Group  0 Pid  41021 on      gpu01 device  0 [0000:18:00] NAME"; a rank
// without a device prints "device -".
void print_rank_lines(const Table& ranks) {
  const auto& rank = column_data<std::int64_t>(ranks, "rank");
  const auto& pid = column_data<std::int64_t>(ranks, "pid");
  const auto& host = column_data<std::string>(ranks, "host");
  const auto& device = column_data<std::string>(ranks, "device");
  for (std::size_t r = 0; r < ranks.rows(); ++r) {
    const DeviceText d = split_device_text(device[r]);
    if (d.index >= 0)
      fmt::print("#  Rank {:2} Group  0 Pid {:6} on {:>10} device {:2} [{}] {}\n", rank[r], pid[r],
                 host[r], d.index, d.bus, d.name);
    else
      fmt::print("#  Rank {:2} Group  0 Pid {:6} on {:>10} device {}\n", rank[r], pid[r], host[r],
                 d.name);
  }
}

void print_header(const std::string& program, const CollectiveBackend& backend,
                  const CollectiveOptions& opt, const Topology& topo, const RunRecord& record) {
  fmt::print("# ffbench {} {} (git {}): {} {}, busbw factor {:.4g}\n", program, FFB_VERSION,
             FFB_GIT_COMMIT, backend.name(), backend.collective(), backend.busbw_factor(topo.size));
  // The line nccl-tests parsers read: one rank per process (nThread 1 nGpus 1), no aggregation,
  // CUDA graphs or misalignment.
  fmt::print(
      "# nThread 1 nGpus 1 minBytes {} maxBytes {} step: {} warmup iters: {} iters: {} agg "
      "iters: 1 validation: {} graph: 0 unalign: 0\n",
      opt.min_bytes, opt.max_bytes,
      opt.step_factor > 1 ? fmt::format("{}(factor)", opt.step_factor)
                          : fmt::format("{}(bytes)", opt.step_bytes),
      opt.warmup_iters, opt.iters, opt.check ? 1 : 0);
  fmt::print("# time: {} over ranks (-a {}){}; timeout: {} s\n", average_name(opt.average),
             static_cast<int>(opt.average),
             opt.blocking ? "; barrier before each iteration (-z 1)" : "", opt.timeout_s);
  fmt::print("#\n# Using devices\n");
  if (const Table* ranks = find_table(record, "ranks")) print_rank_lines(*ranks);
  fmt::print("# {} ranks on {} node{} ({} ranks per node); {}\n", topo.size, topo.nnodes(),
             topo.nnodes() == 1 ? "" : "s", topo.ranks_per_node_text(), mpi_library_version());
  std::fflush(stdout);
}

// ---- the program ----

// Adds -J/--output_file to the harness's command line: parse_command_line calls add_options
// right after the harness options (so -J follows them in --help, before the program's own) and
// check_options after checking them. Every other call goes to the program's backend. Used only
// while parsing.
class OutputFileOption final : public CollectiveBackend {
 public:
  explicit OutputFileOption(CollectiveBackend& backend) : b_(backend) {}
  const std::string& path() const { return path_; }

  std::string name() const override { return b_.name(); }
  std::string collective() const override { return b_.collective(); }
  double busbw_factor(int nranks) const override { return b_.busbw_factor(nranks); }
  void add_options(CLI::App& app) override {
    option_ = app.add_option("-J,--output_file", path_,
                             "also write the run as FILE.json in nccl-tests' -J layout (replaced "
                             "atomically)")
                  ->type_name("FILE.json");
    b_.add_options(app);
  }
  void setup(const BackendContext& ctx) override { b_.setup(ctx); }
  void teardown() override { b_.teardown(); }
  bool supports(DataType t, ReduceOp op) const override { return b_.supports(t, op); }
  bool may_support(DataType t, ReduceOp op) const override { return b_.may_support(t, op); }
  void check_options(const CollectiveOptions& options) override {
    b_.check_options(options);
    if (option_ == nullptr || option_->count() == 0) return;
    // The file system is checked at start-up by rank 0 (all ranks then stop together); a
    // --check-args process has no peers and checks it here.
    if (options.check_args)
      check_json_output(path_, options.output);
    else
      check_json_name(path_, options.output);
  }
  MemorySpace memory_space() const override { return b_.memory_space(); }
  void* allocate(std::size_t bytes) override { return b_.allocate(bytes); }
  void deallocate(void* p, std::size_t bytes) override { b_.deallocate(p, bytes); }
  void upload(void* dst, const void* src, std::size_t bytes) override {
    b_.upload(dst, src, bytes);
  }
  void download(void* dst, const void* src, std::size_t bytes) override {
    b_.download(dst, src, bytes);
  }
  void run(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op) override {
    b_.run(send, recv, count, t, op);
  }
  std::vector<Metric> last_metrics() const override { return b_.last_metrics(); }
  bool print_metrics() const override { return b_.print_metrics(); }
  bool has_metrics() const override { return b_.has_metrics(); }
  double algbw_ceiling(std::size_t bytes) const override { return b_.algbw_ceiling(bytes); }
  void describe(RunRecord& run) const override { b_.describe(run); }
  std::string device_description() const override { return b_.device_description(); }

 private:
  CollectiveBackend& b_;
  std::string path_;
  CLI::Option* option_ = nullptr;
};

// Rank 0 checks the -J path; every rank stops with its verdict, so none waits for the others.
void check_json_collectively(const std::string& path, const std::string& hdf5_output,
                             MPI_Comm world) {
  if (path.empty()) return;
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  std::string problem;
  if (rank == 0) {
    try {
      check_json_output(path, hdf5_output);
    } catch (const UsageError& e) {
      problem = e.what();
    }
  }
  problem = allgather_strings(world, problem).front();
  if (!problem.empty()) throw UsageError(problem);
}

RunRecord make_record(const std::string& program, const std::vector<std::string>& argv,
                      const CollectiveOptions& opt, const CollectiveBackend& backend, MPI_Comm comm,
                      const Topology& topo) {
  RunRecord record;
  record.attrs["label"] = opt.label;
  record.attrs["collective"] = backend.collective();
  record.attrs["backend"] = backend.name();
  record.attrs["busbw_factor"] = backend.busbw_factor(topo.size);
  record.attrs["average_mode"] = std::string(average_name(opt.average));
  record.attrs["blocking"] = static_cast<std::int64_t>(opt.blocking);
  record.attrs["options"] = opt.to_json().dump();
  add_provenance(record, comm, topo, program, "collective", argv, backend.device_description());
  backend.describe(record);
  return record;
}

// Rank 0: the HDF5 run, then the JSON document of the same record.
void write_outputs(const RunRecord& record, const CollectiveOptions& opt,
                   const std::string& json_path, JsonRunInfo info) {
  if (!opt.output.empty()) {
    const auto id = append_run(opt.output, record);
    fmt::print("# results appended to {} as /runs/{}\n", opt.output, id);
    info.results_file = opt.output;
    info.results_run = "/runs/" + id;
  }
  if (!json_path.empty()) {
    info.end_time = nccl_tests_time_now();
    write_json_atomically(json_path, collective_json(record, opt, info));
    fmt::print("# JSON written to {}\n", json_path);
  }
  std::fflush(stdout);
}

int run_collective(const std::string& program, const ProgramContext& ctx,
                   const ParsedCommandLine& parsed, const std::string& json_path,
                   CollectiveBackend& backend, MPI_Comm& comm) {
  const auto& opt = parsed.options;
  check_json_collectively(json_path, opt.output, MPI_COMM_WORLD);
  check_output(opt.output, MPI_COMM_WORLD);
  const std::string start_time = nccl_tests_time_now();
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  const Topology& topo = ctx.topology;  // the frame's, of the world this communicator duplicates
  if (opt.inject_corrupt_rank >= topo.size || opt.inject_stall_rank >= topo.size)
    throw UsageError("--inject-*-rank: rank out of range");
  backend.setup(BackendContext{comm, &topo, &opt});

  RunRecord record = make_record(program, ctx.argv, opt, backend, comm, topo);
  if (topo.rank == 0) print_header(program, backend, opt, topo, record);

  Runner runner(comm, topo, opt, backend);
  const SweepOutcome outcome = runner.run_sweep(parsed.sizes, record);
  int rc = kExitOk;
  if (!outcome.ok) {
    record.attrs["status"] = std::string("failed");
    rc = kExitFailure;
  }
  if (topo.rank == 0)
    write_outputs(record, opt, json_path,
                  JsonRunInfo{.argv = ctx.argv,
                              .start_time = start_time,
                              .end_time = {},
                              .averages = outcome.averages,
                              .total_wrong = outcome.total_wrong,
                              .ok = outcome.ok,
                              .results_file = {},
                              .results_run = {}});
  return rc;
}

// The collective as a program of the one frame (ffb/program.h): the frame starts MPI, calls the
// harness's own parser (ProgramSpec::parse), checks the launcher, finds the topology and maps
// exceptions to exit codes; run() is the sweep.
class CollectiveProgram final : public Program {
 public:
  CollectiveProgram(std::string program, CollectiveBackend& backend)
      : program_(std::move(program)), backend_(backend), with_json_(backend) {}
  CollectiveProgram(const CollectiveProgram&) = delete;
  CollectiveProgram& operator=(const CollectiveProgram&) = delete;

  // The frame's parse hook: the help (or --check-args verdict) text, or "" to run.
  std::string parse(int argc, char** argv) {
    parsed_ = parse_command_line(argc, argv, program_, with_json_);
    return parsed_.help_text;
  }

  void add_options(CLI::App& /*app*/) override {}  // unused: the frame calls parse() instead

  int run(ProgramContext& ctx) override {
    int rc = kExitFailure;
    try {
      rc = run_collective(program_, ctx, parsed_, with_json_.path(), backend_, comm_);
    } catch (...) {
      // Free MPI and device objects while MPI is up, but only where no peer can be left waiting
      // in a collective: an error every rank shares, or a single rank. Otherwise the frame aborts.
      if (every_rank_knows(std::current_exception()) || ctx.size == 1) release();
      throw;
    }
    release();
    return rc;
  }

 private:
  static bool every_rank_knows(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const UsageError&) {
      return true;
    } catch (const SkipError&) {
      return true;
    } catch (const AgreedFailure&) {
      return true;
    } catch (...) {
      return false;
    }
  }
  // Idempotent: the backend's teardown, then the benchmark's communicator.
  void release() {
    if (released_) return;
    released_ = true;
    backend_.teardown();
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  std::string program_;
  CollectiveBackend& backend_;
  OutputFileOption with_json_;
  ParsedCommandLine parsed_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool released_ = false;
};

}  // namespace

// The measurer's own copies of what the runner keeps references to.
struct PlacementMeasurer::Impl {
  Impl(MPI_Comm comm, const Topology& topo, const CollectiveOptions& opt,
       CollectiveBackend& backend)
      : topology(topo), options(opt), runner(comm, topology, options, backend) {}
  Topology topology;
  CollectiveOptions options;
  Runner runner;
  std::uint64_t max_bytes = 0;  // the buffers' size
};

PlacementMeasurer::PlacementMeasurer(MPI_Comm comm, const Topology& topology,
                                     const CollectiveOptions& options, CollectiveBackend& backend,
                                     std::uint64_t max_bytes)
    : impl_(std::make_unique<Impl>(comm, topology, options, backend)) {
  impl_->runner.prepare(max_bytes);
  impl_->max_bytes = max_bytes;
}

PlacementMeasurer::~PlacementMeasurer() = default;

PlacementTiming PlacementMeasurer::measure(std::size_t count, DataType type, ReduceOp op,
                                           bool in_place) {
  const std::uint64_t bytes = count * size_of(type);
  if (bytes > impl_->max_bytes)
    throw std::invalid_argument(fmt::format(
        "PlacementMeasurer: {} B asked for, buffers of {} B prepared", bytes, impl_->max_bytes));
  impl_->runner.set_point(bytes, type, op);
  const PlacementResult r = impl_->runner.measure(count, type, op, in_place);
  return PlacementTiming{.time_us = r.time_us,
                         .time_mean_us = r.summary.mean,
                         .time_p50_us = r.summary.p50,
                         .wrong = r.wrong};
}

int collective_main(int argc, char** argv, const std::string& program,
                    std::unique_ptr<CollectiveBackend> backend) {
  int rc = kExitFailure;
  {
    CollectiveProgram collective(program, *backend);
    const ProgramSpec spec{
        .name = program,
        .description = fmt::format("{} {} benchmark", backend->name(), backend->collective()),
        .thread_level = MPI_THREAD_MULTIPLE,
        .parse = [&collective](int c, char** v) { return collective.parse(c, v); }};
    rc = run_program(argc, argv, spec, collective);
  }
  backend.reset();
  return rc;
}

}  // namespace ffb
