// The end of a run every program shares: rank 0 appends the run to --output and says where it
// went, and every rank leaves with the same exit code.
#pragma once

#include <string>

#include <mpi.h>

#include "ffb/results.h"

namespace ffb {

// Collective. Rank 0 appends `run` to `output` (nothing when it is empty) and prints
// "# results appended to <output> as /runs/<id>"; a failed append is an AgreedFailure on every
// rank (no rank is left waiting). Then rank 0's `failed` is broadcast: every rank returns
// kExitOk when it is false, else kExitFailure.
int finish_run(MPI_Comm comm, const std::string& output, const RunRecord& run, bool failed);

}  // namespace ffb
