// What every workload gets: options, communicator and topology, the workspace, the engine, the file
// system facts and the report. Built once in main, passed by reference.
#pragma once

#include <cstdint>
#include <fcntl.h>
#include <string>
#include <vector>

#include <mpi.h>

#include "engine.h"
#include "ffb/mpi_env.h"
#include "fsutil.h"
#include "options.h"

namespace sb {

class Report;

struct Ctx {
  const Options& opt;
  MPI_Comm comm;
  int rank = 0;
  int size = 1;
  const ffb::Topology& topo;
  Workspace& ws;
  FsInfo fs;
  Engine& engine;
  std::uint32_t dio_align = 512;      // statx alignment (used when --odirect)
  int shift = 0;                      // read-back shift in ranks
  std::vector<double> node_mem_gbps;  // per node, for the suspect-read check
  std::string node_mem_rule;          // its size rule (ffb::MembwPlan::rule) or "given ..."
  Report& report;

  const CommonOptions& c() const { return opt.common; }
  int direct_flag() const { return opt.common.odirect ? O_DIRECT : 0; }
  // Alignment of buffers (always at least a page), and of offsets and sizes under O_DIRECT.
  std::uint32_t io_align() const { return opt.common.odirect ? dio_align : 1; }
  int shifted(int r, int by) const { return ((r + by) % size + size) % size; }
};

}  // namespace sb
