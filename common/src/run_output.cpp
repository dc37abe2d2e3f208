#include "ffb/run_output.h"

#include <cstdio>

#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/program.h"

namespace ffb {

int finish_run(MPI_Comm comm, const std::string& output, const RunRecord& run, bool failed) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  agree(comm, [&] {
    if (rank == 0 && !output.empty())
      fmt::print("# results appended to {} as /runs/{}\n", output, append_run(output, run));
    std::fflush(stdout);
  });
  int status = failed ? 1 : 0;
  MPI_Bcast(&status, 1, MPI_INT, 0, comm);
  return status == 0 ? kExitOk : kExitFailure;
}

}  // namespace ffb
