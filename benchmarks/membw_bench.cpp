// Host memory bandwidth probe (STREAM-like copy and add, 1..N threads): the ceiling HFReduce's
// host stages are judged against. Rank 0 measures; the run is stored like every other result.
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/membw.h"
#include "ffb/mpi_env.h"
#include "ffb/provenance.h"
#include "ffb/results.h"
#include "ffb/sizes.h"

int main(int argc, char** argv) {
  ffb::MpiSession mpi(argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  CLI::App app{"membw_bench: STREAM-like host memory bandwidth (GB = 1e9 B)", "membw_bench"};
  std::string bytes_text = "128M", output, label;
  int max_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int repetitions = 5;
  app.add_option("--bytes", bytes_text, "bytes per array per thread (K/M/G)")
      ->capture_default_str();
  app.add_option("--threads", max_threads, "measure 1..N threads")->capture_default_str();
  app.add_option("--repetitions", repetitions, "timed repetitions (best is reported)")
      ->capture_default_str();
  app.add_option("--output", output, "append this run to an HDF5 results file");
  app.add_option("--label", label, "free text stored with the run");
  try {
    app.parse(argc, argv);
    const auto bytes = ffb::parse_size(bytes_text, "--bytes");
    if (bytes < 4096)
      throw ffb::UsageError(fmt::format("--bytes {}: give at least 4K", bytes_text));
    if (max_threads < 1 || max_threads > 1024)
      throw ffb::UsageError(fmt::format("--threads {}: give 1 to 1024", max_threads));
    if (repetitions < 1)
      throw ffb::UsageError(fmt::format("--repetitions {}: give >= 1", repetitions));

    const auto topo = ffb::discover_topology(MPI_COMM_WORLD);
    ffb::RunRecord run;
    run.attrs["label"] = label;
    run.attrs["options"] = fmt::format(R"({{"bytes": {}, "threads": {}, "repetitions": {}}})",
                                       bytes, max_threads, repetitions);
    ffb::add_provenance(run, MPI_COMM_WORLD, topo, "membw_bench", "probe",
                        std::vector<std::string>(argv, argv + argc));
    ffb::Table table{.name = "membw", .columns = {}};
    auto& kernel = table.add_str("kernel");
    auto& threads = table.add_i64("threads", "count");
    auto& best = table.add_f64("bandwidth", "GB/s");
    auto& mean = table.add_f64("bandwidth_mean", "GB/s");
    if (rank == 0) {
      fmt::print("# membw_bench: {} per array per thread, best of {} (GB = 1e9 B)\n",
                 ffb::format_size(bytes), repetitions);
      fmt::print("# {:>6} {:>8} {:>12} {:>12}\n", "kernel", "threads", "best GB/s", "mean GB/s");
      for (auto k : {ffb::StreamKernel::copy, ffb::StreamKernel::add}) {
        for (int t = 1; t <= max_threads; ++t) {
          const auto r = ffb::measure_membw(k, t, bytes, repetitions);
          fmt::print("  {:>6} {:>8} {:12.2f} {:12.2f}\n", ffb::name_of(k), t, r.gbps, r.gbps_mean);
          kernel.emplace_back(ffb::name_of(k));
          threads.push_back(t);
          best.push_back(r.gbps);
          mean.push_back(r.gbps_mean);
        }
      }
    }
    run.tables.push_back(std::move(table));
    if (rank == 0 && !output.empty())
      fmt::print("# results appended to {} as /runs/{}\n", output, ffb::append_run(output, run));
  } catch (const CLI::CallForHelp&) {
    if (rank == 0) fmt::print("{}", app.help());
    return 0;
  } catch (const CLI::ParseError& e) {
    if (rank == 0) fmt::print(stderr, "membw_bench: error: {} (see --help)\n", e.what());
    return ffb::kExitUsage;
  } catch (const ffb::UsageError& e) {
    if (rank == 0) fmt::print(stderr, "membw_bench: error: {}\n", e.what());
    return ffb::kExitUsage;
  }
  return 0;
}
