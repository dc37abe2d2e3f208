// The one program frame: every ffbench program's main() is `return ffb::run_program(...)`.
//
// The frame owns what every program does the same way, so that no program does it its own way:
//   1. MPI start-up at the thread level the program asks for (RAII: finalised on every path);
//   2. CLI11 parsing with --help and --check-args; the program's validate() runs before
//      --check-args returns, so `ffbench run` learns of every bad value at config time;
//   3. the launcher check (srun singletons) and the topology;
//   4. exceptions mapped to the exit codes of ffb/error.h, one line on stderr:
//        UsageError 2 (rank 0 prints), SkipError 77 (rank 0 prints), TimeoutError 3,
//        AgreedFailure its own code (rank 0 prints: every rank holds the same message),
//        std::bad_alloc 1 ("out of memory"), anything else 1 (that rank prints, with its rank,
//        then MPI_Abort: the other ranks may be waiting in a collective).
//
// agree() is how a program makes a failure on one rank known to all ranks without MPI_Abort: the
// body runs on every rank, and if it threw anywhere, every rank throws the same AgreedFailure
// carrying the lowest failing rank's message and exit code.
#pragma once

#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <mpi.h>

#include "ffb/error.h"
#include "ffb/mpi_env.h"

namespace ffb {

struct ProgramSpec {
  std::string name;         // "membw_bench": the prefix of every error line
  std::string description;  // the --help title line
  int thread_level = MPI_THREAD_MULTIPLE;
  // For programs with their own option parser (the collectives): when set, the frame calls it
  // instead of CLI11. It returns the help text to print (rank 0) and exit 0, or "" to run on.
  std::function<std::string(int argc, char** argv)> parse;
};

struct ProgramContext {
  MPI_Comm comm = MPI_COMM_WORLD;
  Topology topology;
  std::vector<std::string> argv;
  int rank = 0;
  int size = 1;
  bool root() const { return rank == 0; }
};

// What a program supplies. add_options and validate run on every rank before anything is
// measured; run() is the measurement and returns the exit code.
class Program {
 public:
  virtual ~Program() = default;
  virtual void add_options(CLI::App& app) = 0;
  virtual void validate() {}  // value checks: throw UsageError naming the flag, value and fix
  virtual int run(ProgramContext& ctx) = 0;
};

int run_program(int argc, char** argv, const ProgramSpec& spec, Program& program);

// A failure every rank of a communicator knows about (thrown by agree()).
class AgreedFailure : public std::runtime_error {
 public:
  AgreedFailure(int exit_code, int kind, const std::string& what)
      : std::runtime_error(what), exit_code_(exit_code), kind_(kind) {}
  int exit_code() const { return exit_code_; }
  int kind() const { return kind_; }  // a program-defined tag (storage_bench: out of space, ...)

 private:
  int exit_code_;
  int kind_;
};

struct FailureInfo {
  int exit_code = kExitFailure;
  int kind = 0;
  std::string message;
  bool names_rank = false;  // the message already says which rank (a nested agree())
};

// The default classification: UsageError 2, SkipError 77, TimeoutError 3, bad_alloc 1 "out of
// memory", AgreedFailure its own, anything else 1.
FailureInfo classify_exception(const std::exception_ptr& e);

using Classifier = std::function<FailureInfo(const std::exception_ptr&)>;

// Runs fn on every rank of comm. If it threw on any rank, every rank throws AgreedFailure with
// the lowest failing rank's code and message ("rank R (host) [and N more rank(s)]: ..." unless it
// is a usage error, which every rank would have said alike). Collective: every rank must call it.
void agree(MPI_Comm comm, const std::function<void()>& fn,
           const Classifier& classify = classify_exception);

}  // namespace ffb
