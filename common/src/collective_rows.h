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
  Summary summary;
  double time_us = 0, algbw = 0, busbw = 0;
  std::int64_t wrong = -1;
  double accuracy = std::nan("");
  std::vector<Metric> metrics;  // mean over iterations, slowest rank; + ceiling_fraction
};

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
