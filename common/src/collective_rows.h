// A collective result row, declared once: the list of its columns (name, unit, how to get the
// value, and where the printed table shows it). The printed nccl-tests table, the HDF5
// "collective" table and, through that table, the -J JSON (collective_json) all come from this
// one list, so adding a column is one edit in collective_rows.cpp. Internal to the harness.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "collective_json.h"
#include "ffb/collective.h"
#include "ffb/results.h"
#include "ffb/stats.h"

namespace ffb {

struct PlacementResult {
  std::vector<double> t_max, t_min, t_avg, t_rank0;  // per iteration, us (valid on rank 0)
  Summary summary;                                   // of t_max
  // time_us: each rank's mean iteration time, combined over ranks as -a says (max: the slowest
  // rank's), as nccl-tests and OSU time a batch; not the mean of t_max, which jitter between
  // ranks biases upwards (summary.mean keeps that one).
  double time_us = 0, algbw = 0, busbw = 0;
  std::int64_t wrong = -1;
  double accuracy = std::nan("");
  std::vector<Metric> metrics;  // sorted by name (combine_rank_metrics); + ceiling_fraction
  // Iterations per clock read in the timed loop: 1, or k when an iteration is so short that
  // reading the clock after each would be a measurable part of it (Runner::sample_stride); the
  // per-iteration columns then give each of the k iterations their mean.
  std::int64_t iters_per_sample = 1;
};

// The backend's metrics of one placement's timed calls on this rank, summed without a map or an
// allocation per call: backends report the same names in the same order every call, so the k-th
// metric's slot is found at once (another name is searched for, a new one gets a new slot).
class MetricSums {
 public:
  void add(const std::vector<Metric>& metrics);
  // This rank's figures as JSON text, for the gather to rank 0: per name its units and either
  // the sum over `iterations` divided by them, or the distinct texts.
  std::string encode(std::size_t iterations) const;

 private:
  struct Slot {
    std::string name, units;
    double sum = 0;
    std::vector<std::string> texts;  // distinct values, in order of first appearance
  };
  Slot& slot_for(const Metric& m, std::size_t position);

  std::vector<Slot> slots_;
};

// Rank 0: one placement's metrics from every rank's MetricSums::encode, sorted by name. A number
// is the slowest rank's mean (NaN where no rank has a number); a text the distinct values over
// ranks and calls, sorted, joined with "+". A name that is a text anywhere is a text.
std::vector<Metric> combine_rank_metrics(const std::vector<std::string>& encoded);

// One printed row: a size, type and op, out-of-place (place[0]) and in-place (place[1]).
struct SweepRow {
  std::uint64_t bytes = 0;
  std::uint64_t count = 0;
  DataType type = DataType::f32;
  ReduceOp op = ReduceOp::sum;
  std::array<PlacementResult, 2> place;
};

// One cell: an integer, a number, a text, or the per-iteration values of a placement.
using CellValue = std::variant<std::int64_t, double, std::string, std::span<const double>>;

enum class ColumnKind { i64, f64, str, per_iteration };
enum class CellScope { row, placement };  // printed once per row, or once per placement

struct ResultColumn {
  std::string name;   // HDF5 (and JSON) column; empty: printed only
  std::string units;  // HDF5 units
  ColumnKind kind = ColumnKind::f64;
  // The printed table: header and unit line (empty header: not printed), cell width, scope.
  std::string header, unit_label;
  int width = 0;
  CellScope scope = CellScope::placement;
  bool na_unless_checked = false;  // printed "N/A" under -c 0 (#wrong)
  std::function<CellValue(const SweepRow&, const PlacementResult&)> value;
};

// The columns of a collective row, in HDF5 order; the printed ones in nccl-tests' order.
const std::vector<ResultColumn>& result_columns();

// The printed table: the header lines, one row's 13 cells, and its extras after `#`.
void print_table_header(bool extras);
std::string row_text(const SweepRow& row, bool check);
std::string row_extras(const SweepRow& row, bool show_metrics, bool accuracy);

// The HDF5 table: two rows per printed row (out-of-place, in-place), then the metric columns.
Table collective_table(const std::vector<SweepRow>& rows, std::size_t iters);

BusbwAverages busbw_averages(const std::vector<SweepRow>& rows);

}  // namespace ffb
