// Provenance attributes every run carries (results/SCHEMA.md): who, where, what, when, how.
#pragma once

#include <string>
#include <vector>

#include <mpi.h>

#include "ffb/mpi_env.h"
#include "ffb/results.h"

namespace ffb {

// Fills the common attrs (program, suite_version, git_commit, date, command_line, hosts, nranks,
// nnodes, ranks_per_node, mpi_library_version, cpu_model, simd_level, environment, link_rate_gbit
// when known, link_rate_source) and the `ranks` table. `devices` holds one entry per rank ("-" when
// none). Collective: call on every rank.
void add_provenance(RunRecord& run, MPI_Comm comm, const Topology& topo, const std::string& program,
                    const std::string& kind, const std::vector<std::string>& argv,
                    const std::string& device_of_this_rank = "-");

// ISO 8601 with zone, now.
std::string iso8601_now();

// JSON object of the environment variables that change results (OMPI_MCA_*, NCCL_*, SLURM job ids,
// ...).
std::string relevant_environment_json();

// argv joined into one shell-quoted command line.
std::string join_command_line(const std::vector<std::string>& argv);

}  // namespace ffb
