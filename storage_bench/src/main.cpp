// storage_bench: MPI-parallel storage loads shaped like AI training, checkpointing and KV caching.
// See docs/storage_bench.md.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

#include <fmt/format.h>
#include <mpi.h>

#include "context.h"
#include "engine.h"
#include "ffb/error.h"
#include "ffb/hostinfo.h"
#include "ffb/membw.h"
#include "ffb/mpi_env.h"
#include "ffb/program.h"
#include "ffb/results.h"
#include "ffb/sizes.h"
#include "fsutil.h"
#include "json_summary.h"
#include "options.h"
#include "report.h"
#include "sync.h"
#include "workloads/common.h"

namespace {

using namespace sb;

struct NodeMemBw {
  std::vector<double> per_node;  // GB/s, STREAM copy convention
  std::string rule;              // how it was sized (or "given with --mem-bw")
};

// Memory bandwidth of each node with the shared STREAM copy kernel and size rule (ffb/membw.h, as
// membw_bench): every rank copies with one thread on its own arrays, all ranks start each of 3
// repetitions together (an MPI_Barrier before each), and a repetition moves the bytes of all
// the node's ranks from the first rank's start to the last rank's end (as membw_bench's threads;
// the ranks of a node share steady_clock); the best repetition counts. A read from the page cache
// moves each byte once from memory into a (cache-resident) user buffer, so no honest read can beat
// this.
NodeMemBw node_memory_bandwidth(MPI_Comm comm, const ffb::Topology& topo, double given) {
  const auto nnodes = static_cast<std::size_t>(topo.nnodes());
  if (given > 0) return {std::vector<double>(nnodes, given), "given with --mem-bw"};
  constexpr std::size_t kReps = 3;
  const auto node_of = [&](int r) {
    return static_cast<std::size_t>(topo.node_of_rank[static_cast<std::size_t>(r)]);
  };
  const auto kernel = ffb::StreamKernel::copy;
  const auto plan =
      ffb::plan_membw(ffb::arrays_of(kernel), topo.ranks_per_node[node_of(topo.rank)], 0, "rank");
  agree(comm, [&] {
    if (!plan.fits())
      throw ffb::UsageError(fmt::format(
          "the memory bandwidth probe needs {}; give the node's memory bandwidth with --mem-bw "
          "GBPS",
          plan.shortfall()));
  });
  const auto mine =
      ffb::measure_membw(kernel, 1, plan.bytes_per_array, kReps, [comm] { MPI_Barrier(comm); });
  std::vector<double> times(mine.rep_start_s);
  times.insert(times.end(), mine.rep_end_s.begin(), mine.rep_end_s.end());
  std::vector<double> all(static_cast<std::size_t>(topo.size) * 2 * kReps);
  MPI_Allgather(times.data(), 2 * kReps, MPI_DOUBLE, all.data(), 2 * kReps, MPI_DOUBLE, comm);
  // Per node and repetition: first start, last end.
  std::vector<double> first(nnodes * kReps, 1e300), last(nnodes * kReps, -1e300);
  for (int r = 0; r < topo.size; ++r)
    for (std::size_t i = 0; i < kReps; ++i) {
      const double* t = &all[static_cast<std::size_t>(r) * 2 * kReps];
      first[node_of(r) * kReps + i] = std::min(first[node_of(r) * kReps + i], t[i]);
      last[node_of(r) * kReps + i] = std::max(last[node_of(r) * kReps + i], t[kReps + i]);
    }
  const double moved = static_cast<double>(mine.bytes_per_array) * ffb::arrays_of(kernel);
  std::vector<double> per_node(nnodes, 0.0);
  for (std::size_t n = 0; n < nnodes; ++n)
    for (std::size_t i = 0; i < kReps; ++i)
      if (const double dt = last[n * kReps + i] - first[n * kReps + i]; dt > 0)
        per_node[n] = std::max(per_node[n], moved * topo.ranks_per_node[n] / dt / 1e9);
  // Rank 0's node's rule (every node of an even layout has the same one).
  return {per_node, ffb::allgather_strings(comm, plan.rule).front()};
}

// Open MPI's mpirun answers a SIGINT or SIGTERM of its own with SIGCONT + SIGTERM to every rank
// (SIGKILL after odls_base_sigkill_timeout, 1 s by default) and exits 1 whatever the ranks
// return; say so, since the user's own signal and exit status are lost on the way.
std::string interrupted_note() {
  if (stop_signal() != SIGTERM || std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr) return "";
  return fmt::format(
      "; exit status {} (under Open MPI's mpirun, a SIGINT to mpirun reaches the "
      "ranks as SIGTERM and mpirun itself exits 1)",
      128 + SIGTERM);
}

void bcast_fs_dio(MPI_Comm comm, FsInfo& fs) {
  std::uint32_t v[3] = {fs.dio_mem_align, fs.dio_offset_align, fs.dio_supported ? 1u : 0u};
  MPI_Bcast(v, 3, MPI_UINT32_T, 0, comm);
  fs.dio_mem_align = v[0];
  fs.dio_offset_align = v[1];
  fs.dio_supported = v[2] != 0;
  int len = static_cast<int>(fs.dio_error.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, comm);
  fs.dio_error.resize(static_cast<std::size_t>(len));
  MPI_Bcast(fs.dio_error.data(), len, MPI_CHAR, 0, comm);
}

// Before anything is written: the plan must be representable (no byte count above 1 EiB), fit in
// the free space minus the margin (unless --ignore-free-space) and in memory (about half of each
// node's MemAvailable). Collective; one line naming the flags and the fix otherwise.
void check_plan(MPI_Comm comm, const Options& opt, const ffb::Topology& topo, const FsInfo& fs) {
  const auto& c = opt.common;
  const int size = topo.size;
  const std::uint64_t planned = planned_bytes(opt, size);
  agree(comm, [&] {
    if (topo.rank != 0) return;
    if (planned > (std::uint64_t{1} << 60))
      throw ffb::UsageError(fmt::format(
          "planned write volume {} ({}, {} over {} ranks) is above 1 EiB: make the run smaller",
          planned == UINT64_MAX ? std::string("above 16 EiB") : ffb::format_size(planned),
          planned_flags(opt.workload), name_of(opt.workload), size));
    if (c.ignore_free_space) return;
    const auto margin =
        static_cast<std::uint64_t>(c.space_margin * static_cast<double>(fs.total_bytes));
    const std::uint64_t usable = fs.free_bytes > margin ? fs.free_bytes - margin : 0;
    if (planned > usable)
      throw ffb::UsageError(fmt::format(
          "planned write volume {} ({} over {} ranks) does not fit in {} ({} on {}): {} free "
          "minus a {:.0f}% margin leaves {}; make the run smaller, free space, or lower "
          "--space-margin",
          ffb::format_size(planned), name_of(opt.workload), size, c.dir, fs.fs_type, fs.device,
          ffb::format_size(fs.free_bytes), c.space_margin * 100, ffb::format_size(usable)));
  });
  agree(comm, [&] {
    const MemoryNeed need = memory_need(opt, size);
    const auto node =
        static_cast<std::size_t>(topo.node_of_rank[static_cast<std::size_t>(topo.rank)]);
    const auto here = static_cast<std::uint64_t>(topo.ranks_per_node[node]);
    const std::uint64_t avail = ffb::mem_available_bytes();
    const std::uint64_t node_need = need.bytes > UINT64_MAX / here ? UINT64_MAX : need.bytes * here;
    if (avail > 0 && node_need > avail / 2)
      throw ffb::UsageError(fmt::format(
          "the run needs about {} of memory per rank ({}), {} for the {} rank(s) on {}: more than "
          "half of its available memory ({}); make those smaller",
          need.bytes == UINT64_MAX ? std::string("more than 16 EiB") : ffb::format_size(need.bytes),
          need.flags, ffb::format_size(node_need), here, topo.host, ffb::format_size(avail)));
  });
}

// The run's description: ranks and hosts, engine, file system, cache, job directory, memory
// bandwidth and the units.
std::vector<std::string> preamble_lines(const Options& opt, const ffb::Topology& topo,
                                        const FsInfo& fs, const Workspace& ws,
                                        const NodeMemBw& mem) {
  const auto& c = opt.common;
  const int size = topo.size;
  std::string hosts = topo.hosts.empty() ? "" : topo.hosts.front();
  if (topo.nnodes() > 1) hosts += fmt::format(" .. {}", topo.hosts.back());
  return {
      fmt::format("storage_bench {}: {} rank(s) on {} node(s) [{}], ranks per node {}",
                  name_of(opt.workload), size, topo.nnodes(), hosts, topo.ranks_per_node_text()),
      fmt::format("engine {} qd {}, {}{}{}{}, repetitions {}, seed {}", name_of(c.engine), c.qd,
                  c.odirect ? "O_DIRECT" : "buffered", c.fsync ? ", fsync" : "",
                  c.verify ? ", verify" : "", c.drop_cache ? ", drop-cache" : "", c.repetitions,
                  c.seed),
      fmt::format("dir {}: {} on {} at {} ({}); {} free of {}", fs.path, fs.fs_type, fs.device,
                  fs.mount_point, fs.mount_options, ffb::format_size(fs.free_bytes),
                  ffb::format_size(fs.total_bytes)),
      fmt::format("page cache {} of {} memory; direct I/O {} (statx alignment: memory {} B, "
                  "offset {} B)",
                  ffb::format_size(fs.page_cache_bytes), ffb::format_size(fs.mem_total_bytes),
                  fs.dio_supported ? "supported" : "refused: " + fs.dio_error, fs.dio_mem_align,
                  fs.dio_offset_align),
      fmt::format("job directory {}", ws.path().string()),
      fmt::format(
          "memory bandwidth per node (STREAM copy) {:.1f} GB/s ({}): reads faster "
          "than this are flagged SUSPECT",
          mem.per_node.empty() ? 0.0 : *std::min_element(mem.per_node.begin(), mem.per_node.end()),
          c.mem_bw_gbps > 0 ? "given" : "measured, " + mem.rule),
      "GB = 1e9 B; GB/s = bytes / (last close - first open) over all ranks (IOR); GB/s-data: "
      "first submit to last completion; first-done: all ranks' work when the fastest rank "
      "finished"};
}

// Rank 0's last line: the failure and what was removed, or the clean-up.
void print_outcome(const CommonOptions& c, const Workspace& ws, FailKind kind,
                   const std::string& failure, std::uint64_t removed_all) {
  if (kind == FailKind::usage) {
    std::fprintf(stderr, "storage_bench: %s\n", failure.c_str());
  } else if (kind != FailKind::none) {
    const char* what = kind == FailKind::out_of_space ? "out of space: " : "";
    std::fprintf(
        stderr, "storage_bench: %s%s; %s%s\n", what, failure.c_str(),
        c.keep ? fmt::format("kept {} (--keep)", ws.path().string()).c_str()
               : fmt::format("removed the {} file(s) this run wrote and its directory", removed_all)
                     .c_str(),
        kind == FailKind::interrupted ? interrupted_note().c_str() : "");
  } else if (c.keep) {
    std::printf("# kept %s (--keep)\n", ws.path().c_str());
  } else {
    std::printf("# cleaned up: removed %llu file(s) and %s\n",
                static_cast<unsigned long long>(removed_all), ws.path().c_str());
  }
}

void run_workload(Ctx& ctx) {
  switch (ctx.opt.workload) {
    case Workload::seq:
      run_seq(ctx);
      break;
    case Workload::loader:
      run_loader(ctx);
      break;
    case Workload::checkpoint:
      run_checkpoint(ctx);
      break;
    case Workload::kvcache:
      run_kvcache(ctx);
      break;
    case Workload::meta:
      run_meta(ctx);
      break;
  }
}

// Inside the job directory: the direct-I/O probe, the engine, the memory bandwidth, the workload,
// the summary and the results. Returns the exit status; a failure on any rank throws
// ffb::AgreedFailure on every rank.
int measure(MPI_Comm comm, const Options& opt, const ffb::Topology& topo, FsInfo& fs, Workspace& ws,
            Report& report, const ResultTargets& targets) {
  const auto& c = opt.common;
  const int rank = topo.rank, size = topo.size;
  agree(comm, [&] {
    if (rank == 0) probe_direct_io(ws.root(), fs);
  });
  bcast_fs_dio(comm, fs);
  if (c.odirect && !fs.dio_supported)  // every rank has the same facts: agreed without a round
    throw_agreed(FailKind::usage,
                 fmt::format("--odirect: the file system at {} ({}) refuses O_DIRECT ({}); drop "
                             "--odirect or use a directory on a file system that supports it",
                             fs.path, fs.fs_type, fs.dio_error));
  std::unique_ptr<Engine> engine;
  agree(comm, [&] { engine = make_engine(c.engine, c.qd, c.submit_batch); });
  const NodeMemBw mem = node_memory_bandwidth(comm, topo, c.mem_bw_gbps);
  int shift = c.shift >= 0                  ? c.shift
              : topo.ranks_per_node.empty() ? 0
                                            : topo.ranks_per_node.front();
  shift %= size;

  const RankSpace ranks{comm, rank, size};
  const IoTarget io{*engine, ws, c.odirect ? O_DIRECT : 0, c.odirect ? dio_alignment(fs) : 1u};
  Ctx ctx{opt, ranks, io, fs, shift, PhaseEnv{ranks, topo, mem.per_node, c.delay_s, report}};
  report.preamble(preamble_lines(opt, topo, fs, ws, mem));
  // Inside agree(): a usage error a workload finds (e.g. an O_DIRECT alignment) ends the run on
  // every rank with one message, like any other failure.
  agree(comm, [&] { run_workload(ctx); });
  report.summary(c.verify);
  int status = report.verify_errors() > 0 ? ffb::kExitFailure : ffb::kExitOk;
  // --self-test-corrupt flipped a byte that a read-back must have caught: a run that did not see
  // it proves nothing and must not pass.
  if (c.self_test_corrupt && report.verify_errors() == 0) {
    status = ffb::kExitFailure;
    if (rank == 0)
      std::fprintf(stderr,
                   "storage_bench: --self-test-corrupt: the corrupted block was read back "
                   "without a verify error; --verify is not working\n");
  }
  if (targets.any())
    agree(comm, [&] {
      const RunFacts facts{opt, fs, ws.path().string(), shift, mem.per_node, mem.rule};
      report.write_results(comm, topo, facts, status == ffb::kExitOk ? "complete" : "failed",
                           targets);
    });
  return status;
}

// Checks DIR and the plan, makes the job directory, measures, and cleans up on every path. Returns
// the exit status (interrupted: 128 + signal).
int run_in_job_dir(MPI_Comm comm, const Options& opt, const ffb::Topology& topo,
                   const ResultTargets& targets) {
  const auto& c = opt.common;
  try {
    agree(comm, [&] { check_user_dir(c.dir); });
    FsInfo fs = probe_fs(c.dir);
    check_plan(comm, opt, topo, fs);

    Workspace ws(comm, c.dir, c.job_name, c.keep);
    Report report(topo.rank, c.per_rank);
    int status = ffb::kExitOk;
    std::string failure;
    FailKind fail_kind = FailKind::none;
    try {
      status = measure(comm, opt, topo, fs, ws, report, targets);
    } catch (const ffb::AgreedFailure& f) {
      fail_kind = kind_of(f);
      failure = f.what();
      status = exit_code_of(fail_kind);
    }
    // Cleanup on every path, collectively (all ranks agreed on the outcome above).
    std::uint64_t removed = ws.finish(), removed_all = 0;
    MPI_Reduce(&removed, &removed_all, 1, MPI_UINT64_T, MPI_SUM, 0, comm);
    if (topo.rank == 0) print_outcome(c, ws, fail_kind, failure, removed_all);
    return status;
  } catch (const ffb::AgreedFailure& f) {
    if (topo.rank == 0) std::fprintf(stderr, "storage_bench: %s\n", f.what());
    return exit_code_of(kind_of(f));
  }
}

// Under -O summaryFormat=JSON without a file, stdout carries the JSON summary alone (as IOR's):
// rank 0's text goes to stderr while this lives, and the JSON to the saved stdout.
class TextToStderr {
 public:
  explicit TextToStderr(bool active) {
    if (!active) return;
    std::fflush(stdout);
    saved_ = ::dup(STDOUT_FILENO);
    if (saved_ >= 0) ::dup2(STDERR_FILENO, STDOUT_FILENO);
  }
  ~TextToStderr() {
    if (saved_ < 0) return;
    std::fflush(stdout);
    ::dup2(saved_, STDOUT_FILENO);
    ::close(saved_);
  }
  TextToStderr(const TextToStderr&) = delete;
  TextToStderr& operator=(const TextToStderr&) = delete;
  int json_fd() const { return saved_; }

 private:
  int saved_ = -1;
};

// storage_bench in the one program frame. It keeps its own parser (subcommands, --config) and its
// own one-line messages ("storage_bench: ..."), so a usage error found while parsing is held and
// said by run() rather than thrown into the frame.
class StorageBench final : public ffb::Program {
 public:
  void add_options(CLI::App&) override {}  // unused: ProgramSpec::parse is parse() below

  std::string parse(int argc, char** argv) {
    install_stop_handlers();
    try {
      auto parsed = parse_command_line(argc, argv);
      if (!parsed.options) return parsed.help;
      options_ = std::move(parsed.options);
    } catch (const ffb::UsageError& e) {
      usage_error_ = e.what();
    }
    return "";
  }

  int run(ffb::ProgramContext& ctx) override {
    if (!options_) return refuse(ctx, usage_error_);
    const auto& c = options_->common;
    // --check-args: the options parsed and validated; DIR and the file system are run-time
    // questions (DIR may exist only where the ranks run), so nothing here touches them.
    if (c.check_args) return ffb::kExitOk;
    try {
      ffb::check_output(c.output, ctx.comm);
      agree(ctx.comm, [&] {
        if (ctx.root() && !c.json.empty()) check_json_target(c.json, c.json_flag);
      });
    } catch (const ffb::UsageError& e) {
      return refuse(ctx, e.what());
    } catch (const ffb::AgreedFailure& e) {  // check_json_target's usage error, on every rank
      return refuse(ctx, e.what());
    }
    const TextToStderr text(ctx.root() && c.json_stdout);
    const ResultTargets targets{c.output, c.json, c.json_stdout, text.json_fd()};
    return run_in_job_dir(ctx.comm, *options_, ctx.topology, targets);
  }

 private:
  static int refuse(const ffb::ProgramContext& ctx, const std::string& why) {
    if (ctx.root()) std::fprintf(stderr, "storage_bench: %s\n", why.c_str());
    return ffb::kExitUsage;
  }

  std::optional<Options> options_;
  std::string usage_error_;
};

}  // namespace

int main(int argc, char** argv) {
  StorageBench program;
  return ffb::run_program(
      argc, argv,
      {.name = "storage_bench",
       .description = "MPI-parallel storage loads shaped like AI training",
       .thread_level = MPI_THREAD_FUNNELED,
       .parse = [&program](int ac, char** av) { return program.parse(ac, av); }},
      program);
}
