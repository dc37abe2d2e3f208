// The pieces a workload is handed, each to the functions that use it: the ranks (RankSpace), where
// its I/O goes (IoTarget), what running and recording a phase needs (PhaseEnv), and, for a
// workload's entry point only, all of them with the options and the file system facts (Ctx).
// Built once in main (measure); the entry points hand each inner function only the pieces it uses.
#pragma once

#include <cstdint>
#include <vector>

#include <mpi.h>

#include "engine.h"
#include "ffb/mpi_env.h"
#include "fsutil.h"
#include "options.h"

namespace sb {

class Report;

// The communicator and this rank's place in it.
struct RankSpace {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  // Rank r moved by `by` ranks, wrapping around (either direction).
  int shifted(int r, int by) const { return ((r + by) % size + size) % size; }
};

// Where a workload's data goes: the engine, the job directory, the open flag and the alignment.
struct IoTarget {
  Engine& engine;
  Workspace& ws;
  int direct_flag = 0;      // O_DIRECT under --odirect, else 0
  std::uint32_t align = 1;  // statx direct-I/O alignment under --odirect, else 1; buffers are
                            // aligned to at least a page, offsets and sizes to this
  DirHandle& dir() const { return ws.root(); }
};

// What running a phase needs besides its body (run_phase): the ranks, the topology and each node's
// memory bandwidth (aggregate's suspect-read check), the --delay pause, and the report the phase's
// result (and a workload's notes) go to.
struct PhaseEnv {
  RankSpace ranks;
  const ffb::Topology& topo;
  const std::vector<double>& node_mem_gbps;
  double delay_s = 0.0;
  Report& report;
};

// A workload's entry point: its options, ranks, I/O target, the file system (named in messages),
// the read-back shift in ranks, and the phase environment.
struct Ctx {
  const Options& opt;
  RankSpace ranks;
  IoTarget io;
  const FsInfo& fs;
  int shift = 0;
  PhaseEnv phases;

  const CommonOptions& c() const { return opt.common; }
  Report& report() const { return phases.report; }
};

}  // namespace sb
