// Timing of one phase on one rank, and the cluster-wide result of a phase.
//
// Every phase starts right after a barrier; each rank measures its times from its own barrier exit
// (so clocks never need to agree across hosts). Per rank: first open, first I/O submitted, last I/O
// completed, last close, bytes and operations, a latency histogram per operation type and a coarse
// progress timeline (cumulative work, one point per millisecond) from which the "first done" rate
// is computed exactly as elbencho defines it: the work all ranks had done when the fastest rank
// finished, over that time.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <mpi.h>

#include "ffb/histogram.h"
#include "ffb/mpi_env.h"

namespace sb {

struct RankSpace;

struct OpStats {
  ffb::LogLinearHistogram lat;  // ns
  std::uint64_t ops = 0;
  std::uint64_t bytes = 0;
};

struct PhaseSpec {
  std::string workload;
  std::string phase;  // write, read, restore, create, ...
  int rep = 0;
  std::vector<std::string> ops;  // operation types recorded in this phase; ops[0] is the main one
  std::vector<bool> op_is_read;  // which ones read data (for the suspect-rate check)
  bool work_in_bytes = true;     // timeline and first-done count bytes (else operations)
};

class RankPhase {
 public:
  explicit RankPhase(const PhaseSpec& spec);
  // Call right after the phase's barrier: every time below is relative to this.
  void start();
  double base() const { return base_; }
  double rel(double t) const { return t - base_; }

  void mark_open(double t);   // an open/create started (absolute now_s())
  void mark_close(double t);  // a close/fsync/commit finished
  // One completed operation of type op (index into spec.ops); latency = complete - start.
  void record(std::size_t op, double start, double complete, std::uint64_t bytes);

  OpStats& op(std::size_t i) { return ops_[i]; }
  const PhaseSpec& spec() const { return spec_; }
  std::uint64_t total_bytes() const;
  std::uint64_t total_ops() const;
  double work_by(double rel_t) const;  // cumulative work at a time relative to base

  bool active = true;    // false: this rank has no part in the phase (restore by fewer ranks)
  bool delayed = false;  // the --delay pause already happened (before the cache preparation)
  bool stonewalled = false;
  std::uint64_t verify_errors = 0;
  std::uint64_t verify_checked = 0;  // blocks read back and checked (verify_block)
  std::string verify_first;
  void verify_failed(const std::string& what);
  // Page-cache residency sampled before the phase (sample_residency); measured flag per rank.
  bool residency_measured = false;
  std::uint64_t res_sampled = 0, res_resident = 0;
  double t_open = 1e300, t_first = 1e300, t_last = -1e300, t_close = -1e300;  // relative

 private:
  PhaseSpec spec_;
  double base_ = 0.0;
  std::vector<OpStats> ops_;
  std::vector<std::pair<double, double>> timeline_;  // (relative time, cumulative work)
  double work_ = 0.0;
  double committed_ = 0.0;
  bool tail_ = false;
};

struct OpSummary {
  std::string op;
  std::uint64_t ops = 0, bytes = 0;
  double gbps = 0, iops = 0;
  double mean_us = 0, p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  ffb::LogLinearHistogram hist;
};

struct RankRow {
  int rank = 0;
  std::string host;
  int active = 1;
  double t_open = 0, t_first = 0, t_last = 0, t_close = 0;
  std::uint64_t bytes = 0, ops = 0;
  double gbps = 0, p50_us = 0, p99_us = 0;
};

struct Metric {
  std::string name;
  double value = 0;
  std::string units;
};

struct PhaseResult {
  PhaseSpec spec;
  int active_ranks = 0;
  std::uint64_t bytes = 0, ops = 0;
  double time_ior = 0;         // last close - first open (s)
  double time_data = 0;        // last completion - first submission
  double time_first_done = 0;  // fastest rank's close - first open
  double gbps_ior = 0, gbps_data = 0, gbps_first_done = 0, gbps_last_done = 0;
  double iops = 0, ops_first_done = 0;  // operations/s (last done and first done)
  std::vector<OpSummary> op_summaries;
  double cache_resident = -1.0;  // fraction; -1 = not measured
  int suspect = 0;
  std::string suspect_why;
  std::uint64_t verify_errors = 0;
  std::uint64_t verify_checked = 0;  // blocks checked, all ranks
  std::string verify_first;
  int slowest_rank = 0;
  std::string slowest_host;
  int stonewalled = 0;
  std::vector<RankRow> ranks;
  std::vector<Metric> metrics;
};

// Collective: merges every rank's RankPhase into the result (complete on rank 0, partial elsewhere:
// only spec, verify_errors and the totals are valid on the other ranks). topo names the hosts and
// nodes; node_mem_gbps (per node) is the bound above which a read phase is flagged suspect.
PhaseResult aggregate(const RankSpace& ranks, const ffb::Topology& topo,
                      const std::vector<double>& node_mem_gbps, RankPhase& mine);

}  // namespace sb
