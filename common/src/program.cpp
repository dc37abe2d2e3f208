#include "ffb/program.h"

#include <cstdio>
#include <cstring>
#include <new>
#include <optional>
#include <unistd.h>

#include <fmt/format.h>

namespace ffb {
namespace {

std::string host_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

// CLI11 parsing with the flags every program has. Returns true when the program should go on.
bool parse_with_cli11(int argc, char** argv, const ProgramSpec& spec, Program& program, bool root,
                      bool& check_args) {
  CLI::App app{spec.name + ": " + spec.description, spec.name};
  program.add_options(app);
  app.add_flag("--check-args", check_args,
               "only check the options: exit 0 if valid, else 2 with the error");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    if (root) fmt::print("{}", app.help());
    return false;
  } catch (const CLI::ParseError& e) {
    throw UsageError(fmt::format("{} (see --help)", e.what()));
  }
  return true;
}

// Steps 2-3 and the program's run(): every exception goes to the caller.
int parse_check_run(int argc, char** argv, const ProgramSpec& spec, Program& program,
                    ProgramContext& ctx) {
  bool check_args = false;
  if (spec.parse) {
    const std::string help = spec.parse(argc, argv);
    if (!help.empty()) {
      if (ctx.root()) std::fputs(help.c_str(), stdout);
      return kExitOk;
    }
  } else if (!parse_with_cli11(argc, argv, spec, program, ctx.root(), check_args)) {
    return kExitOk;
  }
  program.validate();
  if (check_args) return kExitOk;
  check_launcher(MPI_COMM_WORLD);
  ctx.topology = discover_topology(ctx.comm);
  return program.run(ctx);
}

// Step 4: one line on stderr and the exit code. Returns nullopt when the failure is this rank's
// alone (the caller aborts).
std::optional<int> report(const ProgramSpec& spec, const ProgramContext& ctx,
                          const std::exception_ptr& e) {
  const FailureInfo f = classify_exception(e);
  bool agreed = false;
  try {
    std::rethrow_exception(e);
  } catch (const UsageError&) {
    agreed = true;  // every rank parses the same flags and reaches the same verdict
  } catch (const SkipError&) {
    agreed = true;
  } catch (const AgreedFailure&) {
    agreed = true;
  } catch (...) {
  }
  if (agreed) {
    if (ctx.root()) {
      const char* what = f.exit_code == kExitSkipped ? "skipped" : "error";
      fmt::print(stderr, "{}: {}: {}\n", spec.name, what, f.message);
    }
    return f.exit_code;
  }
  fmt::print(stderr, "{}: rank {} ({}): error: {}\n", spec.name, ctx.rank, host_name(), f.message);
  std::fflush(stderr);
  if (ctx.size == 1) return f.exit_code;
  return std::nullopt;
}

}  // namespace

FailureInfo classify_exception(const std::exception_ptr& e) {
  FailureInfo f;
  try {
    std::rethrow_exception(e);
  } catch (const AgreedFailure& x) {
    f = {x.exit_code(), x.kind(), x.what(), true};
  } catch (const UsageError& x) {
    f = {kExitUsage, 0, x.what(), false};
  } catch (const SkipError& x) {
    f = {kExitSkipped, 0, x.what(), false};
  } catch (const TimeoutError& x) {
    f = {kExitTimeout, 0, x.what(), false};
  } catch (const std::bad_alloc&) {
    f = {kExitFailure, 0, "out of memory; ask for less (a smaller size, fewer ranks per node)",
         false};
  } catch (const std::exception& x) {
    f = {kExitFailure, 0, x.what(), false};
  } catch (...) {
    f = {kExitFailure, 0, "unknown error", false};
  }
  return f;
}

int run_program(int argc, char** argv, const ProgramSpec& spec, Program& program) {
  std::optional<MpiSession> mpi;
  try {
    mpi.emplace(argc, argv, spec.thread_level);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: error: {}\n", spec.name, e.what());
    return kExitFailure;
  }
  ProgramContext ctx;
  MPI_Comm_rank(MPI_COMM_WORLD, &ctx.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ctx.size);
  ctx.argv.assign(argv, argv + argc);
  try {
    return parse_check_run(argc, argv, spec, program, ctx);
  } catch (...) {
    if (const auto rc = report(spec, ctx, std::current_exception())) return *rc;
  }
  MPI_Abort(MPI_COMM_WORLD, kExitFailure);
  return kExitFailure;
}

void agree(MPI_Comm comm, const std::function<void()>& fn, const Classifier& classify) {
  FailureInfo mine;
  bool failed = false;
  try {
    fn();
  } catch (...) {
    failed = true;
    mine = classify(std::current_exception());
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // The lowest failing rank speaks for all: reduce (failed ? rank : size) with MIN.
  const int candidate = failed ? rank : size;
  int first = size;
  MPI_Allreduce(&candidate, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size) return;
  int nfailed = 0;
  const int one = failed ? 1 : 0;
  MPI_Allreduce(&one, &nfailed, 1, MPI_INT, MPI_SUM, comm);

  int head[4] = {mine.exit_code, mine.kind, mine.names_rank ? 1 : 0,
                 static_cast<int>(mine.message.size())};
  MPI_Bcast(head, 4, MPI_INT, first, comm);
  std::string what(static_cast<std::size_t>(head[3]), '\0');
  if (rank == first) what = mine.message;
  MPI_Bcast(what.data(), head[3], MPI_CHAR, first, comm);
  std::string host = rank == first ? host_name() : std::string();
  int host_len = static_cast<int>(host.size());
  MPI_Bcast(&host_len, 1, MPI_INT, first, comm);
  host.resize(static_cast<std::size_t>(host_len));
  MPI_Bcast(host.data(), host_len, MPI_CHAR, first, comm);

  const bool usage = head[0] == kExitUsage;
  if (!usage && head[2] == 0 && size > 1)
    what = fmt::format("rank {} ({}){}: {}", first, host,
                       nfailed > 1 ? fmt::format(" and {} more rank(s)", nfailed - 1) : "", what);
  throw AgreedFailure(head[0], head[1], what);
}

}  // namespace ffb
