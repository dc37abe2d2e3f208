// The frame of the GPU programs that are not collectives (gemm_bench, pcie_bench,
// interference_bench): MPI start-up, CLI11 parsing, provenance and the exit codes every ffbench
// program uses (0 ok, 1 failure, 2 usage, 77 skipped: one line on stderr from rank 0).
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/mpi_env.h"
#include "ffb/provenance.h"
#include "ffb/results.h"

namespace ffb::gpu {

struct ProgramContext {
  MPI_Comm comm = MPI_COMM_WORLD;
  Topology topology;
  std::vector<std::string> argv;
  int rank = 0;
  bool root() const { return rank == 0; }
};

// body() returns the exit code; it may throw UsageError (2), SkipError (77) or anything else (1).
inline int run_program(int argc, char** argv, const std::string& program,
                       const std::string& description,
                       const std::function<void(CLI::App&)>& add_options,
                       const std::function<int(ProgramContext&)>& body) {
  MpiSession mpi(argc, argv);
  ProgramContext ctx;
  MPI_Comm_rank(MPI_COMM_WORLD, &ctx.rank);
  ctx.argv.assign(argv, argv + argc);
  CLI::App app{program + ": " + description, program};
  bool check_args = false;
  add_options(app);
  app.add_flag("--check-args", check_args,
               "only check the options: exit 0 if valid, else 2 with the error");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    if (ctx.root()) fmt::print("{}", app.help());
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    if (ctx.root()) fmt::print(stderr, "{}: error: {} (see --help)\n", program, e.what());
    return kExitUsage;
  }
  if (check_args) return kExitOk;
  try {
    check_launcher(MPI_COMM_WORLD);
    ctx.topology = discover_topology(MPI_COMM_WORLD);
    return body(ctx);
  } catch (const UsageError& e) {
    if (ctx.root()) fmt::print(stderr, "{}: error: {}\n", program, e.what());
    return kExitUsage;
  } catch (const SkipError& e) {
    if (ctx.root()) fmt::print(stderr, "{}: skipped: {}\n", program, e.what());
    return kExitSkipped;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: rank {}: error: {}\n", program, ctx.rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, kExitFailure);
  }
  return kExitFailure;
}

}  // namespace ffb::gpu
