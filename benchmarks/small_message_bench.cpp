// Short-message latency of HFReduce against MPI_Allreduce, timed side by side in one process.
//
// Why one process: on a VM each mpirun lands in its own state (the same 64 KiB call took 7, 15 or
// 48 us from one mpirun to the next here), so medians of separate runs compare states as much as
// code. Here every point is measured by each candidate back to back, in rounds whose order turns
// round by round, and each round's ratio pairs calls that ran next to each other.
//
// Candidates (each timed by the sweep's own code, ffb::PlacementMeasurer):
//   hfreduce  HFReduce with the library's defaults (what a user gets: the shared-memory small path
//             on one node below 16 KiB, the pipeline above);
//   hfmpi     HFReduce with --small-path mpi at every size: MPI_Allreduce through HFReduce's own
//             ops, a user-defined op for fp8 (the MPI figure for types MPI has no type for);
//   mpi       MPI_Allreduce (mpi_allreduce_bench's backend); fp8 as uint8 on the same bytes, which
//             moves the bytes without fp8 arithmetic (a lower bound, labelled so).
#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <mpi.h>

#include "backends/mpi_allreduce_backend.h"
#include "ffb/collective.h"
#include "ffb/error.h"
#include "ffb/mpi_env.h"
#include "ffb/numeric.h"
#include "ffb/program.h"
#include "ffb/provenance.h"
#include "ffb/run_output.h"
#include "ffb/sizes.h"
#include "ffb/stats.h"
#include "ffb/strings.h"
#include "hfreduce/hfreduce.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;

constexpr const char* kProgram = "small_message_bench";
constexpr std::uint64_t kMaxBytes = 1ull << 20;  // a short-message table: HFReduce's small path
constexpr int kMaxIters = 1000000;
constexpr int kMaxRounds = 1000;
constexpr double kMaxTimeoutS = 7 * 24 * 3600.0;

// HFReduce with given library options, as a harness backend; which path carried the last call is
// read once per placement (path()), outside the timed loop: no metrics per iteration.
class HfreduceCall final : public ffb::CollectiveBackend {
 public:
  HfreduceCall(MPI_Comm comm, const hfreduce::Options& options) : comm_(comm, options) {}
  std::string name() const override { return "hfreduce"; }
  bool supports(DataType, ReduceOp) const override { return true; }
  void run(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op) override {
    comm_.allreduce(send, recv, count, t, op);
  }
  std::string path() const { return hfreduce::name_of(comm_.last_stage_times().algorithm); }

 private:
  hfreduce::Communicator comm_;
};

struct Args {
  std::string min_text = "4";
  std::string max_text = "64K";
  double factor = 2;
  std::string types_text = "all";
  int iters = 200;
  int warmup = 20;
  int rounds = 16;
  int check = 1;
  double timeout_s = 60;
  std::string output;
  std::string label;
  // parsed by validate()
  std::vector<std::uint64_t> sizes;
  std::vector<DataType> types;
};

// The three candidates, in the order of even rounds (odd rounds run them backwards).
enum class Candidate { hfreduce, hfmpi, mpi };
constexpr std::array kCandidates = {Candidate::hfreduce, Candidate::hfmpi, Candidate::mpi};
const char* name_of(Candidate c) {
  return c == Candidate::hfreduce ? "hfreduce" : c == Candidate::hfmpi ? "hfmpi" : "mpi";
}

bool is_fp8(DataType t) { return t == DataType::f8e4m3 || t == DataType::f8e5m2; }

// What the candidate reduces at a point of type t: MPI has no fp8 type, its figure there is uint8
// on the same bytes.
DataType measured_type(Candidate c, DataType t) {
  return c == Candidate::mpi && is_fp8(t) ? DataType::u8 : t;
}

void add_options(CLI::App& app, Args& a) {
  app.add_option("-b,--minbytes", a.min_text, "smallest message (K/M suffixes)")
      ->capture_default_str();
  app.add_option("-e,--maxbytes", a.max_text, "largest message, at most 1M")->capture_default_str();
  app.add_option("-f,--stepfactor", a.factor, "size multiplier, 2 or more")->capture_default_str();
  app.add_option("-d,--datatype", a.types_text, "types, comma-separated, or all")
      ->capture_default_str();
  app.add_option("-n,--iters", a.iters, "timed iterations per candidate and point")
      ->capture_default_str();
  app.add_option("-w,--warmup_iters", a.warmup, "warm-up iterations before each timed loop")
      ->capture_default_str();
  app.add_option("-r,--rounds", a.rounds, "rounds over every point (order reversed each round)")
      ->capture_default_str();
  app.add_option("-c,--check", a.check, "validate every result (1) or not (0)")
      ->capture_default_str();
  app.add_option("-T,--timeout", a.timeout_s, "watchdog: seconds before a stuck call aborts")
      ->capture_default_str();
  app.add_option("--output", a.output, "HDF5 results file to append the run to");
  app.add_option("--label", a.label, "label stored with the run");
}

std::vector<DataType> parse_types(const std::string& text) {
  if (text == "all") return {ffb::kAllDataTypes.begin(), ffb::kAllDataTypes.end()};
  std::vector<DataType> types;
  for (const auto& name : ffb::split_list(text)) {
    const auto t = ffb::parse_data_type(name);
    if (!t)
      throw ffb::UsageError(fmt::format(
          "-d/--datatype '{}': unknown type; use float, double, half, bfloat16, int32, int64, "
          "uint8, int8, uint32, uint64, fp8_e4m3, fp8_e5m2 or all",
          name));
    types.push_back(*t);
  }
  if (types.empty()) throw ffb::UsageError("-d/--datatype: empty list; give a type name or all");
  return types;
}

void check(Args& a) {
  const auto lo = ffb::parse_size(a.min_text, "-b/--minbytes");
  const auto hi = ffb::parse_size(a.max_text, "-e/--maxbytes");
  if (lo == 0) throw ffb::UsageError("-b/--minbytes 0: give 1 byte or more");
  if (hi > kMaxBytes)
    throw ffb::UsageError(fmt::format(
        "-e/--maxbytes {}: give at most 1M (larger messages: hfreduce_bench)", a.max_text));
  if (!(a.factor >= 2 && a.factor <= 1024))
    throw ffb::UsageError(fmt::format("-f/--stepfactor {}: give 2 to 1024", a.factor));
  a.sizes = ffb::size_sweep(lo, hi, a.factor, 0);
  a.types = parse_types(a.types_text);
  if (a.iters < 1 || a.iters > kMaxIters)
    throw ffb::UsageError(fmt::format("-n/--iters {}: give 1 to {}", a.iters, kMaxIters));
  if (a.warmup < 0 || a.warmup > kMaxIters)
    throw ffb::UsageError(fmt::format("-w/--warmup_iters {}: give 0 to {}", a.warmup, kMaxIters));
  if (a.rounds < 1 || a.rounds > kMaxRounds)
    throw ffb::UsageError(fmt::format("-r/--rounds {}: give 1 to {}", a.rounds, kMaxRounds));
  if (a.check != 0 && a.check != 1)
    throw ffb::UsageError(fmt::format("-c/--check {}: give 0 or 1", a.check));
  if (!(a.timeout_s > 0 && a.timeout_s <= kMaxTimeoutS))
    throw ffb::UsageError(fmt::format("-T/--timeout {}: give seconds > 0 and at most {:g}",
                                      a.timeout_s, kMaxTimeoutS));
}

ffb::CollectiveOptions harness_options(const Args& a) {
  ffb::CollectiveOptions opt;
  opt.iters = a.iters;
  opt.warmup_iters = a.warmup;
  opt.check = a.check == 1;
  opt.timeout_s = a.timeout_s;
  opt.types = a.types;
  return opt;
}

// One measured placement: a row of the run's `small_message` table (rank 0's figures).
struct Sample {
  int round;
  DataType type;
  std::uint64_t bytes;
  Candidate candidate;
  ffb::PlacementTiming timing;
  std::string path;  // what carried the call: shm, intra-node, mpi
};

// The three candidates, each with its own communicator, buffers and watchdog.
class Candidates {
 public:
  Candidates(MPI_Comm world, const ffb::Topology& topo, const ffb::CollectiveOptions& opt)
      : hf_comm_(world), hfmpi_comm_(world), mpi_comm_(world) {
    hfreduce_ = std::make_unique<HfreduceCall>(hf_comm_.get(), hfreduce::Options{});
    hfreduce::Options via_mpi;
    via_mpi.small_path = hfreduce::SmallPath::mpi;
    via_mpi.fallback_bytes = kMaxBytes + 1;
    hfmpi_ = std::make_unique<HfreduceCall>(hfmpi_comm_.get(), via_mpi);
    mpi_.setup(ffb::BackendContext{mpi_comm_.get(), &topo, &opt});
    for (const auto c : kCandidates)
      measurers_[static_cast<std::size_t>(c)] =
          std::make_unique<ffb::PlacementMeasurer>(comm_of(c), topo, opt, backend(c), kMaxBytes);
  }
  ~Candidates() { mpi_.teardown(); }
  Candidates(const Candidates&) = delete;
  Candidates& operator=(const Candidates&) = delete;

  Sample measure(int round, DataType type, std::uint64_t bytes, Candidate c) {
    const DataType t = measured_type(c, type);
    const auto timing = measurers_[static_cast<std::size_t>(c)]->measure(bytes / ffb::size_of(t), t,
                                                                         ReduceOp::sum, false);
    if (timing.wrong > 0)
      throw std::runtime_error(fmt::format("{}: {} {} {} B failed validation ({} wrong)", kProgram,
                                           name_of(c), ffb::name_of(t), bytes, timing.wrong));
    std::string path = c == Candidate::mpi        ? "mpi"
                       : c == Candidate::hfreduce ? hfreduce_->path()
                                                  : hfmpi_->path();
    return Sample{round, type, bytes, c, timing, std::move(path)};
  }

 private:
  MPI_Comm comm_of(Candidate c) const {
    return c == Candidate::hfreduce ? hf_comm_.get()
           : c == Candidate::hfmpi  ? hfmpi_comm_.get()
                                    : mpi_comm_.get();
  }
  ffb::CollectiveBackend& backend(Candidate c) {
    if (c == Candidate::hfreduce) return *hfreduce_;
    if (c == Candidate::hfmpi) return *hfmpi_;
    return mpi_;
  }

  ffb::DupComm hf_comm_, hfmpi_comm_, mpi_comm_;
  std::unique_ptr<HfreduceCall> hfreduce_, hfmpi_;
  ffb::bench::MpiAllreduceBackend mpi_;
  std::array<std::unique_ptr<ffb::PlacementMeasurer>, kCandidates.size()> measurers_;
};

// Every round visits every point; at each point the candidates run back to back, forwards in
// even rounds and backwards in odd ones, so none always runs in another's wake.
std::vector<Sample> measure_rounds(const Args& a, const ffb::ProgramContext& ctx) {
  const auto opt = harness_options(a);
  Candidates candidates(ctx.comm, ctx.topology, opt);
  std::vector<Sample> out;
  for (int round = 0; round < a.rounds; ++round)
    for (const auto t : a.types)
      for (const auto bytes : a.sizes) {
        if (bytes < ffb::size_of(t)) continue;
        for (std::size_t k = 0; k < kCandidates.size(); ++k) {
          const auto c = kCandidates[round % 2 == 0 ? k : kCandidates.size() - 1 - k];
          out.push_back(candidates.measure(round, t, bytes, c));
        }
      }
  return out;
}

// The reference HFReduce is judged against at a type: MPI_Allreduce of the type, and for fp8
// (no MPI type) MPI_Allreduce with a user-defined fp8 op, i.e. the hfmpi candidate.
Candidate reference_of(DataType t) { return is_fp8(t) ? Candidate::hfmpi : Candidate::mpi; }

// Per point: each candidate's median over rounds, and the median of the per-round ratios
// HFReduce / reference (each pairs two placements that ran back to back).
void print_table(const Args& a, const ffb::ProgramContext& ctx, const std::vector<Sample>& s) {
  using Key = std::pair<int, std::uint64_t>;  // (type, bytes)
  std::map<Key, std::map<int, std::array<double, kCandidates.size()>>> by_point;
  std::map<Key, std::string> paths;
  for (const auto& x : s) {
    const Key key{static_cast<int>(x.type), x.bytes};
    by_point[key][x.round][static_cast<std::size_t>(x.candidate)] = x.timing.time_p50_us;
    if (x.candidate == Candidate::hfreduce) paths[key] = x.path;
  }
  fmt::print(
      "# {}: {} ranks, {} rounds, -n {} -w {}; sum, out-of-place; time = median iteration of the "
      "slowest rank (us), median over rounds; ratio = median of the per-round HFReduce / "
      "reference (fp8: reference = hfmpi, MPI_Allreduce with a user-defined op)\n",
      kProgram, ctx.size, a.rounds, a.iters, a.warmup);
  fmt::print("{:>9} {:>8} {:>10} {:>10} {:>10} {:>7}  {}\n", "type", "size", "hfreduce", "hfmpi",
             "mpi", "ratio", "path");
  int faster = 0, points = 0;
  for (const auto& [key, rounds] : by_point) {
    const auto type = static_cast<DataType>(key.first);
    const auto ref = static_cast<std::size_t>(reference_of(type));
    std::array<std::vector<double>, kCandidates.size()> times;
    std::vector<double> ratios;
    for (const auto& [round, t] : rounds) {
      for (std::size_t c = 0; c < t.size(); ++c) times[c].push_back(t[c]);
      if (t[ref] > 0) ratios.push_back(t[0] / t[ref]);
    }
    const double ratio = ffb::summarize(ratios).p50;
    faster += ratio <= 1.0 ? 1 : 0;
    ++points;
    fmt::print("{:>9} {:>8} {:10.2f} {:10.2f} {:10.2f} {:7.2f}  {}{}\n", ffb::name_of(type),
               ffb::format_size(key.second), ffb::summarize(times[0]).p50,
               ffb::summarize(times[1]).p50, ffb::summarize(times[2]).p50, ratio, paths[key],
               is_fp8(type) ? " (mpi: uint8, a lower bound)" : "");
  }
  fmt::print("# HFReduce no slower than its reference at {} of {} points\n", faster, points);
}

ffb::RunRecord make_record(const Args& a, const ffb::ProgramContext& ctx,
                           const std::vector<Sample>& s) {
  ffb::RunRecord run;
  run.attrs["label"] = a.label;
  run.attrs["rounds"] = static_cast<std::int64_t>(a.rounds);
  run.attrs["iters"] = static_cast<std::int64_t>(a.iters);
  run.attrs["warmup_iters"] = static_cast<std::int64_t>(a.warmup);
  run.attrs["check"] = static_cast<std::int64_t>(a.check);
  ffb::add_provenance(run, ctx.comm, ctx.topology, kProgram, "small_message", ctx.argv);
  ffb::Table t{.name = "small_message", .columns = {}};
  auto& round = t.add_i64("round", "1");
  auto& type = t.add_str("type");
  auto& size = t.add_i64("size", "B");
  auto& candidate = t.add_str("candidate");
  auto& measured = t.add_str("measured_type");
  auto& count = t.add_i64("count", "1");
  auto& p50 = t.add_f64("time_p50", "us");
  auto& time = t.add_f64("time", "us");
  auto& mean = t.add_f64("time_mean", "us");
  auto& path = t.add_str("path");
  auto& wrong = t.add_i64("wrong", "1");
  for (const auto& x : s) {
    const DataType m = measured_type(x.candidate, x.type);
    round.push_back(x.round);
    type.emplace_back(ffb::name_of(x.type));
    size.push_back(static_cast<std::int64_t>(x.bytes));
    candidate.emplace_back(name_of(x.candidate));
    measured.emplace_back(ffb::name_of(m));
    count.push_back(static_cast<std::int64_t>(x.bytes / ffb::size_of(m)));
    p50.push_back(x.timing.time_p50_us);
    time.push_back(x.timing.time_us);
    mean.push_back(x.timing.time_mean_us);
    path.push_back(x.path);
    wrong.push_back(x.timing.wrong);
  }
  run.tables.push_back(std::move(t));
  return run;
}

class SmallMessageBench final : public ffb::Program {
 public:
  void add_options(CLI::App& app) override { ::add_options(app, a_); }
  void validate() override { check(a_); }
  int run(ffb::ProgramContext& ctx) override {
    ffb::check_output(a_.output, ctx.comm);
    const auto samples = measure_rounds(a_, ctx);
    if (ctx.root()) print_table(a_, ctx, samples);
    return ffb::finish_run(ctx.comm, a_.output, make_record(a_, ctx, samples), false);
  }

 private:
  Args a_;
};

}  // namespace

int main(int argc, char** argv) {
  SmallMessageBench program;
  return ffb::run_program(argc, argv,
                          {.name = kProgram,
                           .description = "short-message latency of HFReduce and MPI_Allreduce, "
                                          "side by side in one process, in interleaved rounds",
                           .thread_level = MPI_THREAD_MULTIPLE,
                           .parse = {}},
                          program);
}
