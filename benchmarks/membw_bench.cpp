// Host memory bandwidth probe (STREAM-like copy and add, 1..N threads): the ceiling HFReduce's
// host stages are judged against. Rank 0 measures; the run is stored like every other result.
// Array sizes follow the shared size rule (ffb::plan_membw) unless --bytes gives one.
#include <algorithm>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/membw.h"
#include "ffb/mpi_env.h"
#include "ffb/program.h"
#include "ffb/provenance.h"
#include "ffb/results.h"
#include "ffb/sizes.h"

namespace {

struct Args {
  std::string bytes_text = "auto", output, label;
  int max_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int repetitions = 5;
  std::uint64_t bytes = 0;  // 0: the size rule
};

void add_options(CLI::App& app, Args& a) {
  app.add_option("--bytes", a.bytes_text,
                 "bytes per array per thread (K/M/G), or auto: working set >= 4 x the last-level "
                 "cache, arrays >= 64 MiB")
      ->capture_default_str();
  app.add_option("--threads", a.max_threads, "measure 1..N threads")->capture_default_str();
  app.add_option("--repetitions", a.repetitions, "timed repetitions (best is reported)")
      ->capture_default_str();
  app.add_option("--output", a.output, "append this run to an HDF5 results file");
  app.add_option("--label", a.label, "free text stored with the run");
}

void check(Args& a) {
  if (a.bytes_text != "auto") {
    a.bytes = ffb::parse_size(a.bytes_text, "--bytes");
    if (a.bytes < 4096)
      throw ffb::UsageError(fmt::format("--bytes {}: give at least 4K, or auto", a.bytes_text));
  }
  if (a.max_threads < 1 || a.max_threads > 1024)
    throw ffb::UsageError(fmt::format("--threads {}: give 1 to 1024", a.max_threads));
  if (a.repetitions < 1)
    throw ffb::UsageError(fmt::format("--repetitions {}: give >= 1", a.repetitions));
}

struct Row {
  ffb::StreamKernel kernel;
  ffb::MembwPlan plan;
};

// One plan per (kernel, threads). Rank 0 decides whether the largest working set fits in memory;
// every rank gets the same verdict.
std::vector<Row> plan_rows(const Args& a, int rank) {
  std::vector<Row> rows;
  for (auto k : {ffb::StreamKernel::copy, ffb::StreamKernel::add})
    for (int t = 1; t <= a.max_threads; ++t)
      rows.push_back({k, ffb::plan_membw(ffb::arrays_of(k), t, a.bytes)});
  const auto& largest = std::max_element(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
                          return x.plan.working_set < y.plan.working_set;
                        })->plan;
  int bad = rank == 0 && !largest.fits() ? 1 : 0;
  MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (bad)
    throw ffb::UsageError(fmt::format("--bytes {}: {}; give a smaller {}--bytes or fewer --threads",
                                      a.bytes_text, largest.shortfall(),
                                      a.bytes == 0 ? "explicit " : ""));
  return rows;
}

void describe(ffb::RunRecord& run, const Args& a, const std::vector<Row>& rows) {
  const auto& full = rows.back().plan;
  run.attrs["label"] = a.label;
  run.attrs["options"] =
      fmt::format(R"({{"bytes": {}, "threads": {}, "repetitions": {}}})",
                  a.bytes == 0 ? std::string(R"("auto")") : std::to_string(a.bytes), a.max_threads,
                  a.repetitions);
  run.attrs["membw_bytes_per_array"] = static_cast<std::int64_t>(full.bytes_per_array);
  run.attrs["membw_size_rule"] =
      full.rule + (full.automatic ? "; every row sized by the rule (column bytes_per_array)" : "");
  run.attrs["llc_bytes"] = static_cast<std::int64_t>(full.llc_bytes);
}

ffb::Table measure(const Args& a, const std::vector<Row>& rows) {
  ffb::Table table{.name = "membw", .columns = {}};
  auto& kernel = table.add_str("kernel");
  auto& threads = table.add_i64("threads", "count");
  auto& bytes = table.add_i64("bytes_per_array", "B");
  auto& best = table.add_f64("bandwidth", "GB/s");
  auto& mean = table.add_f64("bandwidth_mean", "GB/s");
  fmt::print("# membw_bench: best of {} (GB = 1e9 B); size: {}\n", a.repetitions,
             rows.back().plan.rule);
  fmt::print("# {:>6} {:>8} {:>12} {:>12} {:>12}\n", "kernel", "threads", "bytes/array",
             "best GB/s", "mean GB/s");
  for (const auto& row : rows) {
    const auto r =
        ffb::measure_membw(row.kernel, row.plan.threads, row.plan.bytes_per_array, a.repetitions);
    fmt::print("  {:>6} {:>8} {:>12} {:12.2f} {:12.2f}\n", ffb::name_of(row.kernel), r.threads,
               ffb::format_size(r.bytes_per_array), r.gbps, r.gbps_mean);
    std::fflush(stdout);
    kernel.emplace_back(ffb::name_of(row.kernel));
    threads.push_back(r.threads);
    bytes.push_back(static_cast<std::int64_t>(r.bytes_per_array));
    best.push_back(r.gbps);
    mean.push_back(r.gbps_mean);
  }
  return table;
}

class MembwBench final : public ffb::Program {
 public:
  void add_options(CLI::App& app) override { ::add_options(app, a_); }
  void validate() override { check(a_); }
  int run(ffb::ProgramContext& ctx) override {
    ffb::check_output(a_.output, ctx.comm);
    const auto rows = plan_rows(a_, ctx.rank);
    ffb::RunRecord run;
    describe(run, a_, rows);
    ffb::add_provenance(run, ctx.comm, ctx.topology, "membw_bench", "probe", ctx.argv);
    if (!ctx.root()) return ffb::kExitOk;
    run.tables.push_back(measure(a_, rows));
    if (!a_.output.empty())
      fmt::print("# results appended to {} as /runs/{}\n", a_.output,
                 ffb::append_run(a_.output, run));
    return ffb::kExitOk;
  }

 private:
  Args a_;
};

}  // namespace

int main(int argc, char** argv) {
  MembwBench program;
  return ffb::run_program(argc, argv,
                          {.name = "membw_bench",
                           .description = "STREAM-like host memory bandwidth (GB = 1e9 B)",
                           .thread_level = MPI_THREAD_MULTIPLE,
                           .parse = {}},
                          program);
}
