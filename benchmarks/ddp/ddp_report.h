// What ddp_bench prints and stores: the run's attributes, the header, one line and one row per
// backend (tables ddp and ddp_buckets, results/SCHEMA.md) and the footer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compute.h"
#include "ddp_options.h"
#include "ffb/mpi_env.h"
#include "ffb/results.h"
#include "step.h"

namespace ffb::ddp {

// The run's attributes: the options as JSON, the model's conditions, compute and bucket sizes.
void describe_run(RunRecord& record, const Cli& o, const Settings& st, const Plan& plan,
                  const std::string& compute_kind, const ComputeEngine& compute);

// Rank 0: the lines above the table, ending with the column heads.
void print_header(const Cli& o, const Settings& st, const Plan& plan, const Topology& topo,
                  const ComputeEngine& compute);

// One backend's outcome as the table shows it.
struct BackendOutcome {
  std::string name;
  DdpResult result;
  DdpSummary summary;
  double baseline = 0;    // s, NaN without --baseline-step-ms
  double efficiency = 0;  // baseline / step, NaN without one
  double samples_per_s = 0;
};

// Rank 0: the backend's line (and, with --buckets --trace, its bucket timeline).
void print_row(const Cli& o, const Plan& plan, const Topology& topo, const BackendOutcome& b);

// The ddp table (one row per backend) and the ddp_buckets table (one per backend and bucket).
Table ddp_table(const Cli& o, const Settings& st, const Plan& plan, const std::string& compute_kind,
                const Topology& topo, const std::vector<BackendOutcome>& outcomes);
Table bucket_table(const Plan& plan, const std::vector<BackendOutcome>& outcomes);

// Rank 0: the legend and the check's verdict.
void print_footer(const Cli& o, bool all_ok);

}  // namespace ffb::ddp
