// The stdout summary table and the results of a run: one ffb::RunRecord (attributes and the
// storage_* tables), written to the HDF5 file and, with --json / -O summaryFormat=JSON, as a JSON
// document built from the same record (so every number is the same in both).
#pragma once

#include <string>
#include <vector>

#include <mpi.h>

#include "ffb/mpi_env.h"
#include "ffb/results.h"
#include "phase.h"

namespace sb {

struct FsInfo;
struct Options;

// What a run's attributes say beside its phases (add_run_attrs): the options, the file system, the
// job directory, the read-back shift in ranks, and each node's memory bandwidth with its size rule.
struct RunFacts {
  const Options& opt;
  const FsInfo& fs;
  std::string job_dir;
  int read_shift = 0;
  const std::vector<double>& node_mem_gbps;  // GB/s per node
  std::string node_mem_rule;
};

// Where the results of a run go (rank 0 writes): an HDF5 file, a JSON file, or the JSON on a file
// descriptor (stdout's, under -O summaryFormat=JSON without a file).
struct ResultTargets {
  std::string hdf5;
  std::string json_path;
  bool json_stdout = false;  // the same on every rank (any() decides a collective call)
  int json_fd = -1;          // rank 0's saved stdout under json_stdout
  bool any() const { return !hdf5.empty() || !json_path.empty() || json_stdout; }
};

class Report {
 public:
  Report(int rank, bool per_rank) : rank_(rank), per_rank_(per_rank) {}

  void preamble(const std::vector<std::string>& lines);
  void note(const std::string& line);  // "# line" on rank 0
  void add(PhaseResult r);             // prints its rows; keeps it for the summary and the file
  // Statistics over repetitions (IOR's summary) and the verify line, which says how many blocks
  // were checked, or that nothing was (never "0 errors" when nothing was read back and checked).
  void summary(bool verify_requested);

  // Collective (provenance gathers from every rank): the run as one record (complete on rank 0).
  ffb::RunRecord record(MPI_Comm comm, const ffb::Topology& topo, const RunFacts& facts,
                        const std::string& status) const;
  // Collective; rank 0 appends the record to the HDF5 file and writes the JSON.
  void write_results(MPI_Comm comm, const ffb::Topology& topo, const RunFacts& facts,
                     const std::string& status, const ResultTargets& to) const;

  std::uint64_t verify_errors() const { return verify_errors_; }
  std::uint64_t verify_checked() const { return verify_checked_; }
  const std::vector<PhaseResult>& phases() const { return phases_; }
  static std::string header_line();
  static std::string row_of(const PhaseResult& r);

 private:
  void print_op_rows(const PhaseResult& r) const;
  void print_rank_rows(const PhaseResult& r) const;

  int rank_;
  bool per_rank_ = false;
  bool header_printed_ = false;
  std::uint64_t verify_errors_ = 0;
  std::uint64_t verify_checked_ = 0;
  std::vector<PhaseResult> phases_;
  std::vector<std::string> notes_;
};

// The storage_* tables of a run's phases (results/SCHEMA.md): one schema for the file and JSON.
ffb::Table phases_table(const std::vector<PhaseResult>& phases);
ffb::Table ops_table(const std::vector<PhaseResult>& phases);
ffb::Table ranks_table(const std::vector<PhaseResult>& phases);
ffb::Table latency_table(const std::vector<PhaseResult>& phases);
ffb::Table metrics_table(const std::vector<PhaseResult>& phases);

}  // namespace sb
