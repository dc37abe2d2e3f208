// Result records and the HDF5 writer (layout: results/SCHEMA.md). Only rank 0 writes.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <string>
#include <variant>
#include <vector>

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

// Appends `run` as /runs/<next id> to `path` atomically (copy, append, fsync, rename, under flock).
// Returns the run id. Throws std::runtime_error with the path and the HDF5 error on failure, and
// leaves no temporary file behind.
std::string append_run(const std::filesystem::path& path, const RunRecord& run);

}  // namespace ffb
