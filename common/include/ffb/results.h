// Result records and the HDF5 writer (layout: results/SCHEMA.md). Only rank 0 writes.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <mpi.h>

namespace ffb {

using AttrValue = std::variant<std::int64_t, double, std::string, std::vector<std::string>>;

// One column of a table: 1-D (rows) or 2-D (rows x width, row-major) when width > 1.
struct Column {
  std::string name;
  std::string units;
  std::variant<std::vector<double>, std::vector<std::int64_t>, std::vector<std::string>> data;
  std::size_t width = 1;
};

struct Table {
  std::string name;
  std::deque<Column> columns;  // deque: references returned by add_* stay valid as columns grow

  // Convenience builders; each returns the column's vector to fill.
  std::vector<double>& add_f64(const std::string& name, const std::string& units,
                               std::size_t width = 1);
  std::vector<std::int64_t>& add_i64(const std::string& name, const std::string& units);
  std::vector<std::string>& add_str(const std::string& name);
  std::size_t rows() const;  // rows of the first column (all columns must agree; checked on write)
};

struct RunRecord {
  std::map<std::string, AttrValue> attrs;
  std::vector<Table> tables;
};

// Checks `path` as an --output before anything is measured (call it right after parsing the
// options; an empty path is accepted: no output). Throws ffb::UsageError with one line naming
// --output, the value and the fix when: its directory is missing, not a directory or not writable
// by this user; the path is a directory; or it exists and is not a valid results file (not HDF5,
// not the ffbench layout, a missing or damaged segment, metadata or data failing their
// checksums: every run of it is read back). A valid file is never changed by this check.
void check_output(const std::filesystem::path& path);

// The same, collective over `comm`: rank 0 checks (only rank 0 writes) and every rank gets the
// verdict, so all of them stop before measuring: every rank throws ffb::UsageError with rank
// 0's message (print it on rank 0 only, as the programs do).
void check_output(const std::filesystem::path& path, MPI_Comm comm);

// Appends `run` as /runs/<next id> to `path` (created when missing) and returns the run id. The
// first run makes a single file; later runs go to a segment file of their own beside it and
// `path` becomes an index of links to them, so an append costs the size of the run, not of the
// file (results/SCHEMA.md). Under an exclusive flock on the directory it removes what killed
// writers left (one line on stderr), refuses a damaged `path` (ffb::UsageError, nothing
// written), writes to a temporary, fsyncs and renames. A kill at any moment leaves the earlier
// runs intact. Other failures throw std::runtime_error naming the path; no temporary is left.
std::string append_run(const std::filesystem::path& path, const RunRecord& run);

}  // namespace ffb
