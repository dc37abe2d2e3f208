// The collective benchmark harness: options, sweep, timing, validation, printing and results,
// shared by every collective program. A program is a CollectiveBackend plus a three-line main().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <mpi.h>
#include <nlohmann/json.hpp>

#include "ffb/mpi_env.h"
#include "ffb/numeric.h"
#include "ffb/results.h"

namespace ffb {

// nccl-tests' -a: how per-rank times combine into the `time` column.
enum class AverageMode { rank0 = 0, avg = 1, min = 2, max = 3 };

struct CollectiveOptions {
  std::uint64_t min_bytes = 32ull << 20;
  std::uint64_t max_bytes = 32ull << 20;
  double step_factor = 1.0;
  std::uint64_t step_bytes = 1ull << 20;
  int iters = 20;
  int warmup_iters = 5;
  bool check = true;
  bool accuracy = false;
  std::vector<DataType> types{DataType::f32};
  std::vector<ReduceOp> ops{ReduceOp::sum};
  AverageMode average = AverageMode::max;  // the slowest rank: the collective ends when it does
  bool blocking = false;                   // -z 1: barrier before every iteration
  double timeout_s = 300.0;
  std::string output;
  std::string label;
  // --check-args: parse and validate every option as a run would, then exit 0 (2 with the error
  // line) without communicating, touching files or devices (ffbench run checks configs with it).
  bool check_args = false;
  // Test-only fault injection (hidden from --help): prove that validation and the watchdog fire.
  int inject_corrupt_rank = -1;
  int inject_stall_rank = -1;
  double inject_stall_s = 0.0;

  nlohmann::json to_json() const;
};

enum class MemorySpace { host, device };

// A per-call measurement a backend exposes (HFReduce's stage times, its MPI fallback flag, the
// algorithm that carried the call): a number, or a text when `text` is not empty. In a row, a
// number is the mean over the timed calls on the slowest rank; a text is the value of the timed
// calls, or their distinct values over calls and ranks, sorted and joined with "+" ("ring+tree").
struct Metric {
  std::string name;   // column name in the results ("stage_copy_in", "algorithm")
  std::string units;  // "us", "1"
  double value = 0;
  std::string text{};  // empty: a numeric metric
};

struct BackendContext {
  MPI_Comm comm = MPI_COMM_NULL;  // the benchmark's communicator (a duplicate of the world)
  const Topology* topology = nullptr;
  const CollectiveOptions* options = nullptr;
};

class CollectiveBackend {
 public:
  virtual ~CollectiveBackend() = default;

  virtual std::string name() const = 0;  // "mpi", "hfreduce", "nccl"
  virtual std::string collective() const { return "allreduce"; }
  virtual double busbw_factor(int nranks) const {  // nccl-tests: allreduce 2(n-1)/n
    return nranks > 1 ? 2.0 * (nranks - 1) / nranks : 0.0;
  }

  // Program-specific flags; values land in the backend's own options struct.
  virtual void add_options(CLI::App& /*app*/) {}
  // Called once MPI is up and options are parsed; throws UsageError/SkipError with a clear line.
  virtual void setup(const BackendContext& /*ctx*/) {}
  virtual void teardown() {}

  virtual bool supports(DataType t, ReduceOp op) const = 0;
  // What the backend can reduce on some machine, known before setup() (the help text, `-d all`
  // and the parse-time check of -d use it; the sweep skips what supports() then refuses here).
  // Default: supports(). A backend whose support depends on the device or library version found
  // in setup() overrides it.
  virtual bool may_support(DataType t, ReduceOp op) const { return supports(t, op); }
  // Checks the program-specific option values that need no MPI, topology or device (also under
  // --check-args), after the harness options; throws UsageError naming the flag and the value.
  virtual void check_options(const CollectiveOptions& /*options*/) {}

  virtual MemorySpace memory_space() const { return MemorySpace::host; }
  virtual void* allocate(std::size_t bytes);
  virtual void deallocate(void* p, std::size_t bytes);
  virtual void upload(void* dst, const void* host_src, std::size_t bytes);
  virtual void download(void* host_dst, const void* src, std::size_t bytes);

  // One complete collective: returns when the result is in recv on this rank. send == recv is
  // in-place.
  virtual void run(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op) = 0;

  // Measurements of the last run() call; `print_metrics` shows them after the table's columns.
  // Called after every timed call when has_metrics(); the harness reads its clock again
  // afterwards, so building them is not timed (but is done between calls: keep it cheap). The
  // same names, in the same order, on every call and rank is the fast path (a rank may lack a
  // name: the row then has the other ranks' figures).
  virtual std::vector<Metric> last_metrics() const { return {}; }
  virtual bool print_metrics() const { return false; }
  // Whether the backend reports metrics at all; false: the timed loop never asks (a virtual
  // call, an empty vector and a branch per iteration saved). Default: print_metrics(), right for
  // every backend whose metrics are shown; one that reports metrics it does not print says true.
  virtual bool has_metrics() const { return print_metrics(); }

  // An analytic upper bound on algbw (GB/s) for this run, e.g. HFReduce's memory-traffic ceiling;
  // 0 = none. The harness then records algbw / ceiling per row (column ceiling_fraction).
  virtual double algbw_ceiling(std::size_t /*bytes*/) const { return 0.0; }

  // Extra provenance (MCA settings, library versions) and this rank's device ("-" for none).
  virtual void describe(RunRecord& /*run*/) const {}
  virtual std::string device_description() const { return "-"; }
};

// One placement of one point measured by the sweep's own code (warm-up, the timed loop, the
// combination over ranks, validation unless -c 0), for programs that study the harness itself
// (harness_overhead_bench) or set backends side by side (small_message_bench): what they time is
// what every row of collective_main is made of. `backend` must be set up for `comm`. Each measure()
// is collective over comm.
struct PlacementTiming {
  double time_us = 0;       // rank 0: the `time` column (-a max: the slowest rank's mean)
  double time_mean_us = 0;  // rank 0: time_mean, the mean of the per-iteration slowest rank
  double time_p50_us = 0;   // rank 0: time_p50, the median of the per-iteration slowest rank
  std::int64_t wrong = -1;  // every rank: wrong elements over all ranks (-1 under -c 0)
};

class PlacementMeasurer {
 public:
  PlacementMeasurer(MPI_Comm comm, const Topology& topology, const CollectiveOptions& options,
                    CollectiveBackend& backend, std::uint64_t max_bytes);
  ~PlacementMeasurer();
  PlacementMeasurer(const PlacementMeasurer&) = delete;
  PlacementMeasurer& operator=(const PlacementMeasurer&) = delete;

  PlacementTiming measure(std::size_t count, DataType type, ReduceOp op, bool in_place);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses argv, runs the sweep, prints the nccl-tests table, writes --output, returns the exit code.
// Runs in the one program frame (ffb::run_program, ffb/program.h), which maps exceptions to exit
// codes and one line on stderr: UsageError 2 and SkipError 77 (rank 0 prints), others 1.
int collective_main(int argc, char** argv, const std::string& program,
                    std::unique_ptr<CollectiveBackend> backend);

}  // namespace ffb
